/**
 * Interop with the official OpenTelemetry JS exporters over OTLP/HTTP: binary protobuf
 * (`exporter-metrics-otlp-proto`, plain and gzip) and JSON (`exporter-metrics-otlp-http`), sent
 * to a tiny node:http server on 127.0.0.1 that decodes with our codecs.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { OTLPMetricExporter as JsonExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPMetricExporter as ProtoExporter } from "@opentelemetry/exporter-metrics-otlp-proto"
import type { ResourceMetrics } from "@opentelemetry/sdk-metrics"
import { Either } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { decompressGzip } from "../../../src/protocols/otlp/gzip.js"
import { decodeOtlpJson, encodeOtlpResponseJson } from "../../../src/protocols/otlp/json.js"
import { decodeOtlpProtobuf, encodeOtlpResponseProtobuf } from "../../../src/protocols/otlp/protobuf.js"
import { encodeRpcStatus } from "../../../src/protocols/otlp/status.js"
import type { ExportMetricsServiceRequest } from "../../../src/protocols/otlp/types.js"
import { collectSample, expectSameAsSdk } from "./sdk.js"

interface Received {
  readonly contentType: string
  readonly contentEncoding: string
  readonly wireBytes: number
  readonly request: ExportMetricsServiceRequest
}

interface Receiver {
  readonly url: string
  readonly received: Received[]
  readonly close: () => Promise<void>
}

const MAX_BODY = 20 * 1024 * 1024

const startReceiver = async (): Promise<Receiver> => {
  const received: Received[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const body = Buffer.concat(chunks)
      const contentType = String(req.headers["content-type"] ?? "")
      const contentEncoding = String(req.headers["content-encoding"] ?? "")
      const json = contentType.startsWith("application/json")
      const inflated = contentEncoding === "gzip" ? decompressGzip(body, MAX_BODY) : Either.right(body)
      const decoded = Either.flatMap(inflated, (b) => (json ? decodeOtlpJson(b) : decodeOtlpProtobuf(b)))
      if (Either.isLeft(decoded)) {
        res.writeHead(decoded.left.httpStatus, { "content-type": "application/x-protobuf" })
        res.end(encodeRpcStatus({ code: 3, message: decoded.left.message, details: [] }))
        return
      }
      received.push({ contentType, contentEncoding, wireBytes: body.length, request: decoded.right })
      res.writeHead(200, { "content-type": json ? "application/json" : "application/x-protobuf" })
      res.end(json ? encodeOtlpResponseJson({}) : encodeOtlpResponseProtobuf({}))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/v1/metrics`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

interface Exporter {
  export(metrics: ResourceMetrics, done: (result: { code: number; error?: Error }) => void): void
  shutdown(): Promise<void>
}

const exportOnce = (exporter: Exporter, metrics: ResourceMetrics) =>
  new Promise<{ code: number; error?: Error }>((resolve) => exporter.export(metrics, resolve))

type ProtoOptions = NonNullable<ConstructorParameters<typeof ProtoExporter>[0]>

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

describe("interop: OpenTelemetry JS SDK → OTLP/HTTP → our decoders", () => {
  it("binary protobuf (exporter-metrics-otlp-proto)", async () => {
    const receiver = await startReceiver()
    cleanup.push(receiver.close)
    const exporter = new ProtoExporter({ url: receiver.url })
    cleanup.push(() => exporter.shutdown())
    const sdk = await collectSample()
    const result = await exportOnce(exporter, sdk)
    expect(result.error).toBeUndefined()
    expect(result.code).toBe(0)
    expect(receiver.received).toHaveLength(1)
    expect(receiver.received[0]?.contentType).toBe("application/x-protobuf")
    expectSameAsSdk(sdk, receiver.received[0]?.request as ExportMetricsServiceRequest)
  })

  it("binary protobuf, gzip-compressed", async () => {
    const receiver = await startReceiver()
    cleanup.push(receiver.close)
    const exporter = new ProtoExporter({
      url: receiver.url,
      compression: "gzip" as NonNullable<ProtoOptions["compression"]>,
    })
    cleanup.push(() => exporter.shutdown())
    const sdk = await collectSample()
    expect((await exportOnce(exporter, sdk)).code).toBe(0)
    expect(receiver.received[0]?.contentEncoding).toBe("gzip")
    expectSameAsSdk(sdk, receiver.received[0]?.request as ExportMetricsServiceRequest)
  })

  it("JSON (exporter-metrics-otlp-http)", async () => {
    const receiver = await startReceiver()
    cleanup.push(receiver.close)
    const exporter = new JsonExporter({ url: receiver.url })
    cleanup.push(() => exporter.shutdown())
    const sdk = await collectSample()
    const result = await exportOnce(exporter, sdk)
    expect(result.error).toBeUndefined()
    expect(result.code).toBe(0)
    expect(receiver.received[0]?.contentType).toMatch(/^application\/json/)
    expectSameAsSdk(sdk, receiver.received[0]?.request as ExportMetricsServiceRequest)
  })

  it("the same data decodes identically from protobuf and JSON", async () => {
    const receiver = await startReceiver()
    cleanup.push(receiver.close)
    const proto = new ProtoExporter({ url: receiver.url })
    const json = new JsonExporter({ url: receiver.url })
    cleanup.push(
      () => proto.shutdown(),
      () => json.shutdown(),
    )
    const sdk = await collectSample()
    expect((await exportOnce(proto, sdk)).code).toBe(0)
    expect((await exportOnce(json, sdk)).code).toBe(0)
    expect(receiver.received[1]?.request).toEqual(receiver.received[0]?.request)
  })
})
