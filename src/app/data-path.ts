import { Effect, Either, Layer } from "effect"
import { MAIN_DEFAULTS } from "../config/main-schema.js"
import { ExportBuffer } from "../export/buffer.js"
import { type ExporterSettings, runExporter } from "../export/exporter.js"
import { serveReceiver } from "../pipeline/http-receiver.js"
import { makeIngest } from "../pipeline/ingest.js"
import { ViolationLog } from "../pipeline/violations.js"
import { routeGrpcLogs, serveGrpc } from "../protocols/otlp/grpc-receiver.js"
import { otlpHttpRoute } from "../protocols/otlp/http.js"
import { otlpAdapter, otlpEncoder } from "../protocols/otlp/protocol.js"
import type { ExportMetricsServiceRequest } from "../protocols/otlp/types.js"
import { defaultDecodeThreads, inlineDecoder, workerDecoder } from "../protocols/prw/decode-pool.js"
import { prwRoute } from "../protocols/prw/http.js"
import { prwAdapter, prwEncoder } from "../protocols/prw/protocol.js"
import { Reloader } from "../reload/reloader.js"
import { type AddressError, type ListenAddress, parseListenAddress } from "../server/address.js"
import { makeShutdownClock, Shutdown } from "../server/shutdown.js"
import { callbackLogger, logError, logInfo } from "../telemetry/log.js"
import { Telemetry } from "../telemetry/metrics.js"
import type { RequestBounds } from "../wire/bounds.js"

export interface DataPathFlags {
  readonly httpListen: string
  readonly grpcListen: string
  readonly prwListen: string
  readonly exporterEndpoint: string | undefined
  readonly prwExporterEndpoint: string | undefined
}

