import { Either } from "effect"
import fc from "fast-check"
import type protobuf from "protobufjs"
import { describe, expect, it } from "vitest"
import { encodeWriteRequest } from "../../../src/protocols/prw/codec.js"
import { PrwDecodeError } from "../../../src/protocols/prw/errors.js"
import { NO_BYTES, type TimeSeries, type WriteRequest } from "../../../src/protocols/prw/types.js"
import { decodeWriteRequest } from "../../support/prw.js"
import {
  bitsOf,
  comparable,
  fromBits,
  labelText,
  STALE_NAN_BITS,
  timeSeries,
  validLabels,
  writeRequest,
} from "./arbitraries.js"
import { Prompb, toPlain } from "./prompb-reflection.js"

const NUM_RUNS = 300

const mustDecode = (bytes: Uint8Array): WriteRequest => {
  const result = decodeWriteRequest(bytes)
  if (Either.isLeft(result)) throw new Error(`did not decode: ${result.left.message}`)
  return result.right
}

const mustFail = (bytes: ArrayLike<number>): PrwDecodeError => {
  const result = decodeWriteRequest(Uint8Array.from(bytes))
  if (Either.isRight(result)) throw new Error("decoded, expected an error")
  return result.left
}

const request = (timeseries: ReadonlyArray<TimeSeries>): WriteRequest => ({
  timeseries,
  metadata: NO_BYTES,
  unknown: NO_BYTES,
})

const series = (
  labels: ReadonlyArray<readonly [string, string]>,
  samples: ReadonlyArray<readonly [number, number]>,
): TimeSeries => ({
  labels: labels.map(([name, value]) => ({ name, value })),
  samples: samples.map(([value, timestamp]) => ({ value, timestamp })),
  exemplars: NO_BYTES,
  histograms: NO_BYTES,
  unknown: NO_BYTES,
})

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

