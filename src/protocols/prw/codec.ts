/**
 * The protobuf codec of the remote-write 1.0 `WriteRequest`, hand-written.
 *
 * Why by hand: the message is small and fixed, and a hand-written decoder can keep what it does
 * not interpret as raw bytes (re-encoded unchanged), share repeated labels (`label-cache.ts`), and
 * report where the input is malformed; protobufjs decodes everything into objects (exemplars and
 * histograms included, int64 as `Long`) and drops unknown fields.
 *
 * Measured with `npx tsx bench/prw-codec.ts` (1,000 series × 10 labels × 1 sample = 264,964 bytes;
 * node 20.20.2, 2 shared vCPUs with another busy process, best of 10 interleaved 200 ms rounds,
 * typical of 3 runs; MB/s of protobuf bytes):
 *
 * | case                                    |  MB/s | µs/request |
 * |-----------------------------------------|------:|-----------:|
 * | hand-written decode (label cache warm)  |   230 |      1,150 |
 * | hand-written decode (every label new)   |   100 |      2,600 |
 * | hand-written encode                     |   245 |      1,080 |
 * | hand-written decode + encode            |   135 |      1,960 |
 * | protobufjs 8 reflection decode          |    58 |      4,500 |
 * | protobufjs 8 reflection encode          |   210 |      1,250 |
 * | protobufjs 8 reflection decode + encode |    57 |      4,600 |
 * | snappy decompress / compress (native)   | 300+  |   170–900  |
 * | toSeriesBatch (adapter.ts)              | 3,200 |         82 |
 *
 * Decode is dominated by allocation (a `TimeSeries`, its arrays, a `Sample` per sample, a `Label`
 * per label): before the label cache it ran at 70–90 MB/s in the same harness. Snappy swung
 * between 300 and 1,500 MB/s from run to run on this machine.
 *
 * @module
 */
import { BoundExceeded, BoundedReader, type RequestBounds, UNBOUNDED } from "../../wire/bounds.js"
import { I32 as FIXED32, I64 as FIXED64, LEN, VARINT } from "../../wire/protobuf.js"
import { InvalidUtf8, readUtf8, utf8Length, writeUtf8 } from "../../wire/utf8.js"
import { PrwDecodeError } from "./errors.js"
import { sharedLabelCache } from "./label-cache.js"
import {
  FieldNumber,
  type Label,
  NO_BYTES,
  type Sample,
  type TimeSeries,
  type WriteRequest,
} from "./types.js"

const TWO_POW_32 = 4294967296

/** Strings remembered per label position, reused by the next series (`WriteRequestReader.text`). */
const INTERNED_SLOTS = 64

/** `list` with `item` appended; a list is only created for the first item (most are never needed). */
const append = <A>(list: Array<A> | undefined, item: A): Array<A> => {
  if (list === undefined) return [item]
  list.push(item)
  return list
}

/**
 * Shared values for empty messages. A sender never needs them, but a hostile body made of them
 * (`0a 00` repeated: 2 bytes per series) would otherwise cost an object each, 30× its size in memory.
 */
const EMPTY_LABEL: Label = Object.freeze({ name: "", value: "" })
const ZERO_SAMPLE: Sample = Object.freeze({ value: 0, timestamp: 0 })
const EMPTY_SERIES: TimeSeries = Object.freeze({
  labels: Object.freeze([]),
  samples: Object.freeze([]),
  exemplars: NO_BYTES,
  histograms: NO_BYTES,
  unknown: NO_BYTES,
})

/** A malformed message; `decodeError` turns it into a `PrwDecodeError`. */
export class Malformed extends Error {}

/** A well-formed series whose label set is invalid (see `WriteRequestReader.checkLabels`). */
export class InvalidLabels extends Malformed {}

const METRIC_NAME = "__name__"

/** A label name for an error message: quoted, and cut short. */
const quoted = (name: string): string => JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name)