const VIOLATION_LOG_INTERVAL_MS = 10_000

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
export const layer = (flags: DataPathFlags) =>
  Layer.scoped(
    Shutdown,
    Effect.gen(function* () {
      const reloader = yield* Reloader
      const telemetry = yield* Telemetry
      const startup = reloader.current()
      const main = startup.main
      const maxRequestBytes = main.receivers?.max_request_bytes ?? MAIN_DEFAULTS.maxRequestBytes
      const maxDecompressedBytes =
        main.receivers?.max_decompressed_bytes ?? MAIN_DEFAULTS.maxDecompressedBytes
      const bounds: RequestBounds = {
        maxDatapoints: main.receivers?.max_datapoints_per_request ?? MAIN_DEFAULTS.maxDatapointsPerRequest,
        maxElements: main.receivers?.max_elements_per_request ?? MAIN_DEFAULTS.maxElementsPerRequest,
      }
      const buffer = main.buffer ?? {}
      const current = reloader.current
      const shutdown = makeShutdownClock(main.shutdown_timeout ?? MAIN_DEFAULTS.shutdownTimeoutMs)
      const violations = new ViolationLog()
      yield* Effect.forkScoped(violations.run(VIOLATION_LOG_INTERVAL_MS))

      const exporterSettings = <P>(
        protocol: "otlp" | "prw",
        endpoint: string | undefined,
        encoder: ExporterSettings<P>["encoder"],
      ): ExporterSettings<P> => {
        const spec = main.exporters?.[protocol] ?? {}
        return {
          protocol,
          endpoint,
          headers: spec.headers ?? {},
          bearerTokenFile: spec.bearer_token_file,
          timeoutMs: spec.timeout ?? MAIN_DEFAULTS.exporterTimeoutMs,
          batchSize: buffer.batch_size ?? MAIN_DEFAULTS.batchSize,
          flushIntervalMs: buffer.flush_interval ?? MAIN_DEFAULTS.flushIntervalMs,
          // Read by the exporter when its flush begins, after the receivers closed: what is left of
          // shutdown_timeout since shutdown began, not a fresh shutdown_timeout of its own.
          get shutdownTimeoutMs() {
            return shutdown.remainingMs()
          },
          encoder,
        }
      }
      const newBuffer = <P>() =>
        new ExportBuffer<P>(
          buffer.size ?? MAIN_DEFAULTS.bufferSize,
          buffer.max_bytes ?? MAIN_DEFAULTS.bufferMaxBytes,
        )
      // Called from the receivers' Node callbacks: logged with this fiber's logger and level.
      const log = yield* callbackLogger
      routeGrpcLogs(log)
      const onError = (e: unknown) =>
        log(
          logError("receiver failed on a request", {
            error: e instanceof Error ? (e.stack ?? e.message) : String(e),
          }),
        )

      const httpAddress = yield* listen("http-listen", flags.httpListen)
      const grpcAddress = yield* listen("grpc-listen", flags.grpcListen)
      const prwAddress = yield* listen("prw-listen", flags.prwListen)
      // OTLP: one buffer and exporter for OTLP/HTTP and OTLP/gRPC.
      const otlpBuffer =
        httpAddress !== undefined || grpcAddress !== undefined
          ? newBuffer<ExportMetricsServiceRequest>()
          : undefined
      const prwBuffer = prwAddress !== undefined ? newBuffer<Uint8Array>() : undefined
      // The exporters start before every receiver, so their flush runs after every receiver stopped
      // accepting; their finalizers run in parallel, so shutdown takes one shutdown_timeout, not one
      // per protocol.
      yield* Effect.parallelFinalizers(
        Effect.all([
          otlpBuffer === undefined
            ? Effect.void
            : runExporter(
                exporterSettings("otlp", flags.exporterEndpoint, otlpEncoder),
                otlpBuffer,
                telemetry,
              ),
          prwBuffer === undefined
            ? Effect.void
            : runExporter(
                exporterSettings("prw", flags.prwExporterEndpoint, prwEncoder),
                prwBuffer,
                telemetry,
              ),
        ]),
      )

      if (otlpBuffer !== undefined) {
        const ingest = makeIngest(otlpAdapter, otlpBuffer, telemetry, current, violations)
        if (httpAddress !== undefined) {
          yield* serveReceiver(
            "OTLP/HTTP receiver",
            httpAddress,
            [otlpHttpRoute({ maxRequestBytes, maxDecompressedBytes, bounds, ingest })],
            telemetry,
            onError,
            shutdown,
          )
          yield* logInfo("OTLP/HTTP receiver listening", {
            address: flags.httpListen,
            exporter_endpoint: flags.exporterEndpoint ?? null,
          })
        }
        if (grpcAddress !== undefined) {
          yield* serveGrpc(grpcAddress, maxDecompressedBytes, bounds, ingest, telemetry, shutdown)
          yield* logInfo("OTLP/gRPC receiver listening", {
            address: flags.grpcListen,
            exporter_endpoint: flags.exporterEndpoint ?? null,
          })
        }
      }

      // Remote write.
      if (prwAddress !== undefined && prwBuffer !== undefined) {
        const ingest = makeIngest(prwAdapter, prwBuffer, telemetry, current, violations)
        const threads = main.receivers?.decode_threads ?? defaultDecodeThreads()
        // Acquired before the receiver, so released after it stopped accepting.
        const decoder = yield* Effect.acquireRelease(
          Effect.sync(() => (threads > 0 ? workerDecoder(threads) : inlineDecoder)),
          (d) => Effect.promise(() => d.close()),
        )
        yield* serveReceiver(
          "remote-write receiver",
          prwAddress,
          [prwRoute({ maxRequestBytes, maxDecompressedBytes, bounds, ingest, decoder })],
          telemetry,
          onError,
          shutdown,
        )
        yield* logInfo("remote-write receiver listening", {
          address: flags.prwListen,
          exporter_endpoint: flags.prwExporterEndpoint ?? null,
          decode_threads: threads,
        })
      }
      return shutdown
    }),
  )
