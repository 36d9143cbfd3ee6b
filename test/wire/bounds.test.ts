/**
 * The request bounds inside each decoder (`receivers.max_datapoints_per_request`,
 * `receivers.max_elements_per_request`): a request is decoded exactly when it is within them, and
 * decoding stops at the first datapoint or element past them. The receivers' answers are tested
 * end to end in `request-bounds.test.ts`.
 */

import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { countDataPoints } from "../../src/protocols/otlp/adapter.js"
import { decodeOtlpJson } from "../../src/protocols/otlp/json.js"
import { decodeOtlpProtobuf, encodeOtlpProtobuf } from "../../src/protocols/otlp/protobuf.js"
import type { AnyValue, ExportMetricsServiceRequest, KeyValue } from "../../src/protocols/otlp/types.js"
import { encodeWriteRequest } from "../../src/protocols/prw/codec.js"
import { scanWriteRequest } from "../../src/protocols/prw/scan.js"
import type { WriteRequest } from "../../src/protocols/prw/types.js"
import type { RequestBounds } from "../../src/wire/bounds.js"
import { makeArbitraries } from "../protocols/otlp/arbitraries.js"
import { writeRequest } from "../protocols/prw/arbitraries.js"
import { encodeOtlpJson } from "../support/otlp-json.js"
import { decodeWriteRequest } from "../support/prw.js"

const HUGE = 1_000_000_000
const bounds = (maxDatapoints: number, maxElements = HUGE): RequestBounds => ({ maxDatapoints, maxElements })
const { request: otlpRequest } = makeArbitraries({ unknown: false })

// --- reference counts --------------------------------------------------------------------------

const anyValueElements = (v: AnyValue): number =>
  v.type === "array"
    ? v.values.reduce((n, x) => n + 1 + anyValueElements(x), 0)
    : v.type === "kvlist"
      ? attributeElements(v.values)
      : 0
const attributeElements = (kvs: ReadonlyArray<KeyValue>): number =>
  kvs.reduce((n, kv) => n + 1 + anyValueElements(kv.value), 0)

/** What the protobuf decoder counts as elements: every item of a repeated field, at any depth. */
const otlpElements = (req: ExportMetricsServiceRequest): number => {
  let n = 0
  for (const rm of req.resourceMetrics) {
    n += 1 + attributeElements(rm.resource?.attributes ?? [])
    for (const sm of rm.scopeMetrics) {
      n += 1 + attributeElements(sm.scope?.attributes ?? [])
      for (const m of sm.metrics) {
        n += 1 + attributeElements(m.metadata)
        for (const p of m.data?.dataPoints ?? []) {
          n += 1 + attributeElements(p.attributes)
          if ("exemplars" in p) for (const e of p.exemplars) n += 1 + attributeElements(e.filteredAttributes)
          if ("explicitBounds" in p) n += p.bucketCounts.length + p.explicitBounds.length
          if ("scale" in p)
            n += (p.positive?.bucketCounts.length ?? 0) + (p.negative?.bucketCounts.length ?? 0)
          if ("quantileValues" in p) n += p.quantileValues.length
        }
      }
    }
  }
  return n
}

const prwDatapoints = (req: WriteRequest): number =>
  req.timeseries.reduce((n, ts) => n + ts.samples.length + ts.histograms.length, 0)

// --- OTLP --------------------------------------------------------------------------------------

/** One gauge of `n` data points without attributes. */
const gauge = (n: number): ExportMetricsServiceRequest => ({
  resourceMetrics: [
    {
      schemaUrl: "",
      scopeMetrics: [
        {
          schemaUrl: "",
          metrics: [
            {
              name: "g",
              description: "",
              unit: "",
              metadata: [],
              data: {
                type: "gauge",
                dataPoints: Array.from({ length: n }, () => ({
                  attributes: [],
                  startTimeUnixNano: 0n,
                  timeUnixNano: 1n,
                  value: { type: "double", value: 1 },
                  exemplars: [],
                  flags: 0,
                })),
              },
            },
          ],
        },
      ],
    },
  ],
})