/**
 * One pass over one message. Positions are offsets into the whole body, so an error names the byte
 * where the operator (or `protoc --decode_raw`) can look. (`scan.ts` extends it: its primitives
 * are shared so that both accept and reject exactly the same input.)
 */
export class WriteRequestReader extends BoundedReader {
  pos = 0
  readonly view: DataView
  /**
   * The label strings of the previous series, by position (`2 * index` name, `+ 1` value), with
   * where their bytes were. Consecutive series of one request mostly repeat names and many values;
   * comparing a few bytes is cheaper than building a new string and collecting it later.
   */
  private readonly prevStart: Array<number> = []
  private readonly prevEnd: Array<number> = []
  private readonly prevText: Array<string> = []
  // The byte ranges of the name and the value of the label `labelBounds` read last.
  nameStart = 0
  nameEnd = 0
  valueStart = 0
  valueEnd = 0
  /** Whether every text `checkText` saw since this was last set is ASCII. */
  ascii = true
  /** The sample `readSample` read last. */
  sampleValue = 0
  sampleTimestamp = 0

  /** Elements: series, labels, exemplars, metadata entries, unknown fields; datapoints: samples, native histograms. */
  constructor(
    readonly bytes: Uint8Array,
    bounds: RequestBounds = UNBOUNDED,
  ) {
    super(bounds)
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  fail(reason: string): never {
    throw new Malformed(reason)
  }

  timeSeries(end: number): TimeSeries {
    if (this.pos === end) return EMPTY_SERIES
    const labels: Array<Label> = []
    // Remote-write senders mostly send one sample per series: a one-element array fits it exactly,
    // where `[]` would grow to room for 17 on the first push.
    let samples: Array<Sample> | undefined
    let exemplars: Array<Uint8Array> | undefined
    let histograms: Array<Uint8Array> | undefined
    let unknown: Array<Uint8Array> | undefined
    while (this.pos < end) {
      const start = this.pos
      const tag = this.tag(end)
      switch (tag >>> 3) {
        case FieldNumber.TimeSeries.labels: {
          this.expectLen(tag, start, "TimeSeries.labels")
          this.element()
          labels.push(this.cachedLabel(this.lengthEnd(end), labels.length))
          break
        }
        case FieldNumber.TimeSeries.samples: {
          this.expectLen(tag, start, "TimeSeries.samples")
          this.datapoint()
          samples = append(samples, this.sample(this.lengthEnd(end)))
          break
        }
        case FieldNumber.TimeSeries.exemplars: {
          this.expectLen(tag, start, "TimeSeries.exemplars")
          this.element()
          const fieldEnd = this.lengthEnd(end)
          exemplars = append(exemplars, this.bytes.subarray(this.pos, fieldEnd))
          this.pos = fieldEnd
          break
        }
        case FieldNumber.TimeSeries.histograms: {
          this.expectLen(tag, start, "TimeSeries.histograms")
          this.datapoint()
          const fieldEnd = this.lengthEnd(end)
          histograms = append(histograms, this.bytes.subarray(this.pos, fieldEnd))
          this.pos = fieldEnd
          break
        }
        default: {
          this.element()
          this.skip(tag, start, end)
          unknown = append(unknown, this.bytes.subarray(start, this.pos))
        }
      }
    }
    return {
      labels,
      samples: samples ?? EMPTY_SERIES.samples,
      exemplars: exemplars ?? NO_BYTES,
      histograms: histograms ?? NO_BYTES,
      unknown: unknown ?? NO_BYTES,
    }
  }

  /**
   * Fails on a label set that Prometheus' remote-write receiver refuses as invalid (it drops such a
   * series; a TSDB appender answers the whole request 500, which makes the sender retry it for
   * ever): a label with an empty name, two labels with the same name, no `__name__`, or an empty
   * `__name__`. Labels with an empty value are valid (they stand for an absent label). `at` is
   * where the series' payload starts. The first problem in this order is reported, the first
   * repeated name in wire order for duplicates, so that the scanner, which finds the same
   * problems on bytes and then calls this, reports the same.
   */
  checkLabels(labels: ReadonlyArray<Label>, at: number): void {
    const n = labels.length
    let sorted = true
    for (let i = 0; i < n; i++) {
      const name = (labels[i] as Label).name
      if (name === "") this.invalidLabels(at, "a label has an empty name")
      if (i > 0 && (labels[i - 1] as Label).name > name) sorted = false
    }
    if (sorted) {
      for (let i = 1; i < n; i++) {
        const name = (labels[i] as Label).name
        if ((labels[i - 1] as Label).name === name)
          this.invalidLabels(at, `duplicate label name ${quoted(name)}`)
      }
    } else {
      const seen = new Set<string>()
      for (let i = 0; i < n; i++) {
        const name = (labels[i] as Label).name
        if (seen.has(name)) this.invalidLabels(at, `duplicate label name ${quoted(name)}`)
        seen.add(name)
      }
    }
    let metricName: string | undefined
    for (let i = 0; i < n; i++)
      if ((labels[i] as Label).name === METRIC_NAME) metricName = (labels[i] as Label).value
    if (metricName === undefined) this.invalidLabels(at, "no metric name (__name__)")
    if (metricName === "") this.invalidLabels(at, "empty metric name (__name__)")
  }

  private invalidLabels(at: number, what: string): never {
    throw new InvalidLabels(`series at byte ${at}: ${what}`)
  }

  /** The label in `[pos, end)`, from the label cache when the same bytes were decoded before. */
  private cachedLabel(end: number, index: number): Label {
    const start = this.pos
    const cached = sharedLabelCache.get(this.bytes, start, end)
    if (cached !== undefined) {
      this.pos = end
      return cached
    }
    const label = this.label(end, index)
    sharedLabelCache.set(this.bytes, start, end, label)
    return label
  }

  private sameBytes(aStart: number, aEnd: number, bStart: number, bEnd: number): boolean {
    const n = aEnd - aStart
    if (n !== bEnd - bStart) return false
    const bytes = this.bytes
    for (let i = 0; i < n; i++) if (bytes[aStart + i] !== bytes[bStart + i]) return false
    return true
  }

  /** The label in `[pos, end)` (see `labelBounds`). */
  private label(end: number, index: number): Label {
    if (this.pos === end) return EMPTY_LABEL
    this.labelBounds(end)
    return {
      name: this.text(this.nameStart, this.nameEnd, 2 * index),
      value: this.text(this.valueStart, this.valueEnd, 2 * index + 1),
    }
  }

  /**
   * Reads the label in `[pos, end)` into `nameStart` … `valueEnd`: the last `name` and the last
   * `value` win (empty where absent), other fields are skipped (prompb defines none), and every
   * name and value read must be UTF-8 (`checkText`).
   */
  labelBounds(end: number): void {
    let nameStart = this.pos
    let nameEnd = this.pos
    let valueStart = this.pos
    let valueEnd = this.pos
    while (this.pos < end) {
      const start = this.pos
      const tag = this.tag(end)
      const field = tag >>> 3
      if (field === FieldNumber.Label.name) {
        this.expectLen(tag, start, "Label.name")
        nameEnd = this.lengthEnd(end)
        nameStart = this.pos
        this.checkText(nameStart, nameEnd)
        this.pos = nameEnd
      } else if (field === FieldNumber.Label.value) {
        this.expectLen(tag, start, "Label.value")
        valueEnd = this.lengthEnd(end)
        valueStart = this.pos
        this.checkText(valueStart, valueEnd)
        this.pos = valueEnd
      } else {
        this.skip(tag, start, end)
      }
    }
    this.nameStart = nameStart
    this.nameEnd = nameEnd
    this.valueStart = valueStart
    this.valueEnd = valueEnd
  }

  /** Fails on invalid UTF-8 as `utf8` does; clears `ascii` on text that is not ASCII. */
  checkText(start: number, end: number): void {
    const bytes = this.bytes
    for (let i = start; i < end; i++) {
      if ((bytes[i] as number) >= 0x80) {
        this.ascii = false
        this.utf8(start, end)
        return
      }
    }
  }

  private sample(end: number): Sample {
    if (this.pos === end) return ZERO_SAMPLE
    this.readSample(end)
    return { value: this.sampleValue, timestamp: this.sampleTimestamp }
  }

  /**
   * Reads a sample ending at `end` into `sampleValue` and `sampleTimestamp` (0 where absent, the
   * last occurrence winning); unknown fields inside a sample are skipped (prompb defines none).
   */
  readSample(end: number): void {
    let value = 0
    let timestamp = 0
    while (this.pos < end) {
      const start = this.pos
      const tag = this.tag(end)
      const field = tag >>> 3
      if (field === FieldNumber.Sample.value) {
        if ((tag & 7) !== FIXED64) this.wrongWireType(tag, start, "Sample.value", FIXED64)
        if (end - this.pos < 8) this.fail(`truncated double at byte ${this.pos}`)
        value = this.view.getFloat64(this.pos, true)
        this.pos += 8
      } else if (field === FieldNumber.Sample.timestamp) {
        if ((tag & 7) !== VARINT) this.wrongWireType(tag, start, "Sample.timestamp", VARINT)
        timestamp = this.int64(end)
      } else {
        this.skip(tag, start, end)
      }
    }
    this.sampleValue = value
    this.sampleTimestamp = timestamp
  }

  /** The string in `[start, end)`, reusing the previous series' string at the same position when equal. */
  private text(start: number, end: number, slot: number): string {
    if (slot >= INTERNED_SLOTS) return this.utf8(start, end)
    const prevStart = this.prevStart[slot]
    if (prevStart !== undefined && this.sameBytes(prevStart, this.prevEnd[slot] as number, start, end)) {
      this.prevStart[slot] = start
      this.prevEnd[slot] = end
      return this.prevText[slot] as string
    }
    const text = this.utf8(start, end)
    this.prevStart[slot] = start
    this.prevEnd[slot] = end
    this.prevText[slot] = text
    return text
  }

  utf8(start: number, end: number): string {
    try {
      return readUtf8(this.bytes, start, end)
    } catch (e) {
      if (e instanceof InvalidUtf8) this.fail(`invalid UTF-8 in a label at byte ${start}`)
      throw e
    }
  }

  /** A field key; field number 0 is malformed (wire types are checked where the field is read). */
  tag(end: number): number {
    const start = this.pos
    const tag = this.varint(end)
    if (tag > 0xffffffff || tag >>> 3 === 0)
      this.fail(`invalid field number ${Math.floor(tag / 8)} at byte ${start}`)
    return tag
  }

  expectLen(tag: number, start: number, what: string): void {
    if ((tag & 7) !== LEN) this.wrongWireType(tag, start, what, LEN)
  }

  wrongWireType(tag: number, start: number, what: string, expected: number): never {
    return this.fail(`${what} has wire type ${tag & 7} (expected ${expected}) at byte ${start}`)
  }

  /** Reads a length prefix and returns where the payload ends; fails when that is past `end`. */
  lengthEnd(end: number): number {
    const start = this.pos
    const length = this.varint(end)
    if (length > end - this.pos) {
      this.fail(`length ${length} at byte ${start} runs past the end of its message at byte ${end}`)
    }
    return this.pos + length
  }

  /** Skips the payload of a field this decoder does not interpret. */
  skip(tag: number, start: number, end: number): void {
    switch (tag & 7) {
      case VARINT:
        this.varint(end)
        return
      case FIXED64:
        if (end - this.pos < 8) this.fail(`truncated fixed64 at byte ${this.pos}`)
        this.pos += 8
        return
      case LEN:
        this.pos = this.lengthEnd(end)
        return
      case FIXED32:
        if (end - this.pos < 4) this.fail(`truncated fixed32 at byte ${this.pos}`)
        this.pos += 4
        return
      default:
        this.fail(`unsupported wire type ${tag & 7} at byte ${start}`)
    }
  }

  /** An unsigned varint as a number (exact to 2^53; beyond that only its size matters to callers). */
  varint(end: number): number {
    const bytes = this.bytes
    const start = this.pos
    if (start < end) {
      const b = bytes[start] as number
      if (b < 0x80) {
        this.pos = start + 1
        return b
      }
    }
    let value = 0
    let scale = 1
    for (let i = 0; i < 10; i++) {
      if (start + i >= end) this.fail(`truncated varint at byte ${start}`)
      const b = bytes[start + i] as number
      if (i === 9 && b > 1) this.fail(`varint overflows 64 bits at byte ${start}`)
      value += (b & 0x7f) * scale
      if (b < 0x80) {
        this.pos = start + i + 1
        return value
      }
      scale *= 128
    }
    return this.fail(`varint longer than 10 bytes at byte ${start}`)
  }

  /** A two's-complement int64 varint as a number (exact in ±2^53). */
  int64(end: number): number {
    const bytes = this.bytes
    const start = this.pos
    let lo = 0
    let hi = 0
    let i = 0
    let b = 0x80
    // Bits 0..27 go to `lo`; byte 4 splits between `lo` and `hi`; bytes 5..9 go to `hi`.
    for (; i < 4 && b >= 0x80; i++) {
      if (start + i >= end) this.fail(`truncated varint at byte ${start}`)
      b = bytes[start + i] as number
      lo |= (b & 0x7f) << (7 * i)
    }
    if (b >= 0x80) {
      if (start + i >= end) this.fail(`truncated varint at byte ${start}`)
      b = bytes[start + i] as number
      lo |= (b & 0x7f) << 28
      hi = (b & 0x7f) >>> 4
      i++
      for (; i < 10 && b >= 0x80; i++) {
        if (start + i >= end) this.fail(`truncated varint at byte ${start}`)
        b = bytes[start + i] as number
        if (i === 9 && b > 1) this.fail(`varint overflows 64 bits at byte ${start}`)
        hi |= (b & 0x7f) << (7 * i - 32)
      }
      if (b >= 0x80) this.fail(`varint longer than 10 bytes at byte ${start}`)
    }
    this.pos = start + i
    if (hi < 0) {
      // Negative: the magnitude is the two's complement of (hi, lo).
      const negLo = (~lo + 1) >>> 0
      const negHi = (~hi + (negLo === 0 ? 1 : 0)) >>> 0
      return -(negLo + negHi * TWO_POW_32)
    }
    return (lo >>> 0) + hi * TWO_POW_32
  }
}

/** What a decoder's throw means for the sender (`scan.ts` shares it). */
export const decodeError = (e: unknown): PrwDecodeError => {
  if (e instanceof BoundExceeded) return new PrwDecodeError({ kind: "too_many", reason: e.message })
  if (e instanceof InvalidLabels) return new PrwDecodeError({ kind: "bad_labels", reason: e.message })
  const reason = e instanceof Malformed ? e.message : `unexpected decoder failure: ${String(e)}`
  return new PrwDecodeError({ kind: "bad_protobuf", reason })
}

// ---------------------------------------------------------------------------------------------
// Encoding: one pass computes every message size, a second writes into one exact-size buffer.
// ---------------------------------------------------------------------------------------------

/** Sizes from the sizing pass, consumed in the same order by the writing pass. Reused across calls. */
let sizes = new Int32Array(1024)

/** Low and high 32 bits of the last `splitInt64`; module state keeps the hot path allocation-free. */
let splitLo = 0
let splitHi = 0

/** Two's-complement 64-bit halves of an integer timestamp (fractions truncate, non-finite gives 0). */
const splitInt64 = (value: number): void => {
  const negative = value < 0
  const magnitude = negative ? -value : value
  let lo = magnitude >>> 0
  let hi = ((magnitude - lo) / TWO_POW_32) >>> 0
  if (negative) {
    lo = (~lo + 1) >>> 0
    hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0
  }
  splitLo = lo
  splitHi = hi
}

/** Size of the varint of the last `splitInt64`. */
const splitSize = (): number => {
  const bits = splitHi !== 0 ? 64 - Math.clz32(splitHi) : 32 - Math.clz32(splitLo)
  return bits === 0 ? 1 : ((bits + 6) / 7) | 0
}

const varint32Size = (value: number): number =>
  value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5

/** `+0` is the proto3 default and is omitted, as Go encoders do; `-0` and every NaN are written. */
const isPositiveZero = (value: number): boolean => value === 0 && 1 / value > 0

const sampleSize = (sample: Sample): number => {
  splitInt64(sample.timestamp)
  const hasTimestamp = splitLo !== 0 || splitHi !== 0
  return (isPositiveZero(sample.value) ? 0 : 9) + (hasTimestamp ? 1 + splitSize() : 0)
}

const stringFieldSize = (length: number): number => (length === 0 ? 0 : 1 + varint32Size(length) + length)

const rawFieldsSize = (payloads: ReadonlyArray<Uint8Array>): number => {
  let size = 0
  for (let i = 0; i < payloads.length; i++) {
    const length = (payloads[i] as Uint8Array).length
    size += 1 + varint32Size(length) + length
  }
  return size
}

const unknownSize = (fields: ReadonlyArray<Uint8Array>): number => {
  let size = 0
  for (let i = 0; i < fields.length; i++) size += (fields[i] as Uint8Array).length
  return size
}

class Encoder {
  pos = 0
  next = 0
  readonly out: Uint8Array
  readonly view: DataView

