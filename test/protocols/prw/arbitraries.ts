import fc from "fast-check"
import type { Label, Sample, TimeSeries, WriteRequest } from "../../../src/protocols/prw/types.js"

/** Prometheus' staleness marker: a signalling NaN that must keep its exact bits. */
export const STALE_NAN_BITS = 0x7ff0000000000002n

const scratch = new DataView(new ArrayBuffer(8))

/** The IEEE 754 bits of a double, as hex (distinguishes NaN payloads, `-0`). */
export const bitsOf = (value: number): string => {
  scratch.setFloat64(0, value, true)
  return scratch.getBigUint64(0, true).toString(16)
}

/** The double with these bits. Only ever store the result in an object field (see `Sample`). */
export const fromBits = (bits: bigint): number => {
  scratch.setBigUint64(0, bits, true)
  return scratch.getFloat64(0, true)
}

/** Any well-formed string: ASCII, BMP, astral (surrogate pairs), empty, and familiar label names. */
export const labelText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("__name__", "job", "instance", "le", "", "é", "ラベル", "😀", "\u0000", "\ufeffbom"),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "binary", maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
)

export const label: fc.Arbitrary<Label> = fc.record({ name: labelText, value: labelText })

/**
 * A label set a receiver accepts: a non-empty `__name__` anywhere among other labels with distinct,
 * non-empty names (values may be empty).
 */
export const validLabels: fc.Arbitrary<Array<Label>> = fc
  .tuple(
    labelText.filter((v) => v !== ""),
    fc.uniqueArray(
      label.filter((l) => l.name !== "" && l.name !== "__name__"),
      { selector: (l) => l.name, maxLength: 5 },
    ),
    fc.nat(),
  )
  .map(([name, rest, at]) => {
    const labels = [...rest]
    labels.splice(at % (rest.length + 1), 0, { name: "__name__", value: name })
    return labels
  })

/** Any label set, valid or not (empty, repeated names, empty names, no or empty `__name__`). */
export const anyLabels: fc.Arbitrary<Array<Label>> = fc.oneof(
  validLabels,
  fc.array(label, { maxLength: 6 }),
  // Repeats of a few names, sorted or not, ASCII or not: the scanner's fast and slow paths.
  fc.array(
    fc.record({ name: fc.constantFrom("__name__", "a", "b", "", "é"), value: fc.constantFrom("", "x", "y") }),
    { maxLength: 5 },
  ),
)

/** Bit patterns of every kind: normal, subnormal, ±0, ±Inf, quiet and signalling NaNs, staleness. */
const valueBits: fc.Arbitrary<bigint> = fc.oneof(
  fc.constantFrom(
    STALE_NAN_BITS,
    0x7ff8000000000000n, // NaN
    0xfff8000000000001n, // negative NaN with a payload
    0x7ff0000000000000n, // +Inf
    0xfff0000000000000n, // -Inf
    0x8000000000000000n, // -0
    0n, // +0
    0x0000000000000001n, // smallest subnormal
  ),
  fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
  fc.double().map((v) => BigInt(`0x${bitsOf(v)}`)),
)

export const timestamp: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, -1, 1, 1_760_000_000_000, -1_760_000_000_000, 2 ** 31, -(2 ** 31), 2 ** 32, -(2 ** 32)),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 53, -(2 ** 53)),
  fc.integer(),
  fc.maxSafeInteger(),
)

/** A sample built from bits, so a signalling NaN goes straight into the object field. */
export const sample: fc.Arbitrary<Sample> = fc
  .tuple(valueBits, timestamp)
  .map(([bits, t]) => ({ value: fromBits(bits), timestamp: t }))

const varintBytes = (value: bigint): Array<number> => {
  const out: Array<number> = []
  let v = value
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80)
    v >>= 7n
  }
  out.push(Number(v))
  return out
}

/** One complete, well-formed protobuf field (key and payload) with a number outside `known`. */
export const unknownField = (known: ReadonlyArray<number>): fc.Arbitrary<Uint8Array> =>
  fc
    .tuple(
      fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 2 ** 29 - 1 })),
      fc.constantFrom(0, 1, 2, 5),
      fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
      fc.uint8Array({ maxLength: 20 }),
    )
    .filter(([field]) => !known.includes(field))
    .map(([field, wire, number, bytes]) => {
      const key = varintBytes(BigInt(field) * 8n + BigInt(wire))
      const payload =
        wire === 0
          ? varintBytes(number)
          : wire === 1
            ? Array.from({ length: 8 }, (_, i) => Number((number >> BigInt(8 * i)) & 0xffn))
            : wire === 5
              ? Array.from({ length: 4 }, (_, i) => Number((number >> BigInt(8 * i)) & 0xffn))
              : [...varintBytes(BigInt(bytes.length)), ...bytes]
      return Uint8Array.from([...key, ...payload])
    })

/** Raw payloads are not interpreted, so any bytes must pass through. */
const rawPayloads = (maxLength: number): fc.Arbitrary<Array<Uint8Array>> =>
  fc.array(fc.uint8Array({ maxLength: 24 }), { maxLength })

export const timeSeries: fc.Arbitrary<TimeSeries> = fc.record({
  labels: validLabels,
  samples: fc.array(sample, { maxLength: 4 }),
  exemplars: rawPayloads(2),
  histograms: rawPayloads(2),
  unknown: fc.array(unknownField([1, 2, 3, 4]), { maxLength: 2 }),
})

export const writeRequest: fc.Arbitrary<WriteRequest> = fc.record({
  timeseries: fc.array(timeSeries, { maxLength: 6 }),
  metadata: rawPayloads(2),
  unknown: fc.array(unknownField([1, 3]), { maxLength: 2 }),
})

/** A request with every sample value replaced by its bits, for `toEqual` that tells NaNs apart. */
export const comparable = (request: WriteRequest) => ({
  ...request,
  timeseries: request.timeseries.map((series) => ({
    ...series,
    samples: series.samples.map((s) => ({ bits: bitsOf(s.value), timestamp: s.timestamp })),
  })),
})