const tooMany = (e: Either.Either<unknown, { kind: string; message: string }>): string => {
  expect(Either.isLeft(e)).toBe(true)
  const left = (e as Either.Left<{ kind: string; message: string }, unknown>).left
  expect(left.kind).toBe("too_many")
  return left.message
}

describe("OTLP protobuf within bounds", () => {
  it("decodes exactly the bound, refuses one datapoint more, naming the key", () => {
    const body = encodeOtlpProtobuf(gauge(10))
    expect(Either.isRight(decodeOtlpProtobuf(body, bounds(10)))).toBe(true)
    expect(tooMany(decodeOtlpProtobuf(body, bounds(9)))).toBe(
      "request has more than 9 datapoints (receivers.max_datapoints_per_request)",
    )
  })

  it("refuses empty data points, metrics and resources past the element bound", () => {
    const empties = (field: number, n: number) => {
      const out = new Uint8Array(2 * n)
      for (let i = 0; i < n; i++) out[2 * i] = (field << 3) | 2
      return out
    }
    // 100 empty resourceMetrics: no datapoints at all.
    expect(tooMany(decodeOtlpProtobuf(empties(1, 100), bounds(HUGE, 99)))).toBe(
      "request has more than 99 elements (receivers.max_elements_per_request)",
    )
    expect(Either.isRight(decodeOtlpProtobuf(empties(1, 100), bounds(HUGE, 100)))).toBe(true)
  })

  it("keeps a million unknown fields in linear time (they cost bytes, not objects)", () => {
    // 2 MB of `18 00` (field 3, varint 0): unknown at the top of a request. Appending each field to
    // a copy of all the previous ones took minutes.
    const n = 1_000_000
    const body = new Uint8Array(2 * n)
    for (let i = 0; i < n; i++) body[2 * i] = 0x18
    const started = performance.now()
    const decoded = decodeOtlpProtobuf(body, bounds(10, 10))
    expect(performance.now() - started).toBeLessThan(2_000)
    const kept = Either.isRight(decoded) ? decoded.right.unknownFields : undefined
    expect(kept !== undefined && Buffer.from(body).equals(kept)).toBe(true)
  }, 30_000)

  it("counts the buckets of an exponential histogram that has negative buckets only", () => {
    // Found by the law below: the reference count missed `negative` when `positive` was absent.
    const req = gauge(1)
    const metric = req.resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]
    if (metric === undefined) throw new Error("no metric")
    const point = {
      attributes: [],
      startTimeUnixNano: 0n,
      timeUnixNano: 0n,
      count: 0n,
      scale: 0,
      zeroCount: 0n,
      negative: { offset: 0, bucketCounts: [0n, 1n] },
      flags: 0,
      exemplars: [],
      zeroThreshold: 0,
    }
    const withNegative = {
      ...req,
      resourceMetrics: [
        {
          ...req.resourceMetrics[0],
          scopeMetrics: [
            {
              ...req.resourceMetrics[0]?.scopeMetrics[0],
              metrics: [
                {
                  ...metric,
                  data: { type: "exponentialHistogram", dataPoints: [point], aggregationTemporality: 0 },
                },
              ],
            },
          ],
        },
      ],
    } as unknown as ExportMetricsServiceRequest
    // resource, scope, metric, point, and two bucket counts.
    expect(otlpElements(withNegative)).toBe(6)
    const body = encodeOtlpProtobuf(withNegative)
    expect(Either.isRight(decodeOtlpProtobuf(body, bounds(1, 6)))).toBe(true)
    tooMany(decodeOtlpProtobuf(body, bounds(1, 5)))
  })

  it("law: decodes exactly when datapoints and elements are within the bounds", () => {
    fc.assert(
      fc.property(otlpRequest, fc.nat({ max: 40 }), fc.nat({ max: 200 }), (req, dp, el) => {
        const body = encodeOtlpProtobuf(req)
        const within = countDataPoints(req) <= dp && otlpElements(req) <= el
        const decoded = decodeOtlpProtobuf(body, bounds(dp, el))
        expect(Either.isRight(decoded)).toBe(within)
        if (!within) tooMany(decoded)
      }),
      { numRuns: 300 },
    )
  })
})

