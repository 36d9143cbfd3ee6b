/**
 * OTLP/gRPC export: one `MetricsService/Export` call per export request, on a grpc-js channel kept
 * per exporter and built again when what it depends on changes (the endpoint, the TLS material, the
 * compression). The message is the protobuf `ExportMetricsServiceRequest` the OTLP encoder wrote;
 * headers and credentials travel as metadata. The answer is mapped onto the exporter's `ExportFailed`
 * so that batching, retries, splitting and the circuit work as for OTLP/HTTP:
 *
 * - retryable: `CANCELLED`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `ABORTED`, `OUT_OF_RANGE`,
 *   `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS` (a `google.rpc.RetryInfo` in the status details sets the
 *   least pause, like `Retry-After`);
 * - not retryable: every other code (`INVALID_ARGUMENT`, `UNAUTHENTICATED`, `PERMISSION_DENIED`,
 *   `UNIMPLEMENTED`, `NOT_FOUND`, …).
 *
 * Each code carries the HTTP status that plays its part in the exporter's rules (401/403/404: the
 * endpoint or the credentials, never split; 429/503/504: unavailable, never split).
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js"
import { Effect } from "effect"
import { METRICS_EXPORT_PATH } from "../protocols/otlp/grpc.js"
import { applyGrpcLogRoute } from "../protocols/otlp/grpc-logs.js"
import { retryDelayMs, STATUS_DETAILS_TRAILER } from "../protocols/otlp/status.js"
import type { ExporterTlsMaterial } from "../security/exporter-tls.js"
import { LEN, ProtoReader, tag } from "../wire/protobuf.js"
import { ExportFailed } from "./exporter.js"

const S = grpc.status

/** The HTTP status each gRPC code stands for in the exporter's rules, and whether it is retried. */
const CODES: Readonly<Record<number, { readonly http: number | undefined; readonly retryable: boolean }>> = {
  [S.CANCELLED]: { http: undefined, retryable: true },
  [S.UNKNOWN]: { http: 500, retryable: false },
  [S.INVALID_ARGUMENT]: { http: 400, retryable: false },
  [S.DEADLINE_EXCEEDED]: { http: 504, retryable: true },
  [S.NOT_FOUND]: { http: 404, retryable: false },
  [S.ALREADY_EXISTS]: { http: 409, retryable: false },
  [S.PERMISSION_DENIED]: { http: 403, retryable: false },
  [S.RESOURCE_EXHAUSTED]: { http: 429, retryable: true },
  [S.FAILED_PRECONDITION]: { http: 400, retryable: false },
  [S.ABORTED]: { http: 503, retryable: true },
  [S.OUT_OF_RANGE]: { http: 400, retryable: true },
  [S.UNIMPLEMENTED]: { http: 404, retryable: false },
  [S.INTERNAL]: { http: 500, retryable: true },
  [S.UNAVAILABLE]: { http: 503, retryable: true },
  [S.DATA_LOSS]: { http: 500, retryable: true },
  [S.UNAUTHENTICATED]: { http: 401, retryable: false },
}

/** The name of a gRPC status code (`UNAVAILABLE`). */
export const grpcCodeName = (code: number): string =>
  (Object.entries(S).find(([, v]) => v === code)?.[0] as string | undefined) ?? `code ${code}`

/** Decodes the `google.rpc.Status` of a `grpc-status-details-bin` trailer for its `RetryInfo`. */
const retryInfoOf = (bytes: Buffer): number | undefined => {
  try {
    const r = new ProtoReader(bytes)
    const details: Array<{ typeUrl: string; value: Uint8Array }> = []
    for (let t = r.next(r.end); t !== 0; t = r.next(r.end)) {
      if (t !== tag(3, LEN)) {
        r.skipField(t, r.end)
        continue
      }
      const e = r.len(r.end)
      let typeUrl = ""
      let value: Uint8Array = new Uint8Array(0)
      for (let t2 = r.next(e); t2 !== 0; t2 = r.next(e)) {
        if (t2 === tag(1, LEN)) typeUrl = r.string(e)
        else if (t2 === tag(2, LEN)) value = r.bytes(e)
        else r.skipField(t2, e)
      }
      details.push({ typeUrl, value })
    }
    return retryDelayMs({ code: 0, message: "", details })
  } catch {
    return undefined
  }
}

