/**
 * A downstream for the governor's exporters: a node:http server on 127.0.0.1 that decodes every
 * OTLP/HTTP protobuf (plain or gzip) or remote-write body with our own codecs and records it, and whose answers a
 * test controls request by request (a status, a `Retry-After`, or no answer at all).
 */

import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as zlib from "node:zlib"
import { Either } from "effect"
import { countDataPoints } from "../../src/protocols/otlp/adapter.js"
import { decodeOtlpProtobuf, encodeOtlpResponseProtobuf } from "../../src/protocols/otlp/protobuf.js"
import type { ExportMetricsServiceRequest } from "../../src/protocols/otlp/types.js"
import { datapointCount } from "../../src/protocols/prw/adapter.js"
import { decompressBody } from "../../src/protocols/prw/snappy.js"
import type { WriteRequest } from "../../src/protocols/prw/types.js"
import { decodeWriteRequest } from "./prw.js"

export type SinkProtocol = "otlp" | "prw"

/** One request as the sink saw it, whatever it answered. */
export interface SinkRequest {
  /** 1, 2, 3… in arrival order. */
  readonly n: number
  readonly at: number
  readonly method: string
  readonly path: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
  /** How many datapoints the body holds (0 when it does not decode). */
  readonly datapoints: number
  /** The metric names in the body, in order (empty when it does not decode). */
  readonly names: ReadonlyArray<string>
}

/** What to answer: a status (2xx records the body as delivered), or `"hang"`: never answer. */
export type SinkAnswer =
  | { readonly status: number; readonly headers?: Readonly<Record<string, string>>; readonly body?: string }
  | "hang"

export type Respond = (req: SinkRequest) => SinkAnswer

const OK: SinkAnswer = { status: 200 }

interface Decoded<P> {
  readonly payload: P
  readonly datapoints: number
  readonly names: ReadonlyArray<string>
}

const decodeOtlp = (body: Buffer): Decoded<ExportMetricsServiceRequest> | string => {
  const r = decodeOtlpProtobuf(body)
  if (Either.isLeft(r)) return r.left.message
  const names = r.right.resourceMetrics.flatMap((rm) =>
    rm.scopeMetrics.flatMap((sm) => sm.metrics.map((m) => m.name)),
  )
  return { payload: r.right, datapoints: countDataPoints(r.right), names }
}

const decodePrw = (body: Buffer): Decoded<WriteRequest> | string => {
  const raw = decompressBody(body, 256 * 1024 * 1024)
  if (Either.isLeft(raw)) return raw.left.message
  const r = decodeWriteRequest(raw.right)
  if (Either.isLeft(r)) return r.left.message
  return {
    payload: r.right,
    datapoints: r.right.timeseries.reduce((n, s) => n + datapointCount(s), 0),
    names: r.right.timeseries.map((s) => s.labels.find((l) => l.name === "__name__")?.value ?? ""),
  }
}

export class Sink<P> {
  /** Every request, in arrival order. */
  readonly requests: SinkRequest[] = []
  /** The payloads answered 2xx: what was delivered. */
  readonly delivered: P[] = []
  /** Bodies that did not decode (a bug in the governor's encoder if ever non-empty). */
  readonly undecodable: string[] = []
  respond: Respond
  private readonly hanging = new Set<http.ServerResponse>()

  private constructor(
    readonly protocol: SinkProtocol,
    private readonly server: http.Server,
    readonly port: number,
    respond: Respond,
    readonly host = "127.0.0.1",
  ) {
    this.respond = respond
  }

  /** Starts listening on 127.0.0.1 (`port` 0 or omitted: a free port). */
  static async start<Proto extends SinkProtocol>(
    protocol: Proto,
    options: {
      readonly port?: number
      readonly host?: string
      readonly respond?: Respond
      /** Answer every request this many milliseconds after reading it (default 0: at once). */
      readonly answerDelayMs?: number
    } = {},
  ): Promise<Sink<Proto extends "otlp" ? ExportMetricsServiceRequest : WriteRequest>> {
    type Payload = Proto extends "otlp" ? ExportMetricsServiceRequest : WriteRequest
    const decode = (protocol === "otlp" ? decodeOtlp : decodePrw) as (
      body: Buffer,
    ) => Decoded<Payload> | string
    let sink: Sink<Payload> | undefined
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        const s = sink as Sink<Payload>
        const body = Buffer.concat(chunks)
        // The OTLP exporter with `compression: gzip`.
        const decoded = decode(req.headers["content-encoding"] === "gzip" ? zlib.gunzipSync(body) : body)
        if (typeof decoded === "string") s.undecodable.push(decoded)
        const seen: SinkRequest = {
          n: s.requests.length + 1,
          at: Date.now(),
          method: req.method ?? "",
          path: req.url ?? "",
          headers: req.headers,
          body,
          datapoints: typeof decoded === "string" ? 0 : decoded.datapoints,
          names: typeof decoded === "string" ? [] : decoded.names,
        }
        s.requests.push(seen)
        const answer = s.respond(seen)
        if (answer === "hang") {
          s.hanging.add(res)
          res.on("close", () => s.hanging.delete(res))
          return
        }
        const reply = () => {
          if (answer.status >= 200 && answer.status < 300 && typeof decoded !== "string") {
            s.delivered.push(decoded.payload)
            s.datapoints += decoded.datapoints
          }
          res.statusCode = answer.status
          for (const [k, v] of Object.entries(answer.headers ?? {})) res.setHeader(k, v)
          if (answer.body !== undefined) res.end(answer.body)
          else if (answer.status === 200 && protocol === "otlp") {
            res.setHeader("content-type", "application/x-protobuf")
            res.end(encodeOtlpResponseProtobuf({}))
          } else res.end()
        }
        if (s.answerDelayMs > 0) setTimeout(reply, s.answerDelayMs)
        else reply()
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject)
      server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
        server.off("error", reject)
        resolve()
      })
    })
    sink = new Sink<Payload>(
      protocol,
      server,
      (server.address() as AddressInfo).port,
      options.respond ?? (() => OK),
      options.host ?? "127.0.0.1",
    )
    sink.answerDelayMs = options.answerDelayMs ?? 0
    return sink
  }

  get url(): string {
    return `http://${this.host}:${this.port}${this.protocol === "otlp" ? "/v1/metrics" : "/api/v1/write"}`
  }

  /** Datapoints in the bodies answered 2xx (counted when the answer is sent). */
  datapoints = 0

  /** How long after reading a request the sink answers it, ms (0: at once); may be changed at any time. */
  answerDelayMs = 0

  /** Answers every request held by `"hang"` with `status` (they are not recorded as delivered). */
  release(status = 503): void {
    for (const res of this.hanging) {
      res.statusCode = status
      res.end()
    }
    this.hanging.clear()
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy()
    this.hanging.clear()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
