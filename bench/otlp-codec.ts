/**
 * OTLP metrics codec throughput: `npx tsx bench/otlp-codec.ts [resources] [metrics] [points] [attributes]`
 * (default: 10 resources × 50 metrics × 20 data points = 10,000 points of 5 attributes each, a
 * quarter of the metrics histograms). Compares the hand-written codec with protobufjs reflection
 * over the same schema (`test/protocols/otlp/otlp-reflection.ts`); also times the JSON codec, gzip,
 * and the adapter (`toSeriesBatch`, `applyVerdict`). MB/s are of the uncompressed protobuf bytes.
 */

import * as zlib from "node:zlib"
import { Either } from "effect"
import type { BatchVerdict } from "../src/limits/batch.js"
import { applyVerdict, toSeriesBatch } from "../src/protocols/otlp/adapter.js"
import { decompressGzip } from "../src/protocols/otlp/gzip.js"
import { decodeOtlpJson } from "../src/protocols/otlp/json.js"
import { decodeOtlpProtobuf, encodeOtlpProtobuf } from "../src/protocols/otlp/protobuf.js"
import type { ExportMetricsServiceRequest, Metric } from "../src/protocols/otlp/types.js"
import { ExportMetricsServiceRequestType } from "../test/protocols/otlp/otlp-reflection.js"
import { encodeOtlpJson } from "../test/support/otlp-json.js"

const [resources = 10, metricsPer = 50, pointsPer = 20, attributeCount = 5] = process.argv
  .slice(2)
  .map(Number)

/** `unique`: every attribute value differs (high cardinality: no two points share a value). */
const makeRequest = (unique = false): ExportMetricsServiceRequest => {
  const t0 = 1_760_000_000_123_456_789n
  const resourceMetrics = Array.from({ length: resources }, (_, r) => {
    const metrics: Metric[] = Array.from({ length: metricsPer }, (_, m): Metric => {
      const attrs = (p: number) =>
        Array.from({ length: attributeCount }, (_, a) => ({
          key: ["http.route", "http.method", "status", "pod", "zone", "tenant", "op"][a % 7] ?? `k${a}`,
          value: {
            type: "string" as const,
            value: `${["/api/items", "GET", "200", "api-7d9f8c", "eu-1a"][a % 5]}-${unique ? `${r}.${m}.${p}` : p % 13}-${a}`,
          },
        }))
      const base = { name: `app.metric.${m}`, description: "d", unit: "1", metadata: [] }
      if (m % 4 === 3) {
        return {
          ...base,
          data: {
            type: "histogram",
            aggregationTemporality: 2,
            dataPoints: Array.from({ length: pointsPer }, (_, p) => ({
              attributes: attrs(p),
              startTimeUnixNano: t0,
              timeUnixNano: t0 + 10_000_000_000n,
              count: 100n,
              sum: 1234.5,
              bucketCounts: [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n, 45n],
              explicitBounds: [5, 10, 25, 50, 75, 100, 250, 500, 750, 1000],
              exemplars: [],
              flags: 0,
              min: 1,
              max: 999,
            })),
          },
        }
      }
      return {
        ...base,
        data: {
          type: "sum",
          aggregationTemporality: 2,
          isMonotonic: true,
          dataPoints: Array.from({ length: pointsPer }, (_, p) => ({
            attributes: attrs(p),
            startTimeUnixNano: t0,
            timeUnixNano: t0 + 10_000_000_000n,
            value: { type: "double" as const, value: p * 1.5 },
            exemplars: [],
            flags: 0,
          })),
        },
      }
    })
    return {
      resource: {
        attributes: [
          { key: "service.name", value: { type: "string" as const, value: `svc-${r}` } },
          { key: "host.name", value: { type: "string" as const, value: `host-${r}` } },
        ],
        droppedAttributesCount: 0,
      },
      scopeMetrics: [
        {
          scope: { name: "lib", version: "1", attributes: [], droppedAttributesCount: 0 },
          metrics,
          schemaUrl: "",
        },
      ],
      schemaUrl: "",
    }
  })
  return { resourceMetrics }
}

