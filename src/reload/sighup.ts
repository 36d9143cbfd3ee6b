import { Effect, Stream } from "effect"
import { listenForSighup } from "../early-signals.js"

/** One element per SIGHUP received (including those received before the stream started). */
export const sighups: Stream.Stream<void> = Stream.async<void>((emit) => {
  const stop = listenForSighup(() => void emit.single(undefined))
  return Effect.sync(stop)
})
