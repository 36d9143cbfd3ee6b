/**
 * OTLP/gRPC: the official OpenTelemetry gRPC exporter against our server, and raw grpc-js
 * clients for status codes, status details, garbage and size limits. All on 127.0.0.1.
 */

import * as http2 from "node:http2"
import * as grpc from "@grpc/grpc-js"
import { OTLPMetricExporter as GrpcExporter } from "@opentelemetry/exporter-metrics-otlp-grpc"
import { Either } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { OtlpDecoderDied } from "../../../src/protocols/otlp/decode-pool.js"
import type { OtlpDecodeError } from "../../../src/protocols/otlp/errors.js"
import {
  type GrpcExportResult,
  type GrpcServer,
  METRICS_EXPORT_PATH,
  startGrpcServer,
} from "../../../src/protocols/otlp/grpc.js"
import { decodeOtlpResponseProtobuf, encodeOtlpProtobuf } from "../../../src/protocols/otlp/protobuf.js"
import { retryDelayMs, STATUS_DETAILS_TRAILER } from "../../../src/protocols/otlp/status.js"
import type {
  ExportMetricsServiceRequest,
  ExportMetricsServiceResponse,
} from "../../../src/protocols/otlp/types.js"
import { MetricsServiceDefinition, RawMetricsClient } from "../../support/grpc.js"
import { decodeRpcStatus } from "../../support/rpc-status.js"
import { collectSample, expectSameAsSdk } from "./sdk.js"

type GrpcOptions = NonNullable<ConstructorParameters<typeof GrpcExporter>[0]>

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

interface Harness {
  readonly server: GrpcServer
  readonly received: ExportMetricsServiceRequest[]
  readonly decodeErrors: OtlpDecodeError[]
}

const start = async (
  handle: (req: ExportMetricsServiceRequest) => Promise<GrpcExportResult> = async () => ({ ok: true }),
  maxReceiveMessageLength = 4 * 1024 * 1024,
): Promise<Harness> => {
  const received: ExportMetricsServiceRequest[] = []
  const decodeErrors: OtlpDecodeError[] = []
  const server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    maxReceiveMessageLength,
    handle: (req) => {
      received.push(req)
      return handle(req)
    },
    onDecodeError: (e) => decodeErrors.push(e),
  })
  cleanup.push(() => server.shutdown())
  return { server, received, decodeErrors }
}

/** A client built from our own service definition. */
const TypedClient = grpc.makeGenericClientConstructor(MetricsServiceDefinition, "MetricsService")

type Outcome<A> =
  | { readonly ok: true; readonly value: A }
  | { readonly ok: false; readonly error: grpc.ServiceError }

const call = <A>(client: grpc.Client, request: unknown): Promise<Outcome<A>> =>
  new Promise((resolve) => {
    const method = (
      client as unknown as {
        export: (req: unknown, cb: (err: grpc.ServiceError | null, res: A) => void) => void
      }
    ).export
    method.call(client, request, (err: grpc.ServiceError | null, res: A) =>
      resolve(err === null ? { ok: true, value: res } : { ok: false, error: err }),
    )
  })

const rawClient = (port: number, options: grpc.ClientOptions = {}): grpc.Client => {
  const c = new RawMetricsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options)
  cleanup.push(() => c.close())
  return c
}

const typedClient = (port: number): grpc.Client => {
  const c = new TypedClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
  cleanup.push(() => c.close())
  return c
}

const exportWith = (exporter: GrpcExporter, metrics: Awaited<ReturnType<typeof collectSample>>) =>
  new Promise<{ code: number; error?: Error }>((resolve) => exporter.export(metrics, resolve))

const smallRequest = (name: string, attributeValue = "v"): ExportMetricsServiceRequest => ({
  resourceMetrics: [
    {
      schemaUrl: "",
      scopeMetrics: [
        {
          schemaUrl: "",
          metrics: [
            {
              name,
              description: "",
              unit: "",
              metadata: [],
              data: {
                type: "gauge",
                dataPoints: [
                  {
                    attributes: [{ key: "k", value: { type: "string", value: attributeValue } }],
                    startTimeUnixNano: 0n,
                    timeUnixNano: 1700000000123456789n,
                    value: { type: "int", value: 42n },
                    exemplars: [],
                    flags: 0,
                  },
                ],
              },
            },
          ],
        },
      ],
    },
  ],
})

const statusOf = (error: grpc.ServiceError) => {
  const raw = error.metadata.get(STATUS_DETAILS_TRAILER)[0]
  if (!(raw instanceof Buffer)) return undefined
  return Either.getOrUndefined(decodeRpcStatus(raw))
}

