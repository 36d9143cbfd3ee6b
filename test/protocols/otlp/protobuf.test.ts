import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  decodeOtlpProtobuf,
  decodeOtlpResponseProtobuf,
  encodeOtlpProtobuf,
  encodeOtlpResponseProtobuf,
} from "../../../src/protocols/otlp/protobuf.js"
import type { AnyValue, ExportMetricsServiceRequest } from "../../../src/protocols/otlp/types.js"
import { ProtoWriter } from "../../../src/wire/protobuf.js"
import { makeArbitraries, NANOS, U64_MAX } from "./arbitraries.js"
import { ExportMetricsServiceRequestType } from "./otlp-reflection.js"

const NUM_RUNS = 300
const { request } = makeArbitraries({ unknown: true })

const decodeOk = (bytes: Uint8Array): ExportMetricsServiceRequest => {
  const r = decodeOtlpProtobuf(bytes)
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}

const decodeErr = (bytes: Uint8Array): string => {
  const r = decodeOtlpProtobuf(bytes)
  if (Either.isRight(r)) throw new Error("decoded")
  expect(r.left._tag).toBe("OtlpDecodeError")
  expect(r.left.kind).toBe("bad_protobuf")
  return r.left.message
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex")
const s = (value: string): AnyValue => ({ type: "string", value })

const gaugeRequest = (
  attrs: ReadonlyArray<{ key: string; value: AnyValue }>,
): ExportMetricsServiceRequest => ({
  resourceMetrics: [
    {
      scopeMetrics: [
        {
          metrics: [
            {
              name: "g",
              description: "",
              unit: "",
              metadata: [],
              data: {
                type: "gauge",
                dataPoints: [
                  {
                    attributes: attrs,
                    startTimeUnixNano: 0n,
                    timeUnixNano: NANOS,
                    value: { type: "double", value: 1.5 },
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
})

describe("OTLP protobuf codec", () => {
  it("round-trips arbitrary requests of every metric kind, exactly (NaN, ±Inf, -0, 64-bit values, unknown fields)", () => {
    fc.assert(
      fc.property(request, (req) => {
        const bytes = encodeOtlpProtobuf(req)
        const back = decodeOk(bytes)
        expect(back).toEqual(req)
        // Canonical: re-encoding the decoded request gives the same bytes.
        expect(hex(encodeOtlpProtobuf(back))).toBe(hex(bytes))
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it("agrees with an independent implementation (protobufjs reflection) in both directions", () => {
    const { request: known } = makeArbitraries({ unknown: false })
    fc.assert(
      fc.property(known, (req) => {
        const theirs = ExportMetricsServiceRequestType.decode(encodeOtlpProtobuf(req))
        expect(ExportMetricsServiceRequestType.verify(theirs)).toBeNull()
        expect(decodeOk(ExportMetricsServiceRequestType.encode(theirs).finish())).toEqual(req)
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it("keeps fixed64 nanoseconds exact: 1700000000123456789 and 2^64-1", () => {
    const req = gaugeRequest([])
    const bytes = encodeOtlpProtobuf(req)
    // time_unix_nano (field 3, fixed64): tag 0x19 then the little-endian value.
    const le = Buffer.alloc(8)
    le.writeBigUInt64LE(NANOS)
    expect(hex(bytes)).toContain(`19${le.toString("hex")}`)
    const point = decodeOk(bytes).resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.data?.dataPoints[0]
    expect(point?.timeUnixNano).toBe(1700000000123456789n)

    const w = new ProtoWriter()
    w.fixed64(U64_MAX)
    expect(hex(w.finish())).toBe("ffffffffffffffff")
  })

  it("encodes known bytes the way the OTLP field numbers say", () => {
    // ExportMetricsServiceRequest{ resource_metrics: [{ scope_metrics: [{ metrics: [{ name: "g", gauge: { data_points: [{ as_int: 7, attributes: [{ key: "k", value: { string_value: "v" } }] }] } }] }] }] }
    const req: ExportMetricsServiceRequest = {
      resourceMetrics: [
        {
          scopeMetrics: [
            {
              metrics: [
                {
                  name: "g",
                  description: "",
                  unit: "",
                  metadata: [],
                  data: {
                    type: "gauge",
                    dataPoints: [
                      {
                        attributes: [{ key: "k", value: { type: "string", value: "v" } }],
                        startTimeUnixNano: 0n,
                        timeUnixNano: 0n,
                        value: { type: "int", value: 7n },
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
    // 0a rm{ 12 sm{ 12 metric{ 0a01 67 "g"  2a gauge{ 0a ndp{ 31 as_int(7, sfixed64)  3a kv{ 0a01 6b 12 av{ 0a01 76 } } } } } } }
    const expected = "0a1e121c121a0a01672a150a13" + "310700000000000000" + "3a080a016b12030a0176"
    // lengths: kv = 8, ndp = 9 + 10 = 19 (0x13), gauge = 21 (0x15), metric = 3 + 2 + 21 = 26 (0x1a), …
    expect(hex(encodeOtlpProtobuf(req))).toBe(expected)
    expect(decodeOk(Buffer.from(expected, "hex"))).toEqual(req)
  })

  it("accepts unpacked repeated scalars and fields in any order", () => {
    // HistogramDataPoint with bucket_counts unpacked (field 6, I64) and explicit_bounds unpacked (field 7, I64),
    // attributes after the counts, then count.
    const w = new ProtoWriter()
    const rm = w.beginLen(1)
    const sm = w.beginLen(2)
    const m = w.beginLen(2)
    w.tag(1, 2)
    w.string("h")
    const h = w.beginLen(9)
    const dp = w.beginLen(1)
    w.tag(6, 1)
    w.fixed64(1n)
    w.tag(7, 1)
    w.double(0.5)
    w.tag(6, 1)
    w.fixed64(2n)
    w.tag(4, 1)
    w.fixed64(3n)
    w.endLen(dp)
    w.tag(2, 0)
    w.uint32(2)
    w.endLen(h)
    w.endLen(m)
    w.endLen(sm)
    w.endLen(rm)
    const data = decodeOk(w.finish()).resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.data
    expect(data).toEqual({
      type: "histogram",
      aggregationTemporality: 2,
      dataPoints: [
        {
          attributes: [],
          startTimeUnixNano: 0n,
          timeUnixNano: 0n,
          count: 3n,
          bucketCounts: [1n, 2n],
          explicitBounds: [0.5],
          exemplars: [],
          flags: 0,
        },
      ],
    })
  })

  it("rejects a packed bucket_counts or explicit_bounds whose length is not a whole number of 8-byte values", () => {
    const histogramWithPacked = (field: number, length: number): Uint8Array => {
      const w = new ProtoWriter()
      const rm = w.beginLen(1)
      const sm = w.beginLen(2)
      const m = w.beginLen(2)
      const h = w.beginLen(9)
      const dp = w.beginLen(1)
      w.tag(field, 2)
      w.bytes(new Uint8Array(length).fill(1))
      w.endLen(dp)
      w.endLen(h)
      w.endLen(m)
      w.endLen(sm)
      w.endLen(rm)
      return w.finish()
    }
    for (const field of [6, 7]) {
      expect(decodeOk(histogramWithPacked(field, 16)).resourceMetrics.length).toBe(1)
      for (const length of [4, 12, 15])
        expect(decodeErr(histogramWithPacked(field, length))).toMatch(
          /packed 64-bit field length is not a multiple of 8/,
        )
    }
  })

  it("keeps unknown fields and known fields of an unexpected wire type, and re-emits them", () => {
    // Resource with entity_refs (field 3, unknown here) and dropped_attributes_count sent as I64 (wrong type).
    const w = new ProtoWriter()
    const rm = w.beginLen(1)
    const res = w.beginLen(1)
    w.tag(3, 2)
    w.bytes(new Uint8Array([0x0a, 0x01, 0x78]))
    w.tag(2, 1)
    w.fixed64(5n)
    w.endLen(res)
    w.endLen(rm)
    const bytes = w.finish()
    const req = decodeOk(bytes)
    const resource = req.resourceMetrics[0]?.resource
    expect(resource?.droppedAttributesCount).toBe(0)
    expect(hex(resource?.unknownFields ?? new Uint8Array())).toBe("1a030a0178110500000000000000")
    expect(hex(encodeOtlpProtobuf(req))).toBe(hex(bytes))
  })

  it("decodes many distinct short strings correctly (the intern cache never mixes them up)", () => {
    const values = Array.from({ length: 20_000 }, (_, i) => `v${i.toString(36)}-${"é".repeat(i % 3)}`)
    const req = gaugeRequest(values.map((v, i) => ({ key: `k${i % 97}`, value: s(v) })))
    for (let round = 0; round < 2; round++) {
      const attrs = decodeOk(encodeOtlpProtobuf(req)).resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.data
        ?.dataPoints[0]?.attributes
      expect(attrs?.map((kv) => (kv.value.type === "string" ? kv.value.value : ""))).toEqual(values)
      expect(attrs?.map((kv) => kv.key)).toEqual(values.map((_, i) => `k${i % 97}`))
    }
  })

  it("decodes an empty body as an empty request", () => {
    expect(decodeOk(new Uint8Array())).toEqual({ resourceMetrics: [] })
  })

  it("rejects malformed input with a short reason", () => {
    expect(decodeErr(Buffer.from("0a05", "hex"))).toMatch(/length 5 overruns its message at byte 1/)
    expect(decodeErr(Buffer.from("0a", "hex"))).toMatch(/truncated varint/)
    expect(decodeErr(Buffer.from("0f", "hex"))).toMatch(/invalid wire type 7 for field 1/)
    expect(decodeErr(Buffer.from("00", "hex"))).toMatch(/invalid field number 0/)
    expect(decodeErr(Buffer.from("0affffffffffffffffffff01", "hex"))).toMatch(/varint longer than 10 bytes/)
    // A NumberDataPoint whose fixed64 runs past its own message.
    expect(decodeErr(Buffer.from("0a11120f120d2a0b0a05190102030405060708", "hex"))).toMatch(
      /field overruns its message/,
    )
    expect(decodeErr(Buffer.from("4b", "hex"))).toMatch(/unterminated group 9/)
  })

  it("rejects invalid UTF-8 in names, keys and values (short, interned or long), instead of rewriting it", () => {
    /** The encoding of `req` with the first occurrence of `marker` made invalid UTF-8 (0xff). */
    const corrupt = (req: ExportMetricsServiceRequest, marker: string): Uint8Array => {
      const bytes = Buffer.from(encodeOtlpProtobuf(req))
      const at = bytes.indexOf(marker)
      expect(at).toBeGreaterThanOrEqual(0)
      bytes[at + 1] = 0xff
      return bytes
    }
    const long = "L".repeat(100)
    const cases: ReadonlyArray<[ExportMetricsServiceRequest, string]> = [
      [gaugeRequest([{ key: "k", value: s("v") }]), "g"], // metric name (one byte: made 0xff itself)
      [gaugeRequest([{ key: "key_marker", value: s("v") }]), "key_marker"],
      [gaugeRequest([{ key: "k", value: s("value_marker") }]), "value_marker"],
      [gaugeRequest([{ key: "k", value: s(long) }]), long],
      [gaugeRequest([{ key: "k", value: { type: "array", values: [s("nested_marker")] } }]), "nested_marker"],
    ]
    for (const [req, marker] of cases) {
      const bytes = Buffer.from(encodeOtlpProtobuf(req))
      const at = bytes.indexOf(marker)
      if (marker.length === 1) bytes[at] = 0xff
      const bad = marker.length === 1 ? bytes : corrupt(req, marker)
      expect(decodeErr(bad)).toMatch(/invalid UTF-8 at byte \d+/)
    }
    // The same bytes, valid, still decode (and a string first seen valid stays valid from the cache).
    expect(decodeOk(encodeOtlpProtobuf(gaugeRequest([{ key: "k", value: s("value_marker") }])))).toBeDefined()
    expect(
      decodeErr(corrupt(gaugeRequest([{ key: "k", value: s("value_marker") }]), "value_marker")),
    ).toMatch(/invalid UTF-8/)
    // Well-formed multi-byte text is kept as it is.
    const text = "é€😀"
    const decoded = decodeOk(encodeOtlpProtobuf(gaugeRequest([{ key: text, value: s(text) }])))
    const point = decoded.resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.data?.dataPoints[0]
    expect(point?.attributes).toEqual([{ key: text, value: s(text) }])
  })

  it("skips groups of unknown fields", () => {
    // field 9 start group { field 1 varint 1 } field 9 end group, then resource_metrics {}
    const bytes = Buffer.from("4b08014c0a00", "hex")
    const req = decodeOk(bytes)
    expect(req.resourceMetrics).toHaveLength(1)
    expect(hex(req.unknownFields ?? new Uint8Array())).toBe("4b08014c")
  })

  it("bounds attribute value nesting (no stack overflow on a nesting bomb)", () => {
    // Resource{ attributes: [KeyValue{ value: AnyValue{ array_value{ values: [AnyValue{ array_value{ … } }] } } }] }
    let inner: Uint8Array = new Uint8Array()
    for (let i = 0; i < 200; i++) {
      const x = new ProtoWriter()
      const array = x.beginLen(5)
      const value = x.beginLen(1)
      x.raw(inner)
      x.endLen(value)
      x.endLen(array)
      inner = Uint8Array.from(x.finish())
    }
    const w = new ProtoWriter()
    const rm = w.beginLen(1)
    const res = w.beginLen(1)
    const kv = w.beginLen(1)
    const value = w.beginLen(2)
    w.raw(inner)
    w.endLen(value)
    w.endLen(kv)
    w.endLen(res)
    w.endLen(rm)
    expect(decodeErr(w.finish())).toMatch(/nested too deeply/)
  })

  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = decodeOtlpProtobuf(bytes)
        expect(Either.isEither(r)).toBe(true)
        if (Either.isRight(r)) encodeOtlpProtobuf(r.right)
      }),
      { numRuns: 2_000 },
    )
  })

  it("never throws on corrupted valid requests (flipped, truncated, inserted bytes)", () => {
    const mutation = fc.tuple(
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom("flip", "cut", "insert", "set"),
    )
    fc.assert(
      fc.property(request, fc.array(mutation, { minLength: 1, maxLength: 4 }), (req, mutations) => {
        let bytes = Uint8Array.from(encodeOtlpProtobuf(req))
        for (const [at, value, op] of mutations) {
          if (bytes.length === 0) break
          const i = at % bytes.length
          if (op === "flip") bytes[i] = (bytes[i] ?? 0) ^ (1 << (value % 8))
          else if (op === "set") bytes[i] = value
          else if (op === "cut") bytes = bytes.subarray(0, i)
          else bytes = Uint8Array.from([...bytes.subarray(0, i), value, ...bytes.subarray(i)])
        }
        const r = decodeOtlpProtobuf(bytes)
        if (Either.isRight(r)) expect(() => encodeOtlpProtobuf(r.right)).not.toThrow()
        else expect(r.left.kind).toBe("bad_protobuf")
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it("concatenated requests decode as one request holding both", () => {
    fc.assert(
      fc.property(request, request, (a, b) => {
        const joined = Buffer.concat([encodeOtlpProtobuf(a), encodeOtlpProtobuf(b)])
        const back = decodeOk(joined)
        expect(back.resourceMetrics).toEqual([...a.resourceMetrics, ...b.resourceMetrics])
      }),
      { numRuns: 50 },
    )
  })

  it("round-trips the Export response (full and partial success)", () => {
    expect(encodeOtlpResponseProtobuf({})).toHaveLength(0)
    const partial = { partialSuccess: { rejectedDataPoints: 3n, errorMessage: "dropped by limits" } }
    const bytes = encodeOtlpResponseProtobuf(partial)
    expect(hex(bytes)).toBe(`0a1508031211${Buffer.from("dropped by limits").toString("hex")}`)
    expect(decodeOtlpResponseProtobuf(bytes)).toEqual(Either.right(partial))
    expect(Either.isLeft(decodeOtlpResponseProtobuf(Buffer.from("0a05", "hex")))).toBe(true)
  })
})
