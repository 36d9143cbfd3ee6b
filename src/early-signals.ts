/**
 * Signal handling from the first moment of the process, before any library is loaded (this module
 * imports nothing, and `main` loads everything else after it):
 *
 * - SIGHUP must never terminate the process: it is counted until the reload pipeline listens.
 * - SIGTERM/SIGINT before the runtime takes over end the process at once with exit 0: nothing has
 *   been accepted yet, so there is nothing to flush.
 */
let pendingSighups = 0
let sighupListener: (() => void) | undefined

const onSighup = () => {
  if (sighupListener === undefined) pendingSighups++
  else sighupListener()
}
const onEarlyTermination = () => process.exit(0)

export const installEarlySignalHandlers = (): void => {
  process.on("SIGHUP", onSighup)
  process.on("SIGTERM", onEarlyTermination)
  process.on("SIGINT", onEarlyTermination)
}

/** The runtime installs its own graceful SIGTERM/SIGINT handling; the early one steps aside. */
export const handOverTermination = (): void => {
  process.off("SIGTERM", onEarlyTermination)
  process.off("SIGINT", onEarlyTermination)
}

/** Delivers SIGHUPs to `listener` (first those received before), until the returned function is called. */
export const listenForSighup = (listener: () => void): (() => void) => {
  if (!process.listeners("SIGHUP").includes(onSighup)) process.on("SIGHUP", onSighup)
  for (; pendingSighups > 0; pendingSighups--) listener()
  sighupListener = listener
  return () => {
    if (sighupListener === listener) sighupListener = undefined
  }
}
