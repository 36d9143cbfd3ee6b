/**
 * An OTLP/gRPC downstream for the governor's exporter: a grpc-js server on 127.0.0.1 implementing
 * `MetricsService/Export` with our own codec, recording every call (its metadata and request), and
 * whose answers a test controls call by call (a status code, with a `RetryInfo` if asked). Plaintext,
 * or TLS (optionally asking for a client certificate).
 */

import * as grpc from "@grpc/grpc-js"
import { Either } from "effect"
import { countDataPoints } from "../../src/protocols/otlp/adapter.js"
import { type DecodedExportRequest, metricsServiceDefinition } from "../../src/protocols/otlp/grpc.js"
import { encodeRpcStatus, retryInfoDetail, STATUS_DETAILS_TRAILER } from "../../src/protocols/otlp/status.js"
import type { ExportMetricsServiceRequest } from "../../src/protocols/otlp/types.js"

/** One call as the sink saw it, whatever it answered. */
export interface GrpcSinkCall {
  readonly n: number
  readonly at: number
  /** Metadata, names in lower case; a name sent several times keeps its last value. */
  readonly metadata: Readonly<Record<string, string>>
  readonly datapoints: number
}

/** A status code (OK delivers), its message, and a `RetryInfo` delay for the status details. */
export interface GrpcSinkAnswer {
  readonly code: grpc.status
  readonly details?: string
  readonly retryAfterMs?: number
}

export interface GrpcSinkTls {
  readonly ca: Buffer
  readonly cert: Buffer
  readonly key: Buffer
  /** Ask for a client certificate signed by `ca`. */
  readonly clientAuth?: boolean
}

export class GrpcSink {
  readonly calls: GrpcSinkCall[] = []
  readonly delivered: ExportMetricsServiceRequest[] = []
  readonly undecodable: string[] = []
  datapoints = 0
  respond: (call: GrpcSinkCall) => GrpcSinkAnswer = () => ({ code: grpc.status.OK })

  private constructor(
    private readonly server: grpc.Server,
    readonly port: number,
  ) {}

  static async start(options: { readonly tls?: GrpcSinkTls } = {}): Promise<GrpcSink> {
    const server = new grpc.Server()
    let sink: GrpcSink | undefined
    server.addService(metricsServiceDefinition(), {
      export: (
        call: grpc.ServerUnaryCall<DecodedExportRequest, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        const s = sink as GrpcSink
        const metadata: Record<string, string> = {}
        for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = String(v)
        const decoded = call.request
        if (Either.isLeft(decoded)) s.undecodable.push(decoded.left.message)
        const seen: GrpcSinkCall = {
          n: s.calls.length + 1,
          at: Date.now(),
          metadata,
          datapoints: Either.isRight(decoded) ? countDataPoints(decoded.right) : 0,
        }
        s.calls.push(seen)
        const answer = s.respond(seen)
        if (answer.code === grpc.status.OK) {
          if (Either.isRight(decoded)) {
            s.delivered.push(decoded.right)
            s.datapoints += seen.datapoints
          }
          callback(null, {})
          return
        }
        const trailer = new grpc.Metadata()
        if (answer.retryAfterMs !== undefined) {
          trailer.set(
            STATUS_DETAILS_TRAILER,
            Buffer.from(
              encodeRpcStatus({
                code: answer.code,
                message: answer.details ?? "",
                details: [retryInfoDetail(answer.retryAfterMs)],
              }),
            ),
          )
        }
        callback({ code: answer.code, details: answer.details ?? "refused by the test", metadata: trailer })
      },
    })
    const credentials =
      options.tls === undefined
        ? grpc.ServerCredentials.createInsecure()
        : grpc.ServerCredentials.createSsl(
            options.tls.ca,
            [{ cert_chain: options.tls.cert, private_key: options.tls.key }],
            options.tls.clientAuth === true,
          )
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", credentials, (err, p) => (err === null ? resolve(p) : reject(err))),
    )
    sink = new GrpcSink(server, port)
    return sink
  }

  /** `host:port`, as `exporters.otlp.endpoint` takes it with `protocol: grpc`. */
  get target(): string {
    return `127.0.0.1:${this.port}`
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.tryShutdown(() => resolve())
      setTimeout(() => {
        this.server.forceShutdown()
        resolve()
      }, 2_000).unref()
    })
  }
}
