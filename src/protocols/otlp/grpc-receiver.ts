import * as grpc from "@grpc/grpc-js"
import { Effect, Either } from "effect"
import type { Admission } from "../../memory/guard.js"
import { ListenError } from "../../pipeline/http-receiver.js"
import type { IngestOutcome } from "../../pipeline/ingest.js"
import type { ReceiverLimits } from "../../pipeline/receiver-limits.js"
import { ReceiverSecurity } from "../../pipeline/receiver-security.js"
import { rotatingServerCredentials } from "../../security/grpc-credentials.js"
import type { ReceiverAuth, ServerTls } from "../../security/material.js"
import type { ListenAddress } from "../../server/address.js"
import type { ShutdownClock } from "../../server/shutdown.js"
import type { Instruments } from "../../telemetry/metrics.js"
import type { OtlpBatch } from "./adapter.js"
import type { OtlpBodyDecoder } from "./decode-pool.js"
import { type SwitchingCredentials, startGrpcServer } from "./grpc.js"
import { applyGrpcLogRoute } from "./grpc-logs.js"

/**
 * The gRPC credentials of the receivers' TLS in force: plaintext, or credentials that follow the
 * material's rotation (one per `ServerTls`, kept while it is the one in force).
 */
const switchingCredentials = (security: ReceiverSecurity): SwitchingCredentials => {
  const insecure = grpc.ServerCredentials.createInsecure()
  let made: { readonly tls: ServerTls; readonly credentials: grpc.ServerCredentials } | undefined
  return {
    current: () => {
      const tls = security.tls
      if (tls === undefined) return insecure
      if (made?.tls !== tls) made = { tls, credentials: rotatingServerCredentials(tls) }
      return made.credentials
    },
    onReplaced: (listener) => security.onTlsReplaced(listener),
  }
}

/**
 * OTLP/gRPC `MetricsService/Export` for the life of the scope. Bad data is INVALID_ARGUMENT (not
 * retryable); a full export buffer is RESOURCE_EXHAUSTED with a RetryInfo, so clients retry later;
 * what the limits drop is reported as a partial success. When shutdown begins it stops accepting;
 * calls in progress have the shutdown grace, then the server is shut down by force. Messages are
 * decoded by `decoder` (in worker threads when `receivers.decode_threads` is above 0); a decoding
 * thread that dies answers UNAVAILABLE, which clients retry.
 */
export const serveGrpc = (
  address: ListenAddress,
  /** Read at every call: `max_decompressed_bytes` bounds a message, `bounds` its contents. */
  limits: ReceiverLimits,
  ingest: (req: OtlpBatch, bytes: number) => IngestOutcome,
  decoder: OtlpBodyDecoder,
  telemetry: Instruments,
  shutdown: ShutdownClock,
  admission: Admission,
  security: ReceiverSecurity = new ReceiverSecurity(),
) =>
  Effect.zipRight(
    // grpc-js is loaded with this module: its log lines go where the program said.
    Effect.sync(applyGrpcLogRoute),
    Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          startGrpcServer({
            // Chosen at every new connection: a reload may turn TLS (or mutual TLS) on or off.
            credentials: switchingCredentials(security),
            // Read at every call: a reload may set, change or remove the credentials.
            authenticate: (metadata) => {
              const auth: ReceiverAuth | undefined = security.auth
              if (auth === undefined) return true
              const value = metadata.get("authorization")[0]
              return auth.check(typeof value === "string" ? value : value?.toString("utf8"))
            },
            onUnauthenticated: () => {
              telemetry.receiverAuthFailures.inc({ protocol: "otlp" })
              telemetry.receiverRequests.inc({ protocol: "otlp", code: "grpc_unauthenticated" })
            },
            host: address.host ?? "",
            port: address.port,
            get maxReceiveMessageLength() {
              return limits.maxDecompressedBytes
            },
            get bounds() {
              return limits.bounds
            },
            admission,
            onRefused: () => {
              telemetry.receiverRefused.inc({ protocol: "otlp", reason: "memory" })
              telemetry.receiverRequests.inc({ protocol: "otlp", code: "grpc_resource_exhausted" })
            },
            // grpc-js has inflated a gzip message already, within max_decompressed_bytes.
            decode: (bytes, b) => {
              const decoded = decoder.decode(bytes, "identity", limits.maxDecompressedBytes, b)
              const count = (d: Awaited<typeof decoded>) => {
                if (Either.isLeft(d) && d.left._tag === "OtlpDecoderDied")
                  telemetry.receiverRequests.inc({ protocol: "otlp", code: "grpc_unavailable" })
                return d
              }
              return decoded instanceof Promise ? decoded.then(count) : count(decoded)
            },
            onDecodeError: (e) =>
              telemetry.receiverRequests.inc({
                protocol: "otlp",
                code: e.kind === "too_many" ? "grpc_too_large" : "grpc_invalid_argument",
              }),
            handle: async (req) => {
              const outcome = ingest(req, req.bytes?.length ?? 0)
              if (outcome._tag === "Overloaded") {
                telemetry.receiverRequests.inc({ protocol: "otlp", code: "grpc_resource_exhausted" })
                return {
                  ok: false,
                  code: "overloaded",
                  message: "export buffer full, retry later",
                  retryAfterMs: outcome.retryAfterMs,
                }
              }
              telemetry.receiverRequests.inc({ protocol: "otlp", code: "grpc_ok" })
              return outcome.dropped > 0
                ? {
                    ok: true,
                    rejectedDataPoints: outcome.dropped,
                    errorMessage: "dropped by metrics-governor limits",
                  }
                : { ok: true }
            },
          }),
        catch: (e) =>
          new ListenError({
            what: "OTLP/gRPC receiver",
            address: `${address.host ?? ""}:${address.port}`,
            reason: e instanceof Error ? e.message : String(e),
          }),
      }).pipe(
        Effect.tap((server) =>
          Effect.sync(() => shutdown.onBegin(() => void server.shutdown(shutdown.graceLeftMs()))),
        ),
      ),
      (server) =>
        Effect.promise(() => {
          shutdown.begin()
          return server.shutdown(shutdown.graceLeftMs())
        }),
    ),
  )