describe("OTLP/JSON within bounds", () => {
  it("decodes exactly the bound, refuses one datapoint more, naming the key", () => {
    const body = encodeOtlpJson(gauge(10))
    expect(Either.isRight(decodeOtlpJson(body, bounds(10)))).toBe(true)
    expect(tooMany(decodeOtlpJson(body, bounds(9)))).toBe(
      "request has more than 9 datapoints (receivers.max_datapoints_per_request)",
    )
  })

  it("refuses a body of empty objects before parsing it, also inside strings it does not count", () => {
    const points = (n: number) =>
      `{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x,{","gauge":{"dataPoints":[${Array(n).fill("{}").join(",")}]}}]}]}]}`
    // 4 objects around the points, then n objects and n - 1 commas; the name's "," and "{" do not count.
    expect(Either.isRight(decodeOtlpJson(points(100), bounds(HUGE, 5 + 100 + 99 + 1)))).toBe(true)
    expect(tooMany(decodeOtlpJson(points(100), bounds(HUGE, 5 + 100 + 99)))).toBe(
      "request has more than 204 elements (receivers.max_elements_per_request)",
    )
  })

  it("law: decodes exactly when the datapoints are within the bound", () => {
    fc.assert(
      fc.property(otlpRequest, fc.nat({ max: 40 }), (req, dp) => {
        const decoded = decodeOtlpJson(encodeOtlpJson(req), bounds(dp))
        expect(Either.isRight(decoded)).toBe(countDataPoints(req) <= dp)
      }),
      { numRuns: 300 },
    )
  })
})

// --- remote write -------------------------------------------------------------------------------

describe("remote write within bounds", () => {
  const series = (samples: number): WriteRequest => ({
    timeseries: [
      {
        labels: [{ name: "__name__", value: "m" }],
        samples: Array.from({ length: samples }, (_, i) => ({ value: i, timestamp: i })),
        exemplars: [],
        histograms: [],
        unknown: [],
      },
    ],
    metadata: [],
    unknown: [],
  })

  it("scan and decode take exactly the bound and refuse one sample more, naming the key", () => {
    const body = encodeWriteRequest(series(10))
    expect(Either.isRight(scanWriteRequest(body, bounds(10)))).toBe(true)
    expect(Either.isRight(decodeWriteRequest(body, bounds(10)))).toBe(true)
    const message = "request has more than 9 datapoints (receivers.max_datapoints_per_request)"
    expect(tooMany(scanWriteRequest(body, bounds(9)))).toBe(message)
    expect(tooMany(decodeWriteRequest(body, bounds(9)))).toBe(message)
  })

  it("law: scan and decode agree under any bounds, and take a request exactly when its datapoints fit", () => {
    fc.assert(
      fc.property(writeRequest, fc.nat({ max: 12 }), fc.nat({ max: 60 }), (req, dp, el) => {
        const body = encodeWriteRequest(req)
        const scanned = scanWriteRequest(body, bounds(dp, el))
        const decoded = decodeWriteRequest(body, bounds(dp, el))
        expect(Either.isLeft(scanned)).toBe(Either.isLeft(decoded))
        if (Either.isLeft(scanned) && Either.isLeft(decoded)) {
          expect(scanned.left.kind).toBe(decoded.left.kind)
          expect(scanned.left.message).toBe(decoded.left.message)
        }
        const unboundedElements = scanWriteRequest(body, bounds(dp))
        if (Either.isRight(decodeWriteRequest(body))) {
          expect(Either.isRight(unboundedElements)).toBe(prwDatapoints(req) <= dp)
        }
      }),
      { numRuns: 500 },
    )
  })
})
