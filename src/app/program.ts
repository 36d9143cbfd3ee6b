/**
 * The program, wired in one place: `metrics-governor run` checks its flags, then builds the layers
 * (telemetry, the reload event log, the config decoder, the reloader, the data path, the control
 * server) and runs the reload triggers until SIGTERM/SIGINT.
 *
 * The data path (`dataPathLayer`): for each protocol that listens, an export buffer and its exporter,
 * then the receivers (`protocols/otlp`, `protocols/prw`) feeding `pipeline/ingest` (enforce, then
 * buffer), and the aggregated violation log.
 *
 * @module
 */

import { getHeapStatistics } from "node:v8"
import { Effect, Either, Fiber, Layer, Option } from "effect"
import { type RunFlags, UsageError } from "../cli/flags.js"
import * as Decoder from "../config/decoder.js"
import { isHttpUrl, MAIN_DEFAULTS, type MainConfigSpec } from "../config/main-schema.js"
import * as ConsoleService from "../console/service.js"
import * as EventLog from "../events/log.js"
import { type Outlet, openOutlet, planOf } from "../export/outlet.js"
import { enforce, matchOnly } from "../limits/enforce.js"
import { LabelUsage } from "../limits/label-usage.js"
import { currentUsages } from "../limits/stats.js"
import { setTrackerSettings, trackerSettings } from "../limits/tracker.js"
import { type Admission, MemoryGuard, UNLIMITED, v8Collect } from "../memory/guard.js"
import {
  budgetOf,
  cgroupMemoryLimit,
  DECODE_THREAD_OLD_MB,
  DECODE_THREAD_YOUNG_MB,
  heapFlagsOf,
  resolveMemoryLimit,
} from "../memory/limit.js"
import { watchDeadRules } from "../pipeline/dead-rules.js"
import { type RouteOptions, serveReceiver } from "../pipeline/http-receiver.js"
import { makeIngest } from "../pipeline/ingest.js"
import { LiveReceiverLimits } from "../pipeline/receiver-limits.js"
import { ReceiverSecurity } from "../pipeline/receiver-security.js"
import { ViolationLog } from "../pipeline/violations.js"
import * as OtlpDecode from "../protocols/otlp/decode-pool.js"
import { otlpHttpRoute } from "../protocols/otlp/http.js"
import { otlpAdapter, otlpEncoder } from "../protocols/otlp/protocol.js"
import type { ProtocolAdapter } from "../protocols/protocol.js"
import {
  type BodyDecoder,
  defaultDecodeThreads,
  inlineDecoder,
  workerDecoder,
} from "../protocols/prw/decode-pool.js"
import { prwRoute } from "../protocols/prw/http.js"
import { prwAdapter, prwEncoder } from "../protocols/prw/protocol.js"
import * as Reload from "../reload/reloader.js"
import { Reloader } from "../reload/reloader.js"
import { runTriggers } from "../reload/triggers.js"
import { ReceiverAuth, SecretFileError, ServerTls } from "../security/material.js"
import { watchSecretFiles } from "../security/watch.js"
import {
  type AddressError,
  formatAddress,
  type ListenAddress,
  parseListenAddress,
} from "../server/address.js"
import * as Control from "../server/control.js"
import { makeShutdownClock, Shutdown } from "../server/shutdown.js"
import { setGrpcLogRoute } from "../telemetry/grpc-log-route.js"
import { callbackLogger, logError, logInfo, logWarn } from "../telemetry/log.js"
import { Telemetry } from "../telemetry/metrics.js"
import type { PoolLimits } from "../threads/pool.js"
import { ThreadedDecoder } from "../threads/swappable.js"

export interface DataPathFlags {
  readonly httpListen: string
  readonly grpcListen: string
  readonly prwListen: string
  readonly exporterEndpoint: string | undefined
  readonly prwExporterEndpoint: string | undefined
  readonly memoryLimit: number | undefined
  /** `-mode`: `router` enforces nothing and routes by the sharding key (default `standalone`). */
  readonly mode?: "standalone" | "router"
  /** `-stats-labels` (none when absent). */
  readonly statsLabels?: ReadonlyArray<string>
  readonly statsMaxLabelCombinations?: number
}

