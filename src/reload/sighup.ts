import { Effect, Stream } from "effect"

/**
 * SIGHUP must never terminate the process, not even before the pipeline runs: the handler is
 * installed first thing in `main`, and signals that arrive before anyone listens are kept.
 */
let early = 0
let listener: (() => void) | undefined
let installed = false

export const installSighupHandler = (): void => {
  if (installed) return
  installed = true
  process.on("SIGHUP", () => {
    if (listener === undefined) early++
    else listener()
  })
}

/** One element per SIGHUP received (including those received before the stream started). */
export const sighups: Stream.Stream<void> = Stream.async<void>((emit) => {
  installSighupHandler()
  for (; early > 0; early--) void emit.single(undefined)
  listener = () => void emit.single(undefined)
  return Effect.sync(() => {
    listener = undefined
  })
})
