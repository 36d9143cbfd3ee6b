/**
 * The official OpenTelemetry JS SDK as a source of OTLP: a MeterProvider with every synchronous
 * instrument kind, collected by a manual reader, and a normal form that compares what the SDK
 * holds with what our decoders read off the wire, data point for data point.
 */
import { ValueType } from "@opentelemetry/api"
import { resourceFromAttributes } from "@opentelemetry/resources"
import {
  AggregationType,
  DataPointType,
  type ExponentialHistogram,
  type Histogram,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics"
import { expect } from "vitest"
import { toSeriesBatch } from "../../../src/protocols/otlp/adapter.js"
import type { AnyValue, ExportMetricsServiceRequest, KeyValue } from "../../../src/protocols/otlp/types.js"

class ManualReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

export const RESOURCE = {
  "service.name": "interop",
  "service.instance.id": "i-1",
  "host.cpus": 8,
  "deployment.canary": false,
}
export const SCOPE = { name: "interop-scope", version: "1.2.3" }

/** Records a known set of measurements and returns what the SDK collected. */
export const collectSample = async (): Promise<ResourceMetrics> => {
  const reader = new ManualReader()
  const provider = new MeterProvider({
    resource: resourceFromAttributes(RESOURCE),
    readers: [reader],
    views: [{ instrumentName: "payload.size", aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } }],
  })
  const meter = provider.getMeter(SCOPE.name, SCOPE.version)

  const requests = meter.createCounter("http.requests", {
    valueType: ValueType.INT,
    unit: "1",
    description: "requests",
  })
  requests.add(3, { route: "/a", ok: true })
  requests.add(2, { route: "/a", ok: true })
  requests.add(1, { route: "/b", code: 404, tags: ["x", "y"] })

  const queue = meter.createUpDownCounter("queue.depth", { valueType: ValueType.INT })
  queue.add(7, { queue: "q1" })
  queue.add(-10, { queue: "q1" })
  queue.add(4, { queue: "q2" })

  const temperature = meter.createGauge("room.temperature", { unit: "Cel" })
  temperature.record(21.5, { room: "kitchen", ratio: 0.25 })
  temperature.record(-3.75, { room: "garage" })

  const latency = meter.createHistogram("http.latency", {
    unit: "ms",
    advice: { explicitBucketBoundaries: [10, 100, 1000] },
  })
  for (const v of [5, 50, 50, 500, 5000]) latency.record(v, { route: "/a" })
  latency.record(0.5, { route: "/b" })

  const size = meter.createHistogram("payload.size", { unit: "By" })
  for (const v of [1, 2, 4, 1024, 0, -8]) size.record(v, { kind: "body" }) // the SDK ignores -8

  const { resourceMetrics, errors } = await reader.collect()
  await provider.shutdown()
  if (errors.length > 0) throw new Error(`collect errors: ${errors.join(", ")}`)
  return resourceMetrics
}

/** One data point, in a form both sides can be brought to. */
export interface NormalPoint {
  readonly metric: string
  readonly kind: string
  readonly attributes: Record<string, unknown>
  readonly startTimeUnixNano: bigint
  readonly timeUnixNano: bigint
  readonly value: unknown
}

const hrNanos = ([s, ns]: readonly [number, number]): bigint => BigInt(s) * 1_000_000_000n + BigInt(ns)

/** The SDK's view. */
export const normalizeSdk = (rm: ResourceMetrics): NormalPoint[] => {
  const out: NormalPoint[] = []
  for (const sm of rm.scopeMetrics) {
    for (const m of sm.metrics) {
      for (const p of m.dataPoints) {
        let kind: string
        let value: unknown
        switch (m.dataPointType) {
          case DataPointType.SUM:
            kind = m.isMonotonic ? "sum/monotonic" : "sum"
            value = p.value
            break
          case DataPointType.GAUGE:
            kind = "gauge"
            value = p.value
            break
          case DataPointType.HISTOGRAM: {
            kind = "histogram"
            const h = p.value as Histogram
            value = {
              count: h.count,
              sum: h.sum,
              min: h.min,
              max: h.max,
              bounds: h.buckets.boundaries,
              counts: h.buckets.counts,
            }
            break
          }
          case DataPointType.EXPONENTIAL_HISTOGRAM: {
            kind = "exponentialHistogram"
            const h = p.value as ExponentialHistogram
            value = {
              count: h.count,
              sum: h.sum,
              min: h.min,
              max: h.max,
              scale: h.scale,
              zeroCount: h.zeroCount,
              positive: { offset: h.positive.offset, counts: h.positive.bucketCounts },
              negative: { offset: h.negative.offset, counts: h.negative.bucketCounts },
            }
            break
          }
        }
        out.push({
          metric: m.descriptor.name,
          kind,
          attributes: { ...p.attributes },
          startTimeUnixNano: hrNanos(p.startTime),
          timeUnixNano: hrNanos(p.endTime),
          value,
        })
      }
    }
  }
  return out
}