describe("encodeWriteRequest / decodeWriteRequest", () => {
  it("encodes the prompb layout byte for byte", () => {
    const bytes = encodeWriteRequest(
      request([
        series(
          [
            ["__name__", "up"],
            ["job", "a"],
          ],
          [[1, 1000]],
        ),
      ]),
    )
    // 0a 28: timeseries, 40 bytes
    //   0a 0e (label 14) 0a 08 "__name__" 12 02 "up"
    //   0a 08 (label 8)  0a 03 "job" 12 01 "a"
    //   12 0c (sample 12) 09 <1.0 LE> 10 e8 07
    expect(hex(bytes)).toBe(
      "0a28" + "0a0e0a085f5f6e616d655f5f120275700a080a036a6f621201" + "61" + "120c09000000000000f03f10e807",
    )
  })

  it("omits proto3 defaults (empty strings, +0, timestamp 0) but keeps -0", () => {
    expect(hex(encodeWriteRequest(request([series([["", ""]], [[0, 0]])])))).toBe("0a040a001200")
    expect(hex(encodeWriteRequest(request([series([], [[-0, 0]])])))).toBe("0a0b1209090000000000000080")
    const decoded = mustDecode(encodeWriteRequest(request([series([["__name__", "m"]], [[-0, 0]])])))
      .timeseries[0]
    expect(Object.is(decoded?.samples[0]?.value, -0)).toBe(true)
  })

  it("encodes negative timestamps as 10-byte two's complement varints", () => {
    // sample: 10 ff ff ff ff ff ff ff ff ff 01 (-1)
    expect(hex(encodeWriteRequest(request([series([], [[0, -1]])])))).toBe("0a0d120b10ffffffffffffffffff01")
    const decoded = mustDecode(
      encodeWriteRequest(request([series([["__name__", "m"]], [[0, -1_760_000_000_000]])])),
    )
    expect(decoded.timeseries[0]?.samples[0]?.timestamp).toBe(-1_760_000_000_000)
  })

  it("round-trips any request: decode(encode(r)) equals r, value bits included", () => {
    fc.assert(
      fc.property(writeRequest, (req) => {
        const bytes = encodeWriteRequest(req)
        expect(comparable(mustDecode(bytes))).toEqual(comparable(req))
        // The encoding is canonical: encoding the decoded request gives the same bytes.
        expect(hex(encodeWriteRequest(mustDecode(bytes)))).toBe(hex(bytes))
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it("keeps the staleness marker's exact bits through decode and encode, also once optimized", () => {
    // Built as sample objects: a `[value, timestamp]` pair would be an array of doubles, where V8
    // quiets the NaN (the hazard `Sample` documents).
    const timeseries = Array.from({ length: 5_000 }, (_, i) => ({
      ...series(
        [
          ["__name__", `m${i % 10}`],
          ["i", String(i)],
        ],
        [],
      ),
      samples: [
        { value: i, timestamp: 1_760_000_000_000 + i },
        { value: fromBits(STALE_NAN_BITS), timestamp: 1_760_000_015_000 + i },
      ],
    }))
    expect(bitsOf(timeseries[0]?.samples[1]?.value ?? 0)).toBe("7ff0000000000002")
    const first = encodeWriteRequest(request(timeseries))
    let bytes = first
    for (let round = 0; round < 20; round++) {
      const decoded = mustDecode(bytes)
      const quieted = decoded.timeseries.filter(
        (s) => bitsOf(s.samples[1]?.value ?? 0) !== "7ff0000000000002",
      )
      expect(quieted).toHaveLength(0)
      bytes = encodeWriteRequest(decoded)
    }
    expect(Buffer.from(bytes).equals(Buffer.from(first))).toBe(true)
  })

  it("keeps raw exemplars, histograms, metadata and unknown fields byte for byte", () => {
    const exemplar = Uint8Array.from([1, 2, 3]) // not even valid protobuf: never looked into
    const histogram = Uint8Array.from([0x08, 0x05])
    const unknownInSeries = Uint8Array.from([0x78, 0x2a]) // field 15, varint 42
    const unknownInRequest = Uint8Array.from([0x12, 0x01, 0x41]) // field 2 (Mimir `source`), "A"
    const req: WriteRequest = {
      timeseries: [
        {
          labels: [{ name: "__name__", value: "h" }],
          samples: [],
          exemplars: [exemplar],
          histograms: [histogram],
          unknown: [unknownInSeries],
        },
      ],
      metadata: [Uint8Array.from([0x08, 0x01])],
      unknown: [unknownInRequest],
    }
    const bytes = encodeWriteRequest(req)
    expect(hex(bytes)).toBe(
      "0a1a" + // timeseries, 26 bytes:
        "0a0d0a085f5f6e616d655f5f120168" + // label __name__="h"
        "1a03010203" + // exemplar
        "22020805" + // histogram
        "782a" + // field 15
        "1a020801" + // metadata
        "120141", // field 2
    )
    expect(mustDecode(bytes)).toEqual(req)
  })
})

describe("decodeWriteRequest on hostile input", () => {
  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const result = decodeWriteRequest(bytes)
        expect(Either.isEither(result)).toBe(true)
        if (Either.isLeft(result)) expect(result.left).toBeInstanceOf(PrwDecodeError)
      }),
      { numRuns: 2_000 },
    )
  })

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant("set" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), byte: fc.constant(0) }),
  )

  it("never throws on mutated valid encodings; what decodes re-encodes stably", () => {
    fc.assert(
      fc.property(writeRequest, fc.array(mutation, { minLength: 1, maxLength: 4 }), (req, mutations) => {
        const bytes = Array.from(encodeWriteRequest(req))
        for (const { kind, at, byte } of mutations) {
          const i = bytes.length === 0 ? 0 : at % (bytes.length + (kind === "insert" ? 1 : 0))
          if (kind === "set" && bytes.length > 0) bytes[i] = byte
          else if (kind === "insert") bytes.splice(i, 0, byte)
          else if (kind === "delete") bytes.splice(i, 1)
        }
        const result = decodeWriteRequest(Uint8Array.from(bytes))
        expect(Either.isEither(result)).toBe(true)
        if (Either.isRight(result)) {
          const again = mustDecode(encodeWriteRequest(result.right))
          expect(comparable(again)).toEqual(comparable(result.right))
        }
      }),
      { numRuns: 1_000 },
    )
  })

  it("truncated anywhere: Left, except exactly between top-level fields, where the prefix decodes", () => {
    fc.assert(
      fc.property(writeRequest, (req) => {
        const bytes = encodeWriteRequest(req)
        // The top-level fields, in encoding order, with the request made of the first k of them.
        const fields: Array<{ readonly size: number; readonly prefix: WriteRequest }> = []
        let offset = 0
        const push = (size: number, prefix: WriteRequest) => {
          offset += size
          fields.push({ size: offset, prefix })
        }
        req.timeseries.forEach((_, k) => {
          const size = encodeWriteRequest(request([req.timeseries[k] as TimeSeries])).length
          push(size, { ...req, timeseries: req.timeseries.slice(0, k + 1), metadata: [], unknown: [] })
        })
        req.metadata.forEach((_, k) => {
          const size = encodeWriteRequest({
            ...request([]),
            metadata: [req.metadata[k] as Uint8Array],
          }).length
          push(size, { ...req, metadata: req.metadata.slice(0, k + 1), unknown: [] })
        })
        req.unknown.forEach((field, k) => {
          push(field.length, { ...req, unknown: req.unknown.slice(0, k + 1) })
        })
        expect(offset).toBe(bytes.length)
        const boundaries = new Map<number, WriteRequest>([[0, { timeseries: [], metadata: [], unknown: [] }]])
        for (const { size, prefix } of fields) boundaries.set(size, prefix)

        for (let cut = 0; cut < bytes.length; cut++) {
          const result = decodeWriteRequest(bytes.subarray(0, cut))
          const prefix = boundaries.get(cut)
          if (prefix === undefined) {
            expect(Either.isLeft(result), `cut at ${cut} of ${bytes.length}`).toBe(true)
          } else {
            expect(Either.isRight(result), `cut at ${cut} of ${bytes.length}`).toBe(true)
            if (Either.isRight(result)) expect(comparable(result.right)).toEqual(comparable(prefix))
          }
        }
      }),
      { numRuns: 150 },
    )
  })

  it.each<[string, ReadonlyArray<number>, string]>([
    ["a length with nothing after it", [0x0a], "protobuf: truncated varint at byte 1"],
    [
      "a length past the end",
      [0x0a, 0x05, 0x01],
      "protobuf: length 5 at byte 1 runs past the end of its message at byte 3",
    ],
    [
      "a length past the end of the enclosing message",
      [0x0a, 0x02, 0x0a, 0x05, 0x0a, 0x00, 0x00, 0x00],
      "protobuf: length 5 at byte 3 runs past the end of its message at byte 4",
    ],
    [
      "a known field with the wrong wire type",
      [0x08, 0x01],
      "protobuf: WriteRequest.timeseries has wire type 0 (expected 2) at byte 0",
    ],
    [
      "a timestamp with the wrong wire type",
      [0x0a, 0x0b, 0x12, 0x09, 0x11, 0, 0, 0, 0, 0, 0, 0, 0],
      "protobuf: Sample.timestamp has wire type 1 (expected 0) at byte 4",
    ],
    ["field number 0", [0x00], "protobuf: invalid field number 0 at byte 0"],
    ["a group (deprecated wire type 3)", [0x13], "protobuf: unsupported wire type 3 at byte 0"],
    ["wire type 7", [0x17], "protobuf: unsupported wire type 7 at byte 0"],
    ["a truncated double", [0x0a, 0x04, 0x12, 0x02, 0x09, 0x00], "protobuf: truncated double at byte 5"],
    [
      "a varint past 64 bits",
      [0x0a, 0x0d, 0x12, 0x0b, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
      "protobuf: varint overflows 64 bits at byte 5",
    ],
    [
      "an 11-byte varint",
      [0x78, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00],
      "protobuf: varint overflows 64 bits at byte 1",
    ],
    [
      "a label that is not UTF-8",
      [0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff],
      "protobuf: invalid UTF-8 in a label at byte 6",
    ],
    [
      "a truncated UTF-8 sequence",
      [0x0a, 0x06, 0x0a, 0x04, 0x12, 0x02, 0xc3, 0x41],
      "protobuf: invalid UTF-8 in a label at byte 6",
    ],
  ])("refuses %s", (_, bytes, message) => {
    const error = mustFail(bytes)
    expect(error._tag).toBe("PrwDecodeError")
    expect(error.kind).toBe("bad_protobuf")
    expect(error.message).toBe(message)
  })

  it("does not recurse into what it does not interpret: deep nesting is just bytes", () => {
    // 50,000 nested length-delimited fields (field 15) inside one unknown top-level field,
    // written from the innermost outwards.
    const buffer = new Uint8Array(400_000)
    let start = buffer.length
    for (let depth = 0; depth < 50_000; depth++) {
      const length = buffer.length - start
      const varint: Array<number> = []
      for (let v = length; ; v >>>= 7) {
        if (v <= 0x7f) {
          varint.push(v)
          break
        }
        varint.push((v & 0x7f) | 0x80)
      }
      start -= varint.length + 1
      buffer[start] = 0x7a
      buffer.set(varint, start + 1)
    }
    const inner = buffer.subarray(start)
    const decoded = mustDecode(inner)
    expect(decoded.unknown).toHaveLength(1)
    expect(decoded.unknown[0]?.length).toBe(inner.length)
    // A long run of group starts fails at the first one rather than nesting.
    expect(mustFail(new Uint8Array(100_000).fill(0x13)).reason).toBe("unsupported wire type 3 at byte 0")
  })

  it("refuses padding of empty series at the first one, and shares one value for each empty sample", () => {
    const empties = new Uint8Array(1 << 20).map((_, i) => (i % 2 === 0 ? 0x0a : 0x00))
    expect(mustFail(Array.from(empties.subarray(0, 64))).reason).toBe(
      "series at byte 2: no metric name (__name__)",
    )
    // Series of __name__="m" and one empty sample: 19 bytes each.
    const name = [0x0a, 0x0d, 0x0a, 0x08, ...Buffer.from("__name__"), 0x12, 0x01, 0x6d]
    const one = [0x0a, name.length + 2, ...name, 0x12, 0x00]
    const body = new Uint8Array(one.length * 1_000).map((_, i) => one[i % one.length] as number)
    const tiny = mustDecode(body).timeseries
    expect(tiny).toHaveLength(1_000)
    expect(new Set(tiny.map((ts) => ts.labels[0])).size).toBe(1)
    expect(new Set(tiny.map((ts) => ts.samples[0])).size).toBe(1)
    expect(tiny[0]).toEqual(series([["__name__", "m"]], [[0, 0]]))
  })

  it("refuses lengths and tags far beyond 32 bits without overflowing", () => {
    const huge = [0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]
    expect(mustFail(huge).reason).toBe(
      "length 9223372036854776000 at byte 1 runs past the end of its message at byte 10",
    )
    expect(mustFail([0xf8, 0xff, 0xff, 0xff, 0x1f]).reason).toBe("invalid field number 1073741823 at byte 0")
  })

  it("keeps the last value of a repeated scalar and skips unknown fields inside labels and samples", () => {
    const name = [0x0a, 0x0d, 0x0a, 0x08, ...Buffer.from("__name__"), 0x12, 0x01, 0x6d] // __name__="m"
    const label = [...name, 0x0a, 0x08, 0x0a, 0x01, 0x61, 0x0a, 0x01, 0x62, 0x18, 0x07] // name "a", name "b", field 3
    const sample = [0x12, 0x09, 0x10, 0x01, 0x10, 0x02, 0x25, 0x00, 0x00, 0x00, 0x00] // ts 1, ts 2, fixed32
    const decoded = mustDecode(Uint8Array.from([0x0a, label.length + sample.length, ...label, ...sample]))
    expect(comparable(decoded)).toEqual(
      comparable(
        request([
          series(
            [
              ["__name__", "m"],
              ["b", ""],
            ],
            [[0, 2]],
          ),
        ]),
      ),
    )
    // The same with the fixed32 cut to 2 of its 4 bytes.
    const truncated = [0x12, 0x07, 0x10, 0x01, 0x10, 0x02, 0x25, 0x00, 0x00]
    expect(mustFail([0x0a, label.length + truncated.length, ...label, ...truncated]).reason).toBe(
      "truncated fixed32 at byte 34",
    )
  })
})

