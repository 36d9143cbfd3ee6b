import { NodeContext } from "@effect/platform-node"
import { Effect, Either, Layer } from "effect"
import { type RunFlags, UsageError } from "../cli/flags.js"
import * as Decoder from "../config/decoder.js"
import * as EventLog from "../events/log.js"
import * as Reload from "../reload/reloader.js"
import { Reloader } from "../reload/reloader.js"
import { runTriggers } from "../reload/triggers.js"
import { formatAddress, parseListenAddress } from "../server/address.js"
import * as Control from "../server/control.js"
import { Shutdown } from "../server/shutdown.js"
import { logInfo } from "../telemetry/log.js"
import { Telemetry } from "../telemetry/metrics.js"
import * as DataPath from "./data-path.js"

const isHttpUrl = (value: string): boolean => {
  try {
    const url = new URL(value)
    return (url.protocol === "http:" || url.protocol === "https:") && url.host !== ""
  } catch {
    return false
  }
}

/**
 * `metrics-governor run`: startup load (a bad config ends the process with exit 1), then the control
 * server and every reload trigger, until SIGTERM/SIGINT interrupts it. Closing the scope stops the
 * triggers, lets a running reload finish, appends `Stopped` and closes the servers in order.
 */
export const run = (flags: RunFlags) =>
  Effect.gen(function* () {
    const stats = parseListenAddress("stats-addr", flags.statsAddr)
    if (Either.isLeft(stats)) return yield* Effect.fail(new UsageError({ reason: stats.left.message }))
    for (const [flag, value] of [
      ["http-listen", flags.httpListen],
      ["grpc-listen", flags.grpcListen],
      ["prw-listen", flags.prwListen],
    ] as const) {
      const parsed = value === "" ? undefined : parseListenAddress(flag, value)
      if (parsed !== undefined && Either.isLeft(parsed)) {
        return yield* Effect.fail(new UsageError({ reason: parsed.left.message }))
      }
    }
    for (const [flag, value] of [
      ["exporter-endpoint", flags.exporterEndpoint],
      ["prw-exporter-endpoint", flags.prwExporterEndpoint],
    ] as const) {
      if (value !== undefined && !isHttpUrl(value)) {
        return yield* Effect.fail(
          new UsageError({
            reason: `invalid URL "${value}" for flag -${flag} (expected http:// or https://)`,
          }),
        )
      }
    }

    const reloadSettings: Reload.ReloadSettings = {
      paths: { config: flags.config, limits: flags.limitsConfig },
      dryRunFlag: flags.limitsDryRun,
      debounceMs: flags.reloadDebounceMs,
      maxBytes: flags.configMaxBytes,
    }
    const app = Control.layer({
      address: stats.right,
      reloadHttp: flags.reloadHttp,
      reloadAuthTokenFile: flags.reloadAuthTokenFile,
    }).pipe(
      Layer.provideMerge(
        DataPath.layer({
          httpListen: flags.httpListen,
          grpcListen: flags.grpcListen,
          prwListen: flags.prwListen,
          exporterEndpoint: flags.exporterEndpoint,
          prwExporterEndpoint: flags.prwExporterEndpoint,
        }),
      ),
      Layer.provideMerge(Reload.layer(reloadSettings)),
      Layer.provideMerge(Decoder.worker({ maxBytes: flags.configMaxBytes })),
      Layer.provideMerge(EventLog.layer(flags.reloadEventLog)),
      Layer.provideMerge(Telemetry.live),
      Layer.provideMerge(NodeContext.layer),
    )

    return yield* Effect.gen(function* () {
      const reloader = yield* Reloader
      yield* Effect.forkScoped(
        runTriggers(reloader, {
          watch: flags.reloadWatch,
          pollIntervalMs: flags.reloadPollIntervalMs,
          triggerFile: flags.reloadTriggerFile,
          debounceMs: flags.reloadDebounceMs,
        }),
      )
      yield* logInfo("metrics-governor started", {
        pid: process.pid,
        stats_addr: formatAddress(stats.right.host, stats.right.port),
        limits_config: flags.limitsConfig ?? null,
        config: flags.config ?? null,
        reload_http: flags.reloadHttp,
        reload_watch: flags.reloadWatch,
        reload_poll_interval_ms: flags.reloadPollIntervalMs,
        reload_event_log: flags.reloadEventLog ?? null,
      })
      // The shutdown budget starts here: every server stops accepting before anything else closes.
      const shutdown = yield* Shutdown
      yield* Effect.addFinalizer(() =>
        Effect.zipRight(logInfo("metrics-governor stopping"), Effect.sync(shutdown.begin)),
      )
      return yield* Effect.never
    }).pipe(Effect.scoped, Effect.provide(app))
  })
