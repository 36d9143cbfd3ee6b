import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { fingerprintDataPoints } from "../../../src/protocols/otlp/adapter.js"
import { runJob } from "../../../src/protocols/otlp/decode-pool.js"
import { decodeOtlpProtobuf, encodeOtlpProtobuf } from "../../../src/protocols/otlp/protobuf.js"
import { MAX_SCAN_ATTRIBUTES, scanFingerprints } from "../../../src/protocols/otlp/scan.js"
import type {
  AnyValue,
  ExportMetricsServiceRequest,
  KeyValue,
  Metric,
  NumberDataPoint,
} from "../../../src/protocols/otlp/types.js"
import { type RequestBounds, UNBOUNDED } from "../../../src/wire/bounds.js"
import { LEN, ProtoWriter } from "../../../src/wire/protobuf.js"
import { dbl, i64, makeArbitraries, u32, u64 } from "./arbitraries.js"

/** What the full path gives: decode, then fingerprint the decoded request. */
const oracle = (bytes: Uint8Array, bounds: RequestBounds = UNBOUNDED) => {
  const decoded = decodeOtlpProtobuf(bytes, bounds)
  return decoded._tag === "Left" ? undefined : fingerprintDataPoints(decoded.right)
}

const pairsOf = (f: { hi: Uint32Array; lo: Uint32Array }) => ({ hi: Array.from(f.hi), lo: Array.from(f.lo) })

// --- requests of the scanned shape --------------------------------------------------------------

// Few keys and values, so that repeated keys, a point's key shadowing its resource's, and empty
// values are common.
const key = fc.constantFrom("a", "b", "c", "env", "service", "é", "")
const scalar: fc.Arbitrary<AnyValue> = fc.oneof(
  fc
    .constantFrom("", "x", "y", "ü", "a-rather-long-value-past-the-intern-bound")
    .map((value): AnyValue => ({ type: "string", value })),
  fc.boolean().map((value): AnyValue => ({ type: "bool", value })),
  i64.map((value): AnyValue => ({ type: "int", value })),
  dbl.map((value): AnyValue => ({ type: "double", value })),
  fc.constant<AnyValue>({ type: "empty" }),
)
const attributes = fc.array(
  fc.record({ key, value: scalar }).map((kv): KeyValue => kv),
  { maxLength: 6 },
)
const point: fc.Arbitrary<NumberDataPoint> = fc.record(
  {
    attributes,
    startTimeUnixNano: u64,
    timeUnixNano: u64,
    value: fc.oneof(
      dbl.map((value) => ({ type: "double" as const, value })),
      i64.map((value) => ({ type: "int" as const, value })),
    ),
    exemplars: fc.constant([]),
    flags: u32,
  },
  { requiredKeys: ["attributes", "startTimeUnixNano", "timeUnixNano", "exemplars", "flags"] },
)
const metric: fc.Arbitrary<Metric> = fc.record(
  {
    name: fc.constantFrom("m", "n", "", "http_requests_total"),
    description: fc.string({ maxLength: 6 }),
    unit: fc.string({ maxLength: 3 }),
    data: fc.oneof(
      fc.array(point, { maxLength: 4 }).map((dataPoints) => ({ type: "gauge" as const, dataPoints })),
      fc
        .tuple(fc.array(point, { maxLength: 4 }), fc.integer({ min: -1, max: 2 }), fc.boolean())
        .map(([dataPoints, aggregationTemporality, isMonotonic]) => ({
          type: "sum" as const,
          dataPoints,
          aggregationTemporality,
          isMonotonic,
        })),
    ),
    metadata: fc.constant([]),
  },
  { requiredKeys: ["name", "description", "unit", "metadata"] },
)
const shaped: fc.Arbitrary<ExportMetricsServiceRequest> = fc.record({
  resourceMetrics: fc.array(
    fc.record(
      {
        resource: fc.record({ attributes, droppedAttributesCount: u32 }),
        scopeMetrics: fc.array(
          fc.record(
            {
              scope: fc.record({
                name: fc.string({ maxLength: 4 }),
                version: fc.string({ maxLength: 4 }),
                attributes,
                droppedAttributesCount: u32,
              }),
              metrics: fc.array(metric, { maxLength: 3 }),
              schemaUrl: fc.string({ maxLength: 4 }),
            },
            { requiredKeys: ["metrics", "schemaUrl"] },
          ),
          { maxLength: 2 },
        ),
        schemaUrl: fc.string({ maxLength: 4 }),
      },
      { requiredKeys: ["scopeMetrics", "schemaUrl"] },
    ),
    { maxLength: 3 },
  ),
})

