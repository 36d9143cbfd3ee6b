/**
 * grpc-js's log lines through the program's JSON logger.
 *
 * @module
 */
import { format } from "node:util"
import { setLogger } from "@grpc/grpc-js"
import type { Effect } from "effect"
import { grpcLogRoute } from "../../telemetry/grpc-log-route.js"
import { logDebug, logError, logInfo } from "../../telemetry/log.js"

/**
 * Routes what grpc-js logs (by default `console.error`, in its own format, on stderr) through `log`,
 * a `callbackLogger`: one JSON line with `fields.detail`, at the level grpc-js gave it. grpc-js's
 * logger is process-wide; which of its levels it emits is its own setting (`GRPC_VERBOSITY`, errors
 * only by default), and `-log-level` filters them like every other line.
 */
export const routeGrpcLogs = (log: (line: Effect.Effect<void>) => void): void => {
  const as =
    (write: typeof logError) =>
    (message?: unknown, ...rest: Array<unknown>) =>
      log(write("grpc-js", { detail: format(message, ...rest) }))
  setLogger({ error: as(logError), info: as(logInfo), debug: as(logDebug) })
}

/** Routes grpc-js's log lines where the program said (`setGrpcLogRoute`), if it did. */
export const applyGrpcLogRoute = (): void => {
  const log = grpcLogRoute()
  if (log !== undefined) routeGrpcLogs(log)
}
