import { Cause, Effect, FiberRef, HashMap, Layer, Logger, LogLevel, Runtime } from "effect"
import type { LogLevelName } from "../cli/flags.js"

/** Fields attached to one log line (the contract's `fields` object). */
export type LogFields = Readonly<Record<string, unknown>>

const LEVEL_NAMES: Readonly<Record<string, string>> = {
  Trace: "debug",
  Debug: "debug",
  Info: "info",
  Warning: "warn",
  Error: "error",
  Fatal: "error",
}

const messageText = (message: unknown): string => {
  if (Array.isArray(message)) return message.map(messageText).join(" ")
  if (typeof message === "string") return message
  if (message instanceof Error) return message.message
  try {
    return JSON.stringify(message) ?? String(message)
  } catch {
    return String(message)
  }
}

/**
 * One JSON object per line on stdout: `{"ts","level","message","fields"}`. Log annotations become
 * `fields`; a failure cause, if any, becomes `fields.error`.
 */
export const jsonLogger = (write: (line: string) => void): Logger.Logger<unknown, void> =>
  Logger.make(({ logLevel, message, annotations, cause, date }) => {
    const fields: Record<string, unknown> = {}
    for (const [k, v] of HashMap.toEntries(annotations)) fields[k] = v
    if (cause._tag !== "Empty" && fields.error === undefined) fields.error = Cause.pretty(cause)
    write(
      `${JSON.stringify({
        ts: date.toISOString(),
        level: LEVEL_NAMES[logLevel._tag] ?? "info",
        message: messageText(message),
        fields,
      })}\n`,
    )
  })

const LEVELS: Readonly<Record<LogLevelName, LogLevel.LogLevel>> = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  error: LogLevel.Error,
}

/** Replaces Effect's default logger with the JSON line logger at the given minimum level. */
export const layer = (level: LogLevelName, write: (line: string) => void = (l) => process.stdout.write(l)) =>
  Layer.merge(Logger.replace(Logger.defaultLogger, jsonLogger(write)), Logger.minimumLogLevel(LEVELS[level]))

/**
 * A line at `level` with `fields`, whose annotations are made only when the line passes the
 * minimum level (`-log-level`): a dropped line costs one read of it.
 */
const logAt = (level: LogLevel.LogLevel, line: Effect.Effect<void>, fields: LogFields) =>
  Effect.flatMap(FiberRef.get(FiberRef.currentMinimumLogLevel), (minimum) =>
    LogLevel.greaterThan(minimum, level)
      ? Effect.void
      : line.pipe(Effect.annotateLogs(fields as Record<string, unknown>)),
  )

export const logDebug = (message: string, fields: LogFields = {}) =>
  logAt(LogLevel.Debug, Effect.logDebug(message), fields)
export const logInfo = (message: string, fields: LogFields = {}) =>
  logAt(LogLevel.Info, Effect.logInfo(message), fields)
export const logWarn = (message: string, fields: LogFields = {}) =>
  Effect.logWarning(message).pipe(Effect.annotateLogs(fields as Record<string, unknown>))
export const logError = (message: string, fields: LogFields = {}) =>
  Effect.logError(message).pipe(Effect.annotateLogs(fields as Record<string, unknown>))

/**
 * A function that logs from a plain callback (a Node server's event handler, a promise's rejection)
 * through the logger and minimum level of the fiber that made it: the JSON logger and `-log-level`.
 * `Effect.runFork` there instead would use Effect's default logger (logfmt, every level).
 */
export const callbackLogger: Effect.Effect<(log: Effect.Effect<void>) => void> = Effect.map(
  Effect.runtime<never>(),
  (runtime) => {
    const run = Runtime.runFork(runtime)
    return (log) => {
      run(log)
    }
  },
)

/** An operator-readable line for any failure, also for errors whose own message is empty. */
export const describeError = (e: unknown): string => {
  if (e instanceof Error && e.message !== "") return e.message
  const tag = typeof e === "object" && e !== null && "_tag" in e ? String(e._tag) : "error"
  const cause = typeof e === "object" && e !== null && "cause" in e ? e.cause : undefined
  if (cause instanceof Error) return `${tag}: ${cause.message}`
  return cause === undefined ? tag : `${tag}: ${String(cause)}`
}

/**
 * Logs at error, through the JSON logger, why the program is about to end on a failure (a listen
 * address in use, a defect); an interruption (SIGTERM, SIGINT) is a normal end and is not logged.
 */
export const logFatal = <A, E, R>(program: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tapErrorCause(program, (cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    const failure = Cause.failureOption(cause)
    return logError("metrics-governor exiting on an error", {
      error: failure._tag === "Some" ? describeError(failure.value) : Cause.pretty(cause),
    })
  })