  constructor(size: number) {
    this.out = new Uint8Array(size)
    this.view = new DataView(this.out.buffer)
  }

  varint32(value: number): void {
    const out = this.out
    while (value > 0x7f) {
      out[this.pos++] = (value & 0x7f) | 0x80
      value >>>= 7
    }
    out[this.pos++] = value
  }

  timeSeries(series: TimeSeries): void {
    const out = this.out
    const labels = series.labels
    for (let j = 0; j < labels.length; j++) {
      const label = labels[j] as Label
      const nameLength = sizes[this.next++] as number
      const valueLength = sizes[this.next++] as number
      out[this.pos++] = (FieldNumber.TimeSeries.labels << 3) | LEN
      this.varint32(stringFieldSize(nameLength) + stringFieldSize(valueLength))
      if (nameLength > 0) {
        out[this.pos++] = (FieldNumber.Label.name << 3) | LEN
        this.varint32(nameLength)
        this.pos = writeUtf8(label.name, out, this.pos)
      }
      if (valueLength > 0) {
        out[this.pos++] = (FieldNumber.Label.value << 3) | LEN
        this.varint32(valueLength)
        this.pos = writeUtf8(label.value, out, this.pos)
      }
    }
    const samples = series.samples
    for (let j = 0; j < samples.length; j++) {
      const sample = samples[j] as Sample
      out[this.pos++] = (FieldNumber.TimeSeries.samples << 3) | LEN
      this.varint32(sampleSize(sample)) // leaves the timestamp split
      let lo = splitLo
      let hi = splitHi
      if (!isPositiveZero(sample.value)) {
        out[this.pos++] = (FieldNumber.Sample.value << 3) | FIXED64
        this.view.setFloat64(this.pos, sample.value, true)
        this.pos += 8
      }
      if (lo !== 0 || hi !== 0) {
        out[this.pos++] = (FieldNumber.Sample.timestamp << 3) | VARINT
        while (hi !== 0) {
          out[this.pos++] = (lo & 0x7f) | 0x80
          lo = ((lo >>> 7) | (hi << 25)) >>> 0
          hi >>>= 7
        }
        while (lo > 0x7f) {
          out[this.pos++] = (lo & 0x7f) | 0x80
          lo >>>= 7
        }
        out[this.pos++] = lo
      }
    }
    this.rawFields(FieldNumber.TimeSeries.exemplars, series.exemplars)
    this.rawFields(FieldNumber.TimeSeries.histograms, series.histograms)
    this.unknown(series.unknown)
  }