const passthrough = (b: Buffer): Buffer => b

export interface GrpcCall {
  /** `http://host:port` (plaintext) or `https://host:port` (TLS); the path is not used. */
  readonly url: string
  readonly body: Uint8Array
  /** Headers and credentials, sent as metadata (names in lower case). */
  readonly metadata: Readonly<Record<string, string>>
  readonly timeoutMs: number
  readonly gzip: boolean
  /** The TLS material of an https:// endpoint; undefined: Node's bundled CAs. */
  readonly tls: ExporterTlsMaterial | undefined
}

interface Channel {
  readonly url: string
  readonly gzip: boolean
  readonly tls: ExporterTlsMaterial | undefined
  readonly client: grpc.Client
}

/**
 * The gRPC side of one exporter: a client (one HTTP/2 connection) reused across calls, replaced
 * (and the old one closed) when the endpoint, the compression or the TLS material changes.
 */
export class GrpcExporterClient {
  private channel: Channel | undefined

  constructor() {
    // grpc-js is loaded with this module: its log lines go where the program said.
    applyGrpcLogRoute()
  }

  private clientFor(call: GrpcCall): grpc.Client {
    const c = this.channel
    if (c !== undefined && c.url === call.url && c.gzip === call.gzip && c.tls === call.tls) return c.client
    c?.client.close()
    const url = new URL(call.url)
    const secure = url.protocol === "https:"
    const tls = call.tls
    const credentials = secure
      ? grpc.credentials.createSsl(tls?.ca ?? null, tls?.key ?? null, tls?.cert ?? null, {
          ...(tls?.insecureSkipVerify === true
            ? { rejectUnauthorized: false, checkServerIdentity: () => undefined }
            : {}),
        })
      : grpc.credentials.createInsecure()
    const options: grpc.ChannelOptions = {
      // The exporter paces its own retries: the channel reconnects soon after a failure.
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.min_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1_000,
      "grpc.enable_retries": 0,
      ...(call.gzip ? { "grpc.default_compression_algorithm": 2 } : {}),
      ...(secure && tls?.serverName !== undefined
        ? { "grpc.ssl_target_name_override": tls.serverName, "grpc.default_authority": tls.serverName }
        : {}),
    }
    const client = new grpc.Client(url.host, credentials, options)
    this.channel = { url: call.url, gzip: call.gzip, tls, client }
    return client
  }

  /** One `Export` call; OK is success, any other status an `ExportFailed` (see the module). */
  send(call: GrpcCall): Effect.Effect<void, ExportFailed> {
    return Effect.async<void, ExportFailed>((resume) => {
      let client: grpc.Client
      const metadata = new grpc.Metadata()
      try {
        client = this.clientFor(call)
        for (const [k, v] of Object.entries(call.metadata)) metadata.set(k.toLowerCase(), v)
      } catch (e) {
        resume(
          Effect.fail(
            new ExportFailed({
              retryable: true,
              status: undefined,
              reason: e instanceof Error ? e.message : String(e),
              retryAfterMs: undefined,
            }),
          ),
        )
        return
      }
      const body = Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength)
      const started = Date.now()
      const pending = client.makeUnaryRequest(
        METRICS_EXPORT_PATH,
        passthrough,
        passthrough,
        body,
        metadata,
        { deadline: started + call.timeoutMs },
        (err) => {
          if (err === null || err.code === S.OK) {
            resume(Effect.void)
            return
          }
          const known = CODES[err.code]
          const timedOut = err.code === S.DEADLINE_EXCEEDED
          const trailer = err.metadata?.get(STATUS_DETAILS_TRAILER)[0]
          resume(
            Effect.fail(
              new ExportFailed({
                retryable: known?.retryable ?? false,
                // A deadline is the exporter's timeout: like a network error, it says nothing of the data.
                status: timedOut ? undefined : (known?.http ?? 500),
                reason: timedOut
                  ? `no complete answer within ${call.timeoutMs} ms (exporter timeout)`
                  : `gRPC ${grpcCodeName(err.code)}: ${err.details}`,
                retryAfterMs: Buffer.isBuffer(trailer) ? retryInfoOf(trailer) : undefined,
                grpc: true,
              }),
            ),
          )
        },
      )
      return Effect.sync(() => pending.cancel())
    })
  }

  close(): void {
    this.channel?.client.close()
    this.channel = undefined
  }
}