describe("interoperability with protobufjs (prompb by reflection)", () => {
  const safeTimestamp = fc.maxSafeInteger()
  const pbLabel = fc.record({ name: labelText, value: labelText })
  const pbSample = fc.record({ value: fc.double(), timestamp: safeTimestamp })
  const pbExemplar = fc.record({
    labels: fc.array(pbLabel, { maxLength: 2 }),
    value: fc.double(),
    timestamp: safeTimestamp,
  })
  const pbHistogram = fc.record({
    countInt: fc.maxSafeNat(),
    sum: fc.double(),
    schema: fc.integer({ min: -4, max: 8 }),
    zeroThreshold: fc.double(),
    timestamp: safeTimestamp,
  })
  const pbMetadata = fc.record({
    type: fc.integer({ min: 0, max: 7 }),
    metricFamilyName: labelText,
    help: labelText,
    unit: labelText,
  })
  const pbWriteRequest = fc.record({
    timeseries: fc.array(
      fc.record({
        labels: validLabels, // a receiver refuses other label sets
        samples: fc.array(pbSample, { maxLength: 3 }),
        exemplars: fc.array(pbExemplar, { maxLength: 2 }),
        histograms: fc.array(pbHistogram, { maxLength: 2 }),
      }),
      { maxLength: 5 },
    ),
    metadata: fc.array(pbMetadata, { maxLength: 2 }),
  })
  type PbWriteRequest = typeof pbWriteRequest extends fc.Arbitrary<infer A> ? A : never

  const encodeWith = (type: protobuf.Type, value: object): Uint8Array =>
    type.encode(type.fromObject(value)).finish()
  const decodeWith = (type: protobuf.Type, bytes: Uint8Array) => toPlain(type, type.decode(bytes))
  const sampleBits = (samples: ReadonlyArray<{ value: number; timestamp: number }>) =>
    samples.map((s) => ({ bits: bitsOf(s.value), timestamp: s.timestamp }))

  /** Our request for the same content, with raw parts encoded by protobufjs. */
  const ours = (pb: PbWriteRequest): WriteRequest => ({
    timeseries: pb.timeseries.map((ts) => ({
      labels: ts.labels,
      samples: ts.samples,
      exemplars: ts.exemplars.map((e) => encodeWith(Prompb.Exemplar, e)),
      histograms: ts.histograms.map((h) => encodeWith(Prompb.Histogram, h)),
      unknown: [],
    })),
    metadata: pb.metadata.map((m) => encodeWith(Prompb.MetricMetadata, m)),
    unknown: [],
  })

  it("decodes what protobufjs encodes", () => {
    fc.assert(
      fc.property(pbWriteRequest, (pb) => {
        const decoded = mustDecode(encodeWith(Prompb.WriteRequest, pb))
        expect(decoded.timeseries).toHaveLength(pb.timeseries.length)
        decoded.timeseries.forEach((ts, i) => {
          const expected = pb.timeseries[i]
          expect(ts.labels).toEqual(expected?.labels)
          expect(sampleBits(ts.samples)).toEqual(sampleBits(expected?.samples ?? []))
          expect(ts.exemplars.map((raw) => decodeWith(Prompb.Exemplar, raw))).toEqual(expected?.exemplars)
          expect(ts.histograms.map((raw) => decodeWith(Prompb.Histogram, raw))).toEqual(expected?.histograms)
          expect(ts.unknown).toEqual([])
        })
        expect(decoded.metadata.map((raw) => decodeWith(Prompb.MetricMetadata, raw))).toEqual(pb.metadata)
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it("encodes what protobufjs decodes", () => {
    fc.assert(
      fc.property(pbWriteRequest, (pb) => {
        const plain = decodeWith(Prompb.WriteRequest, encodeWriteRequest(ours(pb))) as PbWriteRequest
        expect(plain.metadata).toEqual(pb.metadata)
        expect(plain.timeseries).toHaveLength(pb.timeseries.length)
        plain.timeseries.forEach((ts, i) => {
          const expected = pb.timeseries[i]
          expect(ts.labels).toEqual(expected?.labels)
          expect(sampleBits(ts.samples)).toEqual(sampleBits(expected?.samples ?? []))
          expect(ts.exemplars).toEqual(expected?.exemplars)
          expect(ts.histograms).toEqual(expected?.histograms)
        })
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it("agrees with protobufjs on our own arbitrary series (labels and samples)", () => {
    fc.assert(
      fc.property(fc.array(timeSeries, { maxLength: 4 }), (timeseries) => {
        const plain = decodeWith(
          Prompb.WriteRequest,
          encodeWriteRequest(
            request(timeseries.map((ts) => ({ ...ts, exemplars: [], histograms: [], unknown: [] }))),
          ),
        ) as PbWriteRequest
        plain.timeseries.forEach((ts, i) => {
          expect(ts.labels).toEqual(timeseries[i]?.labels)
          expect(sampleBits(ts.samples)).toEqual(sampleBits(timeseries[i]?.samples ?? []))
        })
      }),
      { numRuns: NUM_RUNS },
    )
  })
})