  rawFields(field: number, payloads: ReadonlyArray<Uint8Array>): void {
    for (let i = 0; i < payloads.length; i++) {
      const payload = payloads[i] as Uint8Array
      this.out[this.pos++] = (field << 3) | LEN
      this.varint32(payload.length)
      this.out.set(payload, this.pos)
      this.pos += payload.length
    }
  }

  unknown(fields: ReadonlyArray<Uint8Array>): void {
    for (let i = 0; i < fields.length; i++) {
      const encoded = fields[i] as Uint8Array
      this.out.set(encoded, this.pos)
      this.pos += encoded.length
    }
  }
}

/** Records a size for the writing pass. */
const pushSize = (index: number, size: number): void => {
  if (index >= sizes.length) {
    const grown = new Int32Array(Math.max(sizes.length * 2, index + 1))
    grown.set(sizes)
    sizes = grown
  }
  sizes[index] = size
}

/**
 * Encodes a request, fields in field-number order (raw and unknown fields last within their
 * message, as Go encoders place them). Proto3 defaults are omitted: empty strings, `+0` values and
 * zero timestamps. Timestamps must be integers in ±2^63 (fractions truncate; non-finite encodes 0).
 * Strings with lone surrogates encode them as U+FFFD.
 */
export const encodeWriteRequest = (request: WriteRequest): Uint8Array => {
  const timeseries = request.timeseries
  // Sizing pass: per series its payload size, then per label the UTF-8 lengths of name and value.
  let next = 0
  let total = rawFieldsSize(request.metadata) + unknownSize(request.unknown)
  for (let i = 0; i < timeseries.length; i++) {
    const series = timeseries[i] as TimeSeries
    const seriesIndex = next++
    let size =
      rawFieldsSize(series.exemplars) + rawFieldsSize(series.histograms) + unknownSize(series.unknown)
    const labels = series.labels
    for (let j = 0; j < labels.length; j++) {
      const label = labels[j] as Label
      const nameLength = utf8Length(label.name)
      const valueLength = utf8Length(label.value)
      pushSize(next++, nameLength)
      pushSize(next++, valueLength)
      const labelSize = stringFieldSize(nameLength) + stringFieldSize(valueLength)
      size += 1 + varint32Size(labelSize) + labelSize
    }
    const samples = series.samples
    for (let j = 0; j < samples.length; j++) {
      const sampleLength = sampleSize(samples[j] as Sample)
      size += 1 + varint32Size(sampleLength) + sampleLength
    }
    pushSize(seriesIndex, size)
    total += 1 + varint32Size(size) + size
  }
  // Writing pass.
  const encoder = new Encoder(total)
  for (let i = 0; i < timeseries.length; i++) {
    encoder.out[encoder.pos++] = (FieldNumber.WriteRequest.timeseries << 3) | LEN
    encoder.varint32(sizes[encoder.next++] as number)
    encoder.timeSeries(timeseries[i] as TimeSeries)
  }
  encoder.rawFields(FieldNumber.WriteRequest.metadata, request.metadata)
  encoder.unknown(request.unknown)
  return encoder.out
}
