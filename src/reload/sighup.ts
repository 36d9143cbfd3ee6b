import { Effect } from "effect"
import { listenForSighup } from "../early-signals.js"

/**
 * Calls `onSignal` for every SIGHUP received (first those received before), synchronously in the
 * signal's callback, until the calling fiber is interrupted. `onSignal` must not wait: it hands the
 * trigger on (or decides it at once) and returns, so the reload starts with no hop in between, and
 * no fiber is started on the way (`ReloaderService.submitNowSync`).
 */
export const onSighups = (onSignal: () => void): Effect.Effect<never> =>
  Effect.acquireUseRelease(
    Effect.sync(() => listenForSighup(onSignal)),
    () => Effect.never,
    (stop) => Effect.sync(stop),
  )