describe("interop: OpenTelemetry JS SDK → OTLP/gRPC → startGrpcServer", () => {
  it("receives what the official gRPC exporter sends, data point for data point", async () => {
    const h = await start()
    const exporter = new GrpcExporter({ url: `http://127.0.0.1:${h.server.port}` })
    cleanup.push(() => exporter.shutdown())
    const sdk = await collectSample()
    const result = await exportWith(exporter, sdk)
    expect(result.error).toBeUndefined()
    expect(result.code).toBe(0)
    expect(h.received).toHaveLength(1)
    expectSameAsSdk(sdk, h.received[0] as ExportMetricsServiceRequest)
  })

  it("accepts gzip-compressed calls", async () => {
    const h = await start()
    const exporter = new GrpcExporter({
      url: `http://127.0.0.1:${h.server.port}`,
      compression: "gzip" as NonNullable<GrpcOptions["compression"]>,
    })
    cleanup.push(() => exporter.shutdown())
    const sdk = await collectSample()
    expect((await exportWith(exporter, sdk)).code).toBe(0)
    expectSameAsSdk(sdk, h.received[0] as ExportMetricsServiceRequest)
  })

  it("answers RESOURCE_EXHAUSTED when the handler is overloaded", async () => {
    const h = await start(async () => ({
      ok: false,
      code: "overloaded",
      message: "buffer full",
      retryAfterMs: 1_500,
    }))
    const exporter = new GrpcExporter({ url: `http://127.0.0.1:${h.server.port}` })
    cleanup.push(() => exporter.shutdown())
    const result = await exportWith(exporter, await collectSample())
    expect(result.code).toBe(1) // FAILED
    expect((result.error as grpc.ServiceError | undefined)?.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
  })
})

describe("startGrpcServer", () => {
  it("puts a google.rpc.RetryInfo in grpc-status-details-bin when retryAfterMs is given", async () => {
    const h = await start(async () => ({
      ok: false,
      code: "overloaded",
      message: "buffer full",
      retryAfterMs: 1_500,
    }))
    const out = await call<ExportMetricsServiceResponse>(typedClient(h.server.port), smallRequest("m"))
    if (out.ok) throw new Error("expected an error")
    expect(out.error.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    expect(out.error.details).toBe("buffer full")
    const status = statusOf(out.error)
    expect(status?.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    expect(status?.message).toBe("buffer full")
    expect(status && retryDelayMs(status)).toBe(1_500)
  })

  it("sends no RetryInfo without retryAfterMs", async () => {
    const h = await start(async () => ({ ok: false, code: "overloaded", message: "busy" }))
    const out = await call<ExportMetricsServiceResponse>(typedClient(h.server.port), smallRequest("m"))
    if (out.ok) throw new Error("expected an error")
    expect(out.error.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    expect(statusOf(out.error)?.details).toEqual([])
  })

  it("answers INVALID_ARGUMENT for garbage, and keeps serving the next good request", async () => {
    const h = await start()
    const client = rawClient(h.server.port)
    const bad = await call<Buffer>(client, Buffer.from([0x0a, 0x05, 0x01]))
    if (bad.ok) throw new Error("expected an error")
    expect(bad.error.code).toBe(grpc.status.INVALID_ARGUMENT)
    expect(bad.error.details).toBe("invalid OTLP protobuf: length 5 overruns its message at byte 1")
    expect(statusOf(bad.error)?.code).toBe(grpc.status.INVALID_ARGUMENT)
    expect(h.received).toHaveLength(0)
    expect(h.decodeErrors.map((e) => e.kind)).toEqual(["bad_protobuf"])

    const good = await call<Buffer>(client, Buffer.from(encodeOtlpProtobuf(smallRequest("after"))))
    if (!good.ok) throw good.error
    expect(good.value).toHaveLength(0) // full success: empty ExportMetricsServiceResponse
    expect(h.received.map((r) => r.resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.name)).toEqual(["after"])
    expect(h.received[0]).toEqual(smallRequest("after"))
  })

  it("answers INVALID_ARGUMENT to a message marked gzip that is not gzip, reports it, and keeps serving", async () => {
    const h = await start()
    // grpc-js clients always compress correctly: frame the message by hand.
    const session = http2.connect(`http://127.0.0.1:${h.server.port}`)
    cleanup.push(() => session.close())
    const garbage = Buffer.from("this is not gzip")
    const frame = Buffer.alloc(5 + garbage.length)
    frame.writeUInt8(1, 0) // compressed
    frame.writeUInt32BE(garbage.length, 1)
    garbage.copy(frame, 5)
    const stream = session.request({
      ":method": "POST",
      ":path": METRICS_EXPORT_PATH,
      "content-type": "application/grpc",
      "grpc-encoding": "gzip",
      te: "trailers",
    })
    const status = await new Promise<{ code: string; message: string }>((resolve, reject) => {
      let headers: http2.IncomingHttpHeaders = {}
      stream.on("response", (h2) => {
        headers = h2
      })
      stream.on("trailers", (t) =>
        resolve({ code: String(t["grpc-status"]), message: String(t["grpc-message"]) }),
      )
      // A trailers-only answer carries the status in the headers.
      stream.on("end", () =>
        resolve({ code: String(headers["grpc-status"]), message: String(headers["grpc-message"]) }),
      )
      stream.on("error", reject)
      stream.resume()
      stream.end(frame)
    })
    expect(Number(status.code)).toBe(grpc.status.INVALID_ARGUMENT)
    expect(decodeURIComponent(status.message)).toMatch(/^invalid gzip body: /)
    expect(h.decodeErrors.map((e) => e.kind)).toEqual(["bad_gzip"])
    expect(h.received).toHaveLength(0)
    const good = await call<Buffer>(
      rawClient(h.server.port, { "grpc.default_compression_algorithm": 2 }),
      Buffer.from(encodeOtlpProtobuf(smallRequest("after"))),
    )
    expect(good.ok).toBe(true)
    expect(h.received).toHaveLength(1)
  })

  it("answers INVALID_ARGUMENT when the handler says the data is invalid", async () => {
    const h = await start(async () => ({ ok: false, code: "invalid", message: "metric name empty" }))
    const out = await call<ExportMetricsServiceResponse>(typedClient(h.server.port), smallRequest(""))
    if (out.ok) throw new Error("expected an error")
    expect(out.error.code).toBe(grpc.status.INVALID_ARGUMENT)
    expect(out.error.details).toBe("metric name empty")
  })

  it("returns partial_success with rejected_data_points", async () => {
    const h = await start(async () => ({ ok: true, rejectedDataPoints: 4 }))
    const client = typedClient(h.server.port)
    const out = await call<ExportMetricsServiceResponse>(client, smallRequest("m"))
    if (!out.ok) throw out.error
    expect(out.value).toEqual({
      partialSuccess: {
        rejectedDataPoints: 4n,
        errorMessage: "data points dropped by metrics-governor limits",
      },
    })
    const raw = await call<Buffer>(
      rawClient(h.server.port),
      Buffer.from(encodeOtlpProtobuf(smallRequest("m"))),
    )
    if (!raw.ok) throw raw.error
    expect(decodeOtlpResponseProtobuf(raw.value)).toEqual(Either.right(out.value))
  })

  it("answers UNAVAILABLE (retryable) when the thread decoding the message died, and decodes the next", async () => {
    let dies = true
    const received: Array<number> = []
    const server = await startGrpcServer<number>({
      host: "127.0.0.1",
      port: 0,
      maxReceiveMessageLength: 4 * 1024 * 1024,
      decode: async (bytes) =>
        dies
          ? Either.left(new OtlpDecoderDied({ reason: "its thread exited with code 9" }))
          : Either.right(bytes.length),
      handle: async (n) => {
        received.push(n)
        return { ok: true }
      },
    })
    cleanup.push(() => server.shutdown())
    const out = await call<ExportMetricsServiceResponse>(typedClient(server.port), smallRequest("m"))
    if (out.ok) throw new Error("expected an error")
    expect(out.error.code).toBe(grpc.status.UNAVAILABLE)
    expect(out.error.details).toBe("the OTLP decoder failed: its thread exited with code 9; retry")
    dies = false
    const next = await call<ExportMetricsServiceResponse>(typedClient(server.port), smallRequest("m"))
    expect(next.ok).toBe(true)
    expect(received).toEqual([encodeOtlpProtobuf(smallRequest("m")).length])
  })

  it("answers INTERNAL when the handler fails", async () => {
    const h = await start(async () => {
      throw new Error("boom")
    })
    const out = await call<ExportMetricsServiceResponse>(typedClient(h.server.port), smallRequest("m"))
    if (out.ok) throw new Error("expected an error")
    expect(out.error.code).toBe(grpc.status.INTERNAL)
    expect(out.error.details).toBe("internal error: boom")
  })

  it("refuses messages over maxReceiveMessageLength, also when they only get big after gzip inflation", async () => {
    const h = await start(undefined, 16 * 1024)
    const big = Buffer.from(encodeOtlpProtobuf(smallRequest("m", "x".repeat(64 * 1024))))
    const plain = await call<Buffer>(rawClient(h.server.port), big)
    if (plain.ok) throw new Error("expected an error")
    expect(plain.error.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    // gzip: ~100 bytes on the wire, 64 KiB inflated.
    const gz = await call<Buffer>(rawClient(h.server.port, { "grpc.default_compression_algorithm": 2 }), big)
    if (gz.ok) throw new Error("expected an error")
    expect(gz.error.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    expect(h.received).toHaveLength(0)
    // A small gzip call still goes through.
    const ok = await call<Buffer>(
      rawClient(h.server.port, { "grpc.default_compression_algorithm": 2 }),
      Buffer.from(encodeOtlpProtobuf(smallRequest("small"))),
    )
    expect(ok.ok).toBe(true)
    expect(h.received).toHaveLength(1)
  })

  it("rejects an address it cannot bind, and shuts down idempotently", async () => {
    const h = await start()
    grpc.setLogVerbosity(grpc.logVerbosity.NONE) // grpc-js logs the failed bind itself
    cleanup.push(() => grpc.setLogVerbosity(grpc.logVerbosity.ERROR))
    await expect(
      startGrpcServer({
        host: "127.0.0.1",
        port: h.server.port,
        maxReceiveMessageLength: 1024,
        handle: async () => ({ ok: true }),
      }),
    ).rejects.toThrow()
    await Promise.all([h.server.shutdown(), h.server.shutdown()])
  })
})