// --- hand-made wire bytes, for field orders the encoder never writes ------------------------------

const cat = (...parts: Array<Uint8Array>): Uint8Array => Uint8Array.from(Buffer.concat(parts))
const field = (n: number, body: Uint8Array): Uint8Array => {
  const w = new ProtoWriter(16)
  w.tag(n, LEN)
  w.uint32(body.length)
  return cat(w.finish(), body)
}
const text = (n: number, s: string) => field(n, Buffer.from(s, "utf8"))
const kv = (k: string, v: string) => field(1, cat(text(1, k), field(2, text(1, v))))
const numberPoint = (...attrs: Array<[string, string]>) =>
  cat(...attrs.map(([k, v]) => field(7, cat(text(1, k), field(2, text(1, v))))))

describe("scanFingerprints", () => {
  it("law: on requests of the scanned shape it gives exactly the full path's fingerprints", () => {
    fc.assert(
      fc.property(shaped, (req) => {
        const bytes = encodeOtlpProtobuf(req)
        const scanned = scanFingerprints(bytes, UNBOUNDED)
        expect(scanned).toBeDefined()
        expect(pairsOf(scanned as NonNullable<typeof scanned>)).toEqual(pairsOf(fingerprintDataPoints(req)))
      }),
      { numRuns: 1_000 },
    )
  })

  it("law: on any request it gives the full path's fingerprints or leaves the request to it", () => {
    const { request } = makeArbitraries({ unknown: true })
    fc.assert(
      fc.property(request, (req) => {
        const bytes = encodeOtlpProtobuf(req)
        const scanned = scanFingerprints(bytes, UNBOUNDED)
        if (scanned !== undefined) {
          expect(pairsOf(scanned)).toEqual(pairsOf(oracle(bytes) as NonNullable<ReturnType<typeof oracle>>))
        }
      }),
      { numRuns: 1_000 },
    )
  })

  it("law: what it accepts of damaged bytes, the decoder accepts too, with the same fingerprints", () => {
    const damage = fc.oneof(
      fc.tuple(fc.constant("flip" as const), fc.nat(), fc.integer({ min: 1, max: 255 })),
      fc.tuple(fc.constant("cut" as const), fc.nat(), fc.constant(0)),
      fc.tuple(fc.constant("insert" as const), fc.nat(), fc.integer({ min: 0, max: 255 })),
    )
    fc.assert(
      fc.property(shaped, fc.array(damage, { minLength: 1, maxLength: 3 }), (req, damages) => {
        let bytes: Uint8Array = Uint8Array.from(encodeOtlpProtobuf(req))
        for (const [kind, at, b] of damages) {
          if (bytes.length === 0) break
          const i = at % bytes.length
          if (kind === "flip") bytes[i] = (bytes[i] as number) ^ b
          else if (kind === "cut") bytes = bytes.slice(0, i)
          else bytes = cat(bytes.subarray(0, i), Uint8Array.of(b), bytes.subarray(i))
        }
        const scanned = scanFingerprints(bytes, UNBOUNDED)
        if (scanned !== undefined) {
          const full = oracle(bytes)
          expect(full).toBeDefined()
          expect(pairsOf(scanned)).toEqual(pairsOf(full as NonNullable<typeof full>))
        }
      }),
      { numRuns: 2_000 },
    )
  })

  it("law: within any bounds it accepts a request of the scanned shape exactly when the decoder does", () => {
    fc.assert(
      fc.property(shaped, fc.nat({ max: 40 }), fc.nat({ max: 60 }), (req, maxDatapoints, maxElements) => {
        const bounds = { maxDatapoints, maxElements }
        const bytes = encodeOtlpProtobuf(req)
        expect(scanFingerprints(bytes, bounds) !== undefined).toBe(oracle(bytes, bounds) !== undefined)
      }),
      { numRuns: 1_000 },
    )
  })

  it("fingerprints a request larger than the arrays it keeps between scans, and the next one after it", () => {
    const points = (n: number): NumberDataPoint[] =>
      Array.from({ length: n }, (_, i) => ({
        attributes: [{ key: "i", value: { type: "string", value: String(i) } }],
        startTimeUnixNano: 0n,
        timeUnixNano: 1n,
        exemplars: [],
        flags: 0,
      }))
    const request = (n: number): ExportMetricsServiceRequest => ({
      resourceMetrics: [
        {
          scopeMetrics: [
            {
              metrics: [
                {
                  name: "m",
                  description: "",
                  unit: "",
                  metadata: [],
                  data: { type: "gauge", dataPoints: points(n) },
                },
              ],
              schemaUrl: "",
            },
          ],
          schemaUrl: "",
        },
      ],
    })
    for (const n of [70_000, 3]) {
      const req = request(n)
      const scanned = scanFingerprints(encodeOtlpProtobuf(req), UNBOUNDED)
      expect(scanned?.hi.length).toBe(n)
      expect(pairsOf(scanned as NonNullable<typeof scanned>)).toEqual(pairsOf(fingerprintDataPoints(req)))
    }
  })

  it("reads a metric's name written after its data, and a resource written after its scopes", () => {
    const metric = cat(field(5, field(1, numberPoint(["b", "2"], ["a", "1"]))), text(1, "late_name"))
    const scope = field(2, metric)
    const resource = field(1, cat(kv("a", "resource"), kv("z", "r")))
    const bytes = field(1, cat(field(2, scope), resource))
    const scanned = scanFingerprints(bytes, UNBOUNDED)
    const full = oracle(bytes)
    expect(full?.hi.length).toBe(1)
    expect(pairsOf(scanned as NonNullable<typeof scanned>)).toEqual(pairsOf(full as NonNullable<typeof full>))
  })

  it("leaves to the decoder what the decoder keeps the last of, and points past the attribute bound", () => {
    const points = field(1, numberPoint(["a", "1"]))
    // Two data fields: the decoder keeps the sum; two resources: it keeps the second.
    const twoData = field(1, field(2, field(2, cat(text(1, "m"), field(5, points), field(7, points)))))
    const twoResources = field(
      1,
      cat(
        field(1, kv("a", "1")),
        field(1, kv("a", "2")),
        field(2, field(2, cat(text(1, "m"), field(5, points)))),
      ),
    )
    const many = Array.from({ length: MAX_SCAN_ATTRIBUTES + 1 }, (_, i): [string, string] => [`k${i}`, "v"])
    const wide = field(1, field(2, field(2, cat(text(1, "m"), field(5, field(1, numberPoint(...many)))))))
    for (const bytes of [twoData, twoResources, wide]) {
      expect(oracle(bytes)).toBeDefined()
      expect(scanFingerprints(bytes, UNBOUNDED)).toBeUndefined()
    }
  })

  it("refuses a fixed64 that runs past the end of its point or its attribute value, as the decoder does", () => {
    const fixed64 = Uint8Array.of(0x19, 1, 2, 3, 4, 5, 6, 7, 8) // field 3, I64
    // Length prefixes 5: the 8 bytes of the value run past the message they belong to.
    const shortPoint = cat(Uint8Array.of(0x0a, 0x05), fixed64)
    const shortValue = cat(
      Uint8Array.of(0x3a, 14),
      text(1, "k"),
      Uint8Array.of(0x12, 0x05),
      Uint8Array.of(0x21, 1, 2, 3, 4, 5, 6, 7, 8),
    )
    for (const points of [shortPoint, field(1, shortValue)]) {
      const bytes = field(1, field(2, field(2, cat(text(1, "m"), field(5, points)))))
      expect(oracle(bytes)).toBeUndefined()
      expect(scanFingerprints(bytes, UNBOUNDED)).toBeUndefined()
    }
  })

  it("a decoding thread's job gives the same fingerprints for a request outside the scanned shape", () => {
    const req: ExportMetricsServiceRequest = {
      resourceMetrics: [
        {
          scopeMetrics: [
            {
              metrics: [
                {
                  name: "h",
                  description: "",
                  unit: "",
                  metadata: [],
                  data: {
                    type: "histogram",
                    aggregationTemporality: 2,
                    dataPoints: [
                      {
                        attributes: [{ key: "a", value: { type: "string", value: "1" } }],
                        startTimeUnixNano: 0n,
                        timeUnixNano: 1n,
                        count: 1n,
                        bucketCounts: [1n],
                        explicitBounds: [],
                        exemplars: [],
                        flags: 0,
                      },
                    ],
                  },
                },
              ],
              schemaUrl: "",
            },
          ],
          schemaUrl: "",
        },
      ],
    }
    const bytes = encodeOtlpProtobuf(req)
    expect(scanFingerprints(bytes, UNBOUNDED)).toBeUndefined()
    const out = runJob({
      body: bytes,
      encoding: "identity",
      maxDecompressedBytes: 1 << 20,
      bounds: UNBOUNDED,
    })
    expect("fingerprints" in out && pairsOf(out.fingerprints)).toEqual(pairsOf(fingerprintDataPoints(req)))
  })
})
