import { Effect, Runtime } from "effect"
import { listenForSighup } from "../early-signals.js"

/**
 * Runs `onSignal` for every SIGHUP received (first those received before), synchronously in the
 * signal's callback (started there, at once), until the calling fiber is interrupted. `onSignal` must not wait: it hands the
 * trigger on (a queue offer) and returns, so the reload starts with no hop in between.
 */
export const onSighups = <R>(onSignal: Effect.Effect<void, never, R>): Effect.Effect<never, never, R> =>
  Effect.gen(function* () {
    // Started at once, in the callback; should it have to wait (it should not), it goes on later.
    const runFork = Runtime.runFork(yield* Effect.runtime<R>())
    return yield* Effect.acquireUseRelease(
      Effect.sync(() => listenForSighup(() => void runFork(onSignal))),
      () => Effect.never,
      (stop) => Effect.sync(stop),
    )
  })