const VIOLATION_LOG_INTERVAL_MS = 10_000
/** How often dead rules are looked for (their deaths and returns are logged). */
const DEAD_RULE_LOOK_MS = 10_000

const orFail = <A>(value: A | SecretFileError): Effect.Effect<A, SecretFileError> =>
  value instanceof SecretFileError ? Effect.fail(value) : Effect.succeed(value)

const listen = (flag: string, value: string): Effect.Effect<ListenAddress | undefined, AddressError> => {
  if (value === "") return Effect.succeed(undefined)
  const parsed = parseListenAddress(flag, value)
  return Either.isLeft(parsed) ? Effect.fail(parsed.left) : Effect.succeed(parsed.right)
}

/**
 * The data path for the life of the scope: export buffers and exporters (from `config.yaml`, read at
 * start), the receivers, and the aggregated violation log; it provides the shutdown clock. On close
 * every server stops accepting at once, requests in progress get the grace (a part of
 * `shutdown_timeout`) before their connections are cut, then the exporters flush what is buffered
 * with what is left of `shutdown_timeout`, counting and logging what they could not send.
 */
export const dataPathLayer = (flags: DataPathFlags) =>
  Layer.scoped(
    Shutdown,
    Effect.gen(function* () {
      const reloader = yield* Reloader
      const telemetry = yield* Telemetry
      const startup = reloader.current()
      const main = startup.main
      // The receivers' request limits: read at every request, set again by every reload.
      const receiverLimits = new LiveReceiverLimits(main)
      const routeOptions = <Batch, D>(
        ingest: RouteOptions<Batch, D>["ingest"],
        decoder: D,
      ): RouteOptions<Batch, D> => ({
        get maxRequestBytes() {
          return receiverLimits.maxRequestBytes
        },
        get maxDecompressedBytes() {
          return receiverLimits.maxDecompressedBytes
        },
        get bounds() {
          return receiverLimits.bounds
        },
        ingest,
        decoder,
      })
      /** A reload's receivers.max_* : in force from the next request on. */
      const applyReceiverLimits = (spec: MainConfigSpec) =>
        Effect.suspend(() => {
          const changed = receiverLimits.set(spec)
          return changed.length === 0
            ? Effect.void
            : logInfo("receivers' request limits changed by the reload: in force for new requests", {
                changed,
                max_request_bytes: receiverLimits.maxRequestBytes,
                max_decompressed_bytes: receiverLimits.maxDecompressedBytes,
                max_datapoints_per_request: receiverLimits.bounds.maxDatapoints,
                max_elements_per_request: receiverLimits.bounds.maxElements,
              })
        })
      const current = reloader.current
      // -stats-labels: one set of statistics for both pipelines.
      const labelUsage =
        flags.statsLabels === undefined || flags.statsLabels.length === 0
          ? undefined
          : new LabelUsage(flags.statsLabels, flags.statsMaxLabelCombinations)
      labelUsage?.register(telemetry.registry, Date.now, () => current().limits.windowMs)
      telemetry.cardinalityMode.set({ mode: trackerSettings().mode }, 1)
      const shutdown = makeShutdownClock(main.shutdown_timeout ?? MAIN_DEFAULTS.shutdownTimeoutMs)
      const violations = new ViolationLog()
      yield* Effect.forkScoped(violations.run(VIOLATION_LOG_INTERVAL_MS))
      yield* Effect.forkScoped(watchDeadRules((now) => currentUsages(current(), now), DEAD_RULE_LOOK_MS))

      // Called from the exporters' and receivers' Node callbacks: logged with this fiber's logger.
      const log = yield* callbackLogger
      // The memory limit: what the buffers, the requests in flight and the decoding threads may take.
      const memory = resolveMemoryLimit(flags.memoryLimit, main.memory?.limit_ratio, cgroupMemoryLimit())
      const budget = memory.bytes === undefined ? undefined : budgetOf(memory.bytes)
      const guard = budget === undefined ? undefined : new MemoryGuard(budget, v8Collect())
      const admission: Admission = guard ?? UNLIMITED
      if (guard !== undefined) {
        yield* Effect.acquireRelease(
          Effect.sync(() => guard.watch()),
          (stop) => Effect.sync(stop),
        )
      }
      // The memory limit's share for buffers is for the whole process: the protocols split it.
      const protocolsOpen =
        (flags.httpListen !== "" || flags.grpcListen !== "" ? 1 : 0) + (flags.prwListen !== "" ? 1 : 0)
      const bufferMaxBytesOf = (spec: MainConfigSpec) =>
        Math.min(
          spec.buffer?.max_bytes ?? MAIN_DEFAULTS.bufferMaxBytes,
          budget === undefined
            ? Number.POSITIVE_INFINITY
            : Math.floor(budget.bufferBytes / Math.max(1, protocolsOpen)),
        )
      const bufferMaxBytes = bufferMaxBytesOf(main)
      const threadLimits: PoolLimits =
        budget === undefined
          ? {}
          : {
              resourceLimits: {
                maxOldGenerationSizeMb: budget.threadOldGenerationMb,
                maxYoungGenerationSizeMb: budget.threadYoungGenerationMb,
              },
            }
      // The receivers' decoding threads (receivers.decode_threads): a reload that changes them
      // replaces each protocol's decoder; the one replaced finishes the bodies it holds.
      const otlpThreadsOf = (spec: MainConfigSpec) =>
        spec.receivers?.decode_threads ?? OtlpDecode.defaultDecodeThreads()
      const prwThreadsOf = (spec: MainConfigSpec) => spec.receivers?.decode_threads ?? defaultDecodeThreads()
      const otlpDecoderOf = (threads: number): OtlpDecode.OtlpBodyDecoder =>
        threads > 0 ? OtlpDecode.workerDecoder(threads, undefined, threadLimits) : OtlpDecode.inlineDecoder
      const prwDecoderOf = (threads: number): BodyDecoder =>
        threads > 0
          ? workerDecoder(
              threads,
              undefined,
              budget === undefined
                ? {
                    resourceLimits: {
                      maxYoungGenerationSizeMb: DECODE_THREAD_YOUNG_MB,
                      maxOldGenerationSizeMb: DECODE_THREAD_OLD_MB,
                    },
                  }
                : threadLimits,
            )
          : inlineDecoder()
      const otlpDecoding = new ThreadedDecoder(otlpThreadsOf(main), otlpDecoderOf)
      const prwDecoding = new ThreadedDecoder(prwThreadsOf(main), prwDecoderOf)
      const applyDecodeThreads = (spec: MainConfigSpec) =>
        Effect.suspend(() => {
          const changed = {
            ...(otlpDecoding.want(otlpThreadsOf(spec)) ? { otlp: otlpDecoding.threads } : {}),
            ...(prwDecoding.want(prwThreadsOf(spec)) ? { prw: prwDecoding.threads } : {}),
          }
          return Object.keys(changed).length === 0
            ? Effect.void
            : logInfo("receivers' decoding threads changed by the reload: in use for new requests", {
                decode_threads: changed,
              })
        })
      telemetry.memoryLimitBytes.set(memory.bytes ?? 0)
      telemetry.setInFlightSource(() => admission.inFlight)
      if (budget !== undefined) {
        const heapLimit = getHeapStatistics().heap_size_limit
        yield* logInfo("memory limit in force", {
          limit_bytes: budget.limitBytes,
          source: memory.source,
          cgroup_limit_bytes: memory.cgroupBytes ?? null,
          buffer_max_bytes: bufferMaxBytes,
          in_flight_bytes: budget.inFlightBytes,
          refuse_at_bytes: budget.refuseAtBytes,
          heap_limit_bytes: heapLimit,
        })
        // V8's heap limit is the old generation plus the young one (three semi-spaces).
        const sizedFor = (budget.heapOldSpaceMb + 3 * budget.heapSemiSpaceMb) * 1024 * 1024
        if (heapLimit > sizedFor * 1.05) {
          yield* logWarn(
            "the heap is not sized for the memory limit: start the governor with bin/metrics-governor",
            {
              heap_limit_bytes: heapLimit,
              node_flags: heapFlagsOf(budget).join(" "),
            },
          )
        }
      }
      // grpc-js (loaded only with a gRPC receiver or exporter) logs through the JSON logger.
      setGrpcLogRoute(log)
      const onError = (e: unknown) =>
        log(
          logError("receiver failed on a request", {
            error: e instanceof Error ? (e.stack ?? e.message) : String(e),
          }),
        )

      // Receivers' TLS material and credentials: read now (a file that does not load stops the
      // start), then re-read whenever their files change.
      const tlsSpec = main.receivers?.tls
      const authSpec = main.receivers?.auth
      const receiverTls =
        tlsSpec === undefined
          ? undefined
          : yield* orFail(
              ServerTls.load({
                certFile: tlsSpec.cert_file,
                keyFile: tlsSpec.key_file,
                clientCaFile: tlsSpec.client_ca_file,
              }),
            )
      const receiverAuth =
        authSpec === undefined
          ? undefined
          : yield* orFail(
              ReceiverAuth.load({
                bearerTokenFile: authSpec.bearer_token_file,
                basicUsername: authSpec.basic_username,
                basicPasswordFile: authSpec.basic_password_file,
              }),
            )
      const security = new ReceiverSecurity(receiverTls, receiverAuth)
      const secrets = [receiverTls, receiverAuth].filter((x) => x !== undefined)
      // The watch of the receivers' secret files, started again when a reload changes which files.
      const dataScope = yield* Effect.scope
      let secretWatch: Fiber.RuntimeFiber<void> | undefined
      const watchSecrets = Effect.gen(function* () {
        if (secretWatch !== undefined) yield* Fiber.interrupt(secretWatch)
        const items = [security.tls, security.auth].filter((x) => x !== undefined)
        secretWatch =
          items.length === 0 ? undefined : yield* Effect.forkIn(watchSecretFiles(items, telemetry), dataScope)
      })
      /**
       * A reload's receivers.tls (turned on or off, mutual TLS turned on or off, other files) and
       * receivers.auth (any change). Material that does not load changes nothing.
       */
      const applyReceiverSecurity = (spec: MainConfigSpec) =>
        Effect.gen(function* () {
          let changed = false
          const t = spec.receivers?.tls
          const tls = security.tls
          const loadFailed = (failed: SecretFileError, what: string) =>
            Effect.zipRight(
              Effect.sync(() => telemetry.tlsReloadFailures.inc({ file: failed.file })),
              logError(what, { file: failed.file, error: failed.reason }),
            )
          if (t === undefined) {
            if (tls !== undefined) {
              security.replaceTls(undefined)
              changed = true
              yield* logWarn(
                "receivers serve plaintext from this reload on (receivers.tls removed): TLS connections still open close after their current request",
                {},
              )
            }
          } else {
            const files = { certFile: t.cert_file, keyFile: t.key_file, clientCaFile: t.client_ca_file }
            if (tls !== undefined && tls.mutual === (files.clientCaFile !== undefined)) {
              if (
                files.certFile !== tls.spec.certFile ||
                files.keyFile !== tls.spec.keyFile ||
                files.clientCaFile !== tls.spec.clientCaFile
              ) {
                const failed = tls.retarget(files)
                if (failed === undefined) {
                  changed = true
                  yield* logInfo("receivers' TLS files changed by the reload: in force for new connections", {
                    cert_file: t.cert_file,
                  })
                } else {
                  yield* loadFailed(
                    failed,
                    "receivers' TLS files from the reload do not load; the previous ones stay in force",
                  )
                }
              }
            } else {
              // TLS turned on, or a client certificate asked for or no longer: a mode of its own.
              const loaded = ServerTls.load(files)
              if (loaded instanceof SecretFileError) {
                yield* loadFailed(
                  loaded,
                  tls === undefined
                    ? "receivers' TLS from the reload does not load; the receivers stay plaintext"
                    : "receivers' TLS files from the reload do not load; the previous ones stay in force",
                )
              } else {
                security.replaceTls(loaded)
                changed = true
                yield* logInfo(
                  tls === undefined
                    ? "receivers serve TLS from this reload on: plaintext connections still open close after their current request"
                    : "receivers' client certificate requirement changed by the reload: connections of the previous kind close after their current request",
                  { cert_file: t.cert_file, mutual_tls: loaded.mutual },
                )
              }
            }
          }
          const a = spec.receivers?.auth
          const held = security.auth?.spec
          const same =
            a === undefined
              ? held === undefined
              : held !== undefined &&
                held.bearerTokenFile === a.bearer_token_file &&
                held.basicUsername === a.basic_username &&
                held.basicPasswordFile === a.basic_password_file
          if (!same) {
            if (a === undefined) {
              security.auth = undefined
              changed = true
              yield* logWarn(
                "receivers no longer ask for credentials (receivers.auth removed by the reload)",
                {},
              )
            } else {
              const loaded = ReceiverAuth.load({
                bearerTokenFile: a.bearer_token_file,
                basicUsername: a.basic_username,
                basicPasswordFile: a.basic_password_file,
              })
              if (loaded instanceof SecretFileError) {
                telemetry.tlsReloadFailures.inc({ file: loaded.file })
                yield* logError(
                  "receivers' credentials from the reload do not load; the previous ones stay in force",
                  {
                    file: loaded.file,
                    error: loaded.reason,
                  },
                )
              } else {
                security.auth = loaded
                changed = true
                yield* logInfo("receivers' credentials changed by the reload", {
                  auth: loaded.challenges.map((c) => c.split(" ")[0]),
                })
              }
            }
          }
          if (changed) yield* watchSecrets
        })
      if (secrets.length > 0) {
        yield* watchSecrets
        yield* logInfo("receivers secured", {
          tls: receiverTls !== undefined,
          mutual_tls: receiverTls?.mutual ?? false,
          auth: receiverAuth?.challenges.map((c) => c.split(" ")[0]) ?? [],
        })
      }

      const httpAddress = yield* listen("http-listen", flags.httpListen)
      const grpcAddress = yield* listen("grpc-listen", flags.grpcListen)
      const prwAddress = yield* listen("prw-listen", flags.prwListen)
      // OTLP: one outlet (endpoints, buffers or queues, exporters) for OTLP/HTTP and OTLP/gRPC. The
      // outlets open before every receiver, so their flush runs after every receiver stopped
      // accepting; they flush in parallel, so shutdown takes one shutdown_timeout, not one per protocol.
      const outletDeps = (protocol: "otlp" | "prw") => ({
        protocol,
        encoder: protocol === "otlp" ? otlpEncoder : prwEncoder,
        telemetry,
        shutdown,
        log,
      })
      const flagEndpoint = (protocol: "otlp" | "prw") =>
        protocol === "otlp" ? flags.exporterEndpoint : flags.prwExporterEndpoint
      const planFor = (protocol: "otlp" | "prw", spec: MainConfigSpec) =>
        planOf(protocol, spec, flagEndpoint(protocol), bufferMaxBytesOf(spec))
      const outlets = yield* Effect.parallelFinalizers(
        Effect.all({
          otlp:
            httpAddress !== undefined || grpcAddress !== undefined
              ? Effect.asSome(openOutlet(outletDeps("otlp"), planFor("otlp", main)))
              : Effect.succeedNone,
          prw:
            prwAddress !== undefined
              ? Effect.asSome(openOutlet(outletDeps("prw"), planFor("prw", main)))
              : Effect.succeedNone,
        }),
      )
      const otlpOutlet = Option.getOrUndefined(outlets.otlp)
      const prwOutlet = Option.getOrUndefined(outlets.prw)
      // A reload that changes the exporters, the buffer, the queue, the receivers' bounds, decoding
      // threads or TLS material applies to the outlets and receivers, one after the other, before
      // its version is made active: once the status shows it, new requests go where it says.
      const applyMain = (spec: MainConfigSpec) =>
        Effect.all(
          [
            Effect.sync(() => shutdown.retune(spec.shutdown_timeout ?? MAIN_DEFAULTS.shutdownTimeoutMs)),
            applyReceiverLimits(spec),
            applyDecodeThreads(spec),
            applyReceiverSecurity(spec),
            Effect.forEach(
              [
                ["otlp", otlpOutlet],
                ["prw", prwOutlet],
              ] as const,
              ([protocol, outlet]) =>
                outlet === undefined ? Effect.void : outlet.configure(planFor(protocol, spec)),
              { discard: true },
            ),
          ],
          { discard: true },
        )
      yield* reloader.onConfigApplied(applyMain)
      // A config.yaml applied while the outlets opened (with the startup spec) applies now.
      if (reloader.current().configSha256 !== startup.configSha256) yield* applyMain(reloader.current().main)
      const decide = flags.mode === "router" ? matchOnly : enforce
      const ingestOf = <Req>(adapter: ProtocolAdapter<Req, Uint8Array>, outlet: Outlet) =>
        makeIngest(adapter, outlet, telemetry, current, violations, Date.now, labelUsage, decide)
      if (flags.mode === "router") {
        yield* logInfo(
          "router mode: series are matched against the limits and routed, nothing is enforced",
          {},
        )
      }

      if (otlpOutlet !== undefined) {
        const ingest = ingestOf(otlpAdapter, otlpOutlet)
        // Acquired before the receivers, so released after they stopped accepting.
        const swappable = yield* Effect.acquireRelease(
          Effect.sync(() => otlpDecoding.open()),
          (d) => Effect.promise(() => d.close()),
        )
        const decoder: OtlpDecode.OtlpBodyDecoder = {
          decode: (body, encoding, max, bounds) =>
            swappable.use((d) => d.decode(body, encoding, max, bounds)),
          close: () => swappable.close(),
        }
        if (httpAddress !== undefined) {
          yield* serveReceiver(
            "OTLP/HTTP receiver",
            httpAddress,
            [otlpHttpRoute(routeOptions(ingest, decoder))],
            telemetry,
            onError,
            shutdown,
            admission,
            security,
          )
          yield* logInfo("OTLP/HTTP receiver listening", {
            address: flags.httpListen,
            exporter_endpoint: flags.exporterEndpoint ?? null,
          })
        }
        if (grpcAddress !== undefined) {
          // grpc-js is loaded only when a gRPC receiver (or exporter) is configured.
          const { serveGrpc } = yield* Effect.promise(() => import("../protocols/otlp/grpc-receiver.js"))
          yield* serveGrpc(
            grpcAddress,
            receiverLimits,
            ingest,
            decoder,
            telemetry,
            shutdown,
            admission,
            security,
          )
          yield* logInfo("OTLP/gRPC receiver listening", {
            address: flags.grpcListen,
            exporter_endpoint: flags.exporterEndpoint ?? null,
          })
        }
      }

      // Remote write.
      if (prwAddress !== undefined && prwOutlet !== undefined) {
        const ingest = ingestOf(prwAdapter, prwOutlet)
        // Acquired before the receiver, so released after it stopped accepting.
        const swappable = yield* Effect.acquireRelease(
          Effect.sync(() => prwDecoding.open()),
          (d) => Effect.promise(() => d.close()),
        )
        const decoder: BodyDecoder = {
          decode: (body, max, bounds) => swappable.use((d) => d.decode(body, max, bounds)),
          recycle: (scan) => swappable.value.recycle(scan),
          close: () => swappable.close(),
        }
        yield* serveReceiver(
          "remote-write receiver",
          prwAddress,
          [prwRoute(routeOptions(ingest, decoder))],
          telemetry,
          onError,
          shutdown,
          admission,
          security,
        )
        yield* logInfo("remote-write receiver listening", {
          address: flags.prwListen,
          exporter_endpoint: flags.prwExporterEndpoint ?? null,
          decode_threads: prwDecoding.threads,
        })
      }
      return shutdown
    }),
  )

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

    // Every rule's series tracker is made in this mode, from the first config version on.
    setTrackerSettings({
      mode: flags.cardinalityMode,
      expectedItems: flags.cardinalityExpectedItems,
      fpRate: flags.cardinalityFpRate,
      hllThreshold: flags.cardinalityHllThreshold,
    })

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
        dataPathLayer({
          httpListen: flags.httpListen,
          grpcListen: flags.grpcListen,
          prwListen: flags.prwListen,
          exporterEndpoint: flags.exporterEndpoint,
          prwExporterEndpoint: flags.prwExporterEndpoint,
          mode: flags.mode,
          memoryLimit: flags.memoryLimit,
          statsLabels: flags.statsLabels,
          statsMaxLabelCombinations: flags.statsMaxLabelCombinations,
        }),
      ),
      Layer.provideMerge(ConsoleService.layer),
      Layer.provideMerge(Reload.layer(reloadSettings)),
      Layer.provideMerge(Decoder.worker({ maxBytes: flags.configMaxBytes })),
      Layer.provideMerge(EventLog.layer(flags.reloadEventLog)),
      Layer.provideMerge(Telemetry.live),
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