const plain = (v: AnyValue): unknown => {
  switch (v.type) {
    case "string":
    case "bool":
    case "double":
      return v.value
    case "int":
      return Number(v.value)
    case "array":
      return v.values.map(plain)
    case "kvlist":
      return Object.fromEntries(v.values.map((kv) => [kv.key, plain(kv.value)]))
    case "bytes":
      return v.value
    case "empty":
      return undefined
  }
}

export const plainAttributes = (attrs: ReadonlyArray<KeyValue>): Record<string, unknown> =>
  Object.fromEntries(attrs.map((kv) => [kv.key, plain(kv.value)]))

/** Our decoder's view. */
export const normalizeDecoded = (req: ExportMetricsServiceRequest): NormalPoint[] => {
  const out: NormalPoint[] = []
  for (const rm of req.resourceMetrics) {
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        const d = m.data
        if (d === undefined) continue
        for (const p of d.dataPoints) {
          let kind: string = d.type
          let value: unknown
          if (d.type === "gauge" || d.type === "sum") {
            if (d.type === "sum" && d.isMonotonic) kind = "sum/monotonic"
            const v = (p as (typeof d.dataPoints)[number]).value
            value = v === undefined ? undefined : v.type === "int" ? Number(v.value) : v.value
          } else if (d.type === "histogram") {
            const h = p as (typeof d.dataPoints)[number]
            value = {
              count: Number(h.count),
              sum: h.sum,
              min: h.min,
              max: h.max,
              bounds: h.explicitBounds,
              counts: h.bucketCounts.map(Number),
            }
          } else if (d.type === "exponentialHistogram") {
            const h = p as (typeof d.dataPoints)[number]
            value = {
              count: Number(h.count),
              sum: h.sum,
              min: h.min,
              max: h.max,
              scale: h.scale,
              zeroCount: Number(h.zeroCount),
              positive: {
                offset: h.positive?.offset ?? 0,
                counts: (h.positive?.bucketCounts ?? []).map(Number),
              },
              negative: {
                offset: h.negative?.offset ?? 0,
                counts: (h.negative?.bucketCounts ?? []).map(Number),
              },
            }
          }
          out.push({
            metric: m.name,
            kind,
            attributes: plainAttributes(p.attributes),
            startTimeUnixNano: p.startTimeUnixNano,
            timeUnixNano: p.timeUnixNano,
            value,
          })
        }
      }
    }
  }
  return out
}

/** The assertions shared by every transport: same points, same values, same attributes, exact times. */
export const expectSameAsSdk = (sdk: ResourceMetrics, req: ExportMetricsServiceRequest): void => {
  expect(req.resourceMetrics).toHaveLength(1)
  const rm = req.resourceMetrics[0]
  expect(plainAttributes(rm?.resource?.attributes ?? [])).toMatchObject(RESOURCE)
  expect(rm?.scopeMetrics.map((sm) => [sm.scope?.name, sm.scope?.version])).toEqual([
    [SCOPE.name, SCOPE.version],
  ])

  const expected = normalizeSdk(sdk)
  const actual = normalizeDecoded(req)
  expect(actual).toHaveLength(9)
  expect(actual).toEqual(expected)

  // A few values spelled out, independent of the normal forms.
  const byKey = new Map(actual.map((p) => [`${p.metric} ${JSON.stringify(p.attributes)}`, p]))
  expect(byKey.get('http.requests {"route":"/a","ok":true}')?.value).toBe(5)
  expect(byKey.get('http.requests {"route":"/b","code":404,"tags":["x","y"]}')?.value).toBe(1)
  expect(byKey.get('queue.depth {"queue":"q1"}')?.value).toBe(-3)
  expect(byKey.get('queue.depth {"queue":"q1"}')?.kind).toBe("sum")
  expect(byKey.get('http.requests {"route":"/a","ok":true}')?.kind).toBe("sum/monotonic")
  expect(byKey.get('room.temperature {"room":"kitchen","ratio":0.25}')?.value).toBe(21.5)
  expect(byKey.get('http.latency {"route":"/a"}')?.value).toMatchObject({
    count: 5,
    sum: 5605,
    min: 5,
    max: 5000,
    bounds: [10, 100, 1000],
    counts: [1, 2, 1, 1],
  })
  expect(byKey.get('payload.size {"kind":"body"}')?.kind).toBe("exponentialHistogram")
  expect(byKey.get('payload.size {"kind":"body"}')?.value).toMatchObject({
    count: 5,
    sum: 1031,
    zeroCount: 1,
  })
  // Times are nanoseconds, exact (not rounded to a double).
  for (const p of actual) expect(p.timeUnixNano).toBeGreaterThan(1_600_000_000_000_000_000n)

  // And the limits engine's view of it: one entry per data point, resource + point labels.
  const batch = toSeriesBatch(req)
  expect(batch.length).toBe(9)
  const i = batch.names.findIndex((n, j) => n === "http.requests" && batch.labels[j]?.includes("/a"))
  expect(batch.labels[i]).toEqual([
    "deployment.canary",
    "false",
    "host.cpus",
    "8",
    "ok",
    "true",
    "route",
    "/a",
    "service.instance.id",
    "i-1",
    "service.name",
    "interop",
  ])
}