const time = (label: string, bytes: number, points: number, f: () => unknown): void => {
  for (let i = 0; i < 5; i++) f() // warm up
  const runs: number[] = []
  const deadline = performance.now() + 1_500
  while (performance.now() < deadline || runs.length < 5) {
    const t = performance.now()
    f()
    runs.push(performance.now() - t)
  }
  runs.sort((a, b) => a - b)
  const ms = runs[Math.floor(runs.length / 2)] ?? 0
  const mbs = bytes / 1e6 / (ms / 1e3)
  const ns = (ms * 1e6) / points
  console.log(
    `${label.padEnd(38)} ${ms.toFixed(2).padStart(8)} ms  ${mbs.toFixed(0).padStart(5)} MB/s  ${ns.toFixed(0).padStart(5)} ns/point`,
  )
}

const request = makeRequest()
const bytes = encodeOtlpProtobuf(request)
const decoded = decodeOtlpProtobuf(bytes)
if (Either.isLeft(decoded)) throw decoded.left
const json = encodeOtlpJson(request)
const gz = zlib.gzipSync(bytes)
const message = ExportMetricsServiceRequestType.decode(bytes)
const batch = toSeriesBatch(request)
const n = batch.length

const allPass: BatchVerdict = {
  pass: new Uint32Array(n).fill(1),
  strip: new Uint8Array(n),
  rule: new Array(n),
}
const halfDropped: BatchVerdict = {
  pass: Uint32Array.from({ length: n }, (_, i) => i % 2),
  strip: new Uint8Array(n),
  rule: new Array(n),
}

console.log(
  `${resources} resources × ${metricsPer} metrics × ${pointsPer} points (${attributeCount} attributes): ${n} points, ` +
    `${(bytes.length / 1e6).toFixed(2)} MB protobuf, ${(json.length / 1e6).toFixed(2)} MB JSON, ${(gz.length / 1e6).toFixed(2)} MB gzip`,
)
time("decode  protobuf (hand-written)", bytes.length, n, () => decodeOtlpProtobuf(bytes))
time("decode  protobuf (protobufjs reflection)", bytes.length, n, () =>
  ExportMetricsServiceRequestType.decode(bytes),
)
time("encode  protobuf (hand-written)", bytes.length, n, () => encodeOtlpProtobuf(request))
time("encode  protobuf (protobufjs reflection)", bytes.length, n, () =>
  ExportMetricsServiceRequestType.encode(message).finish(),
)
time("decode  JSON", bytes.length, n, () => decodeOtlpJson(json))
time("        (JSON.parse alone)", bytes.length, n, () => JSON.parse(json))
time("encode  JSON", bytes.length, n, () => encodeOtlpJson(request))
time("gunzip  (bounded)", bytes.length, n, () => decompressGzip(gz, 64 * 1024 * 1024))
time("toSeriesBatch", bytes.length, n, () => toSeriesBatch(request))
time("applyVerdict (all pass: same object)", bytes.length, n, () => applyVerdict(request, allPass))
time("applyVerdict (every other point dropped)", bytes.length, n, () => applyVerdict(request, halfDropped))

const unique = makeRequest(true)
const uniqueBytes = encodeOtlpProtobuf(unique)
console.log(
  `\nsame shape, every attribute value distinct: ${(uniqueBytes.length / 1e6).toFixed(2)} MB protobuf`,
)
time("decode  protobuf (hand-written)", uniqueBytes.length, n, () => decodeOtlpProtobuf(uniqueBytes))
time("decode  protobuf (protobufjs reflection)", uniqueBytes.length, n, () =>
  ExportMetricsServiceRequestType.decode(uniqueBytes),
)
time("toSeriesBatch", uniqueBytes.length, n, () => toSeriesBatch(unique))
