/**
 * Remote write without rebuilding the request: the limits engine's view of a `WriteRequest` read
 * straight from its bytes, and the verdict applied by copying bytes.
 *
 * `scanWriteRequest` walks the message once, with the same primitives and the same checks as the
 * full decoder (`WriteRequestReader.writeRequest`, which the tests hold it to: it accepts and
 * rejects exactly the same bodies, with the same messages), but builds no strings or objects: for
 * each series it records where its bytes are, counts its datapoints and computes its fingerprint
 * from the label bytes. Names and labels are decoded only when the engine asks for them (a series
 * not yet matched in this config version, a rule with `group_by`).
 *
 * `applyScannedVerdict` forwards the body as it came when every datapoint passes; otherwise it
 * copies the bytes of each series that passes whole and re-encodes only the series the verdict
 * changes. Protobuf messages concatenate (repeated fields append), so the exporter joins buffered
 * requests by concatenating their bytes.
 *
 * @module
 */
import * as Either from "effect/Either"
import type { BatchVerdict, SeriesBatch } from "../../limits/batch.js"
import {
  absorbBytes,
  absorbSeparator,
  beginFingerprint,
  fingerprintSeries,
  finishFingerprint,
} from "../../limits/fingerprint.js"
import { type RequestBounds, UNBOUNDED } from "../../wire/bounds.js"
import type { ShardSelection } from "../protocol.js"
import { applyVerdict, seriesEntry } from "./adapter.js"
import { decodeError, encodeWriteRequest, WriteRequestReader } from "./codec.js"
import type { PrwDecodeError } from "./errors.js"
import { FieldNumber, NO_BYTES } from "./types.js"

/** The keys of `TimeSeries.labels`, `Label.name` and `Label.value` (length-delimited). */
const LABEL_TAG = (FieldNumber.TimeSeries.labels << 3) | 2
const NAME_TAG = (FieldNumber.Label.name << 3) | 2
const VALUE_TAG = (FieldNumber.Label.value << 3) | 2

/** `__name__` as bytes. */
const NAME_LABEL = new TextEncoder().encode("__name__")

/** A remote-write body as the limits engine sees it, read without decoding it. */
export interface ScannedWriteRequest extends SeriesBatch {
  /** The decompressed body. */
  readonly bytes: Uint8Array
  /** The body as it came in (a snappy block), in a buffer of its own: forwarded when all of it passes. */
  readonly wire?: Uint8Array | undefined
  /** Top-level fields in wire order: `[start, end)` of each field's complete encoding. */
  readonly fieldStarts: Int32Array
  readonly fieldEnds: Int32Array
  /** Per top-level field: its series index, or -1 for metadata and unknown fields. */
  readonly fieldSeries: Int32Array
  readonly fieldCount: number
  /** Per series: where its `TimeSeries` payload starts and ends. */
  readonly payloadStarts: Int32Array
  readonly payloadEnds: Int32Array
  readonly datapoints: Uint32Array
  readonly hi: Uint32Array
  readonly lo: Uint32Array
}

const grow = <T extends Int32Array | Uint32Array>(a: T, make: (n: number) => T): T => {
  const b = make(a.length * 2)
  b.set(a)
  return b
}

/** The entries the scan's arrays start with when no recycled buffer holds more. */
const START_ENTRIES = 256
/** Largest buffer an arena keeps (64 Ki entries): a rare huge request's arrays are not held on to. */
const ARENA_MAX_BYTES = 256 << 10
/** How many buffers an arena keeps: the arrays of 8 requests. */
const ARENA_BUFFERS = 64

/**
 * Buffers that held a scan's arrays, handed back once the request is through the limits, to scan
 * later bodies into. At saturation the arrays of every body (8 of them, 32 KB for 1,000 series)
 * would otherwise be new memory, garbage as soon as the request is decided, held until V8 collects
 * it (docs/performance.md §2). Bounded in count and in the size of what it keeps.
 */
export class ScanArena {
  private readonly free: Array<ArrayBuffer> = []

  constructor(private readonly capacity: number = ARENA_BUFFERS) {}

  /** How many buffers it holds. */
  get size(): number {
    return this.free.length
  }

  /** Keeps `buffer` for a later scan, unless it is empty (detached), too large, or the arena is full. */
  give(buffer: ArrayBuffer): void {
    if (buffer.byteLength === 0 || buffer.byteLength > ARENA_MAX_BYTES || this.free.length >= this.capacity)
      return
    this.free.push(buffer)
  }

  /** A kept buffer of at least `minBytes` (smaller ones on top are let go), or undefined. */
  take(minBytes: number): ArrayBuffer | undefined {
    for (;;) {
      const b = this.free.pop()
      if (b === undefined || b.byteLength >= minBytes) return b
    }
  }

  /** Up to `count` kept buffers, taken out (to hand over to another thread). */
  takeUpTo(count: number): Array<ArrayBuffer> {
    return this.free.splice(Math.max(0, this.free.length - count), count)
  }
}

/**
 * The buffers under the arrays of `scan`, each once: what to give back to an arena once nothing
 * reads the scan any more (`ScanArena.give`; the scan's arrays are unusable afterwards).
 */
export const scanBuffers = (scan: ScanParts): Array<ArrayBuffer> => {
  const out: Array<ArrayBuffer> = []
  const views = [
    scan.fieldStarts,
    scan.fieldEnds,
    scan.fieldSeries,
    scan.payloadStarts,
    scan.payloadEnds,
    scan.datapoints,
    scan.hi,
    scan.lo,
  ]
  for (const v of views) {
    const b = v.buffer
    if (b instanceof ArrayBuffer && !out.includes(b)) out.push(b)
  }
  return out
}

/** `count` buffers of one group of arrays from `arena`, and the entries every one of them holds. */
const startGroup = (
  arena: ScanArena | undefined,
  count: number,
): { readonly buffers: ReadonlyArray<ArrayBuffer | undefined>; readonly entries: number } => {
  if (arena === undefined) return { buffers: [], entries: START_ENTRIES }
  const buffers: Array<ArrayBuffer | undefined> = []
  let entries = Number.POSITIVE_INFINITY
  for (let i = 0; i < count; i++) {
    const b = arena.take(START_ENTRIES * 4)
    buffers.push(b)
    if (b !== undefined) entries = Math.min(entries, b.byteLength >>> 2)
  }
  return { buffers, entries: Number.isFinite(entries) ? entries : START_ENTRIES }
}

const int32In = (buffer: ArrayBuffer | undefined, entries: number): Int32Array =>
  buffer === undefined ? new Int32Array(entries) : new Int32Array(buffer, 0, entries)

const uint32In = (buffer: ArrayBuffer | undefined, entries: number): Uint32Array =>
  buffer === undefined ? new Uint32Array(entries) : new Uint32Array(buffer, 0, entries)

class Scanner extends WriteRequestReader {
  // Label byte ranges of the series being scanned (reused across series).
  private nameStarts = new Int32Array(64)
  private nameEnds = new Int32Array(64)
  private valueStarts = new Int32Array(64)
  private valueEnds = new Int32Array(64)
  private labelCount = 0
  private readonly fp = new Uint32Array(2)

  /** `arena`: buffers to start the arrays in (they grow into new ones past their size). */
  scan(wire?: Uint8Array, arena?: ScanArena): ScannedWriteRequest {
    const bytes = this.bytes
    const end = bytes.length
    const fieldGroup = startGroup(arena, 3)
    let fieldCap = fieldGroup.entries
    let fieldStarts = int32In(fieldGroup.buffers[0], fieldCap)
    let fieldEnds = int32In(fieldGroup.buffers[1], fieldCap)
    let fieldSeries = int32In(fieldGroup.buffers[2], fieldCap)
    const seriesGroup = startGroup(arena, 5)
    let seriesCap = seriesGroup.entries
    let payloadStarts = int32In(seriesGroup.buffers[0], seriesCap)
    let payloadEnds = int32In(seriesGroup.buffers[1], seriesCap)
    let datapoints = uint32In(seriesGroup.buffers[2], seriesCap)
    let hi = uint32In(seriesGroup.buffers[3], seriesCap)
    let lo = uint32In(seriesGroup.buffers[4], seriesCap)
    let fields = 0
    let series = 0
    const int32 = (n: number) => new Int32Array(n)
    const uint32 = (n: number) => new Uint32Array(n)
    while (this.pos < end) {
      const start = this.pos
      const tag = this.tag(end)
      const field = tag >>> 3
      let index = -1
      if (field === FieldNumber.WriteRequest.timeseries) {
        this.expectLen(tag, start, "WriteRequest.timeseries")
        const fieldEnd = this.lengthEnd(end)
        this.element()
        if (series === seriesCap) {
          seriesCap *= 2
          payloadStarts = grow(payloadStarts, int32)
          payloadEnds = grow(payloadEnds, int32)
          datapoints = grow(datapoints, uint32)
          hi = grow(hi, uint32)
          lo = grow(lo, uint32)
        }
        payloadStarts[series] = this.pos
        payloadEnds[series] = fieldEnd
        datapoints[series] = this.scanSeries(fieldEnd)
        this.fingerprint(payloadStarts[series] as number, fieldEnd)
        hi[series] = this.fp[0] as number
        lo[series] = this.fp[1] as number
        index = series++
      } else if (field === FieldNumber.WriteRequest.metadata) {
        this.expectLen(tag, start, "WriteRequest.metadata")
        this.element()
        this.pos = this.lengthEnd(end)
      } else {
        this.element()
        this.skip(tag, start, end)
      }
      if (fields === fieldCap) {
        fieldCap *= 2
        fieldStarts = grow(fieldStarts, int32)
        fieldEnds = grow(fieldEnds, int32)
        fieldSeries = grow(fieldSeries, int32)
      }
      fieldStarts[fields] = start
      fieldEnds[fields] = this.pos
      fieldSeries[fields] = index
      fields++
    }
    return scanned(
      bytes,
      {
        fieldStarts: fieldStarts.subarray(0, fields),
        fieldEnds: fieldEnds.subarray(0, fields),
        fieldSeries: fieldSeries.subarray(0, fields),
        fieldCount: fields,
        payloadStarts: payloadStarts.subarray(0, series),
        payloadEnds: payloadEnds.subarray(0, series),
        datapoints: datapoints.subarray(0, series),
        hi: hi.subarray(0, series),
        lo: lo.subarray(0, series),
        length: series,
      },
      wire,
    )
  }

  /** Checks one `TimeSeries` payload as `timeSeries` does, records its labels; returns its datapoints. */
  private scanSeries(end: number): number {
    this.labelCount = 0
    this.ascii = true
    let datapoints = 0
    const bytes = this.bytes
    while (this.pos < end) {
      const start = this.pos
      // The common label first: tag 0x0a and a one-byte length that fits, read without the general
      // steps (which would check the same and accept it the same way).
      const length = bytes[start + 1] as number
      if (bytes[start] === LABEL_TAG && length < 0x80 && length <= end - start - 2) {
        this.pos = start + 2
        this.element()
        this.scanLabel(start + 2 + length)
        continue
      }
      const tag = this.tag(end)
      switch (tag >>> 3) {
        case FieldNumber.TimeSeries.labels:
          this.expectLen(tag, start, "TimeSeries.labels")
          this.element()
          this.scanLabel(this.lengthEnd(end))
          break
        case FieldNumber.TimeSeries.samples:
          this.expectLen(tag, start, "TimeSeries.samples")
          this.datapoint()
          this.readSample(this.lengthEnd(end))
          datapoints++
          break
        case FieldNumber.TimeSeries.exemplars:
          this.expectLen(tag, start, "TimeSeries.exemplars")
          this.element()
          this.pos = this.lengthEnd(end)
          break
        case FieldNumber.TimeSeries.histograms:
          this.expectLen(tag, start, "TimeSeries.histograms")
          this.datapoint()
          this.pos = this.lengthEnd(end)
          datapoints++
          break
        default:
          this.element()
          this.skip(tag, start, end)
      }
    }
    return datapoints
  }

  /** Records the label in `[pos, end)` as the reader's `labelBounds` reads it. */
  private scanLabel(end: number): void {
    // The common shape first: name then value, each with a one-byte length, filling the label
    // exactly (`labelBounds`, below, reads it the same way, with the same checks in that order).
    const bytes = this.bytes
    const at = this.pos
    const nameLength = bytes[at + 1] as number
    const nameEndAt = at + 2 + nameLength
    if (
      bytes[at] === NAME_TAG &&
      nameLength < 0x80 &&
      nameEndAt + 2 <= end &&
      bytes[nameEndAt] === VALUE_TAG
    ) {
      const valueLength = bytes[nameEndAt + 1] as number
      if (valueLength < 0x80 && nameEndAt + 2 + valueLength === end) {
        this.checkText(at + 2, nameEndAt)
        this.checkText(nameEndAt + 2, end)
        this.pos = end
        this.addLabel(at + 2, nameEndAt, nameEndAt + 2, end)
        return
      }
    }
    this.labelBounds(end)
    this.addLabel(this.nameStart, this.nameEnd, this.valueStart, this.valueEnd)
  }

  /** Records the byte ranges of the label just scanned. */
  private addLabel(nameStart: number, nameEnd: number, valueStart: number, valueEnd: number): void {
    const n = this.labelCount
    if (n === this.nameStarts.length) {
      const int32 = (k: number) => new Int32Array(k)
      this.nameStarts = grow(this.nameStarts, int32)
      this.nameEnds = grow(this.nameEnds, int32)
      this.valueStarts = grow(this.valueStarts, int32)
      this.valueEnds = grow(this.valueEnds, int32)
    }
    this.nameStarts[n] = nameStart
    this.nameEnds[n] = nameEnd
    this.valueStarts[n] = valueStart
    this.valueEnds[n] = valueEnd
    this.labelCount = n + 1
  }

  /**
   * The fingerprint of the series just scanned: from its label bytes when they are ASCII and
   * sorted by name (what senders send), else from its decoded labels. Both give
   * `fingerprintSeries(name, labels)` of the labels `toSeriesBatch` would list.
   */
  private fingerprint(payloadStart: number, payloadEnd: number): void {
    const bytes = this.bytes
    const n = this.labelCount
    let nameLabel = -1
    let sorted = true
    // Whether the label set is valid as `checkLabels` has it; on a doubt, the decoded path decides.
    let valid = this.ascii
    let previous = -1
    if (this.ascii) {
      for (let j = 0; j < n; j++) {
        if (this.isNameLabel(j)) {
          if (nameLabel >= 0) {
            valid = false // a second __name__
            break
          }
          nameLabel = j
          continue
        }
        if (this.nameStarts[j] === this.nameEnds[j]) {
          valid = false // an empty name
          break
        }
        if (previous >= 0) {
          const order = this.compareNames(previous, j)
          if (order > 0) {
            sorted = false
            break
          }
          if (order === 0) {
            valid = false // a repeated name: neighbours, since the names are sorted
            break
          }
        }
        previous = j
      }
      if (nameLabel < 0 || this.valueStarts[nameLabel] === this.valueEnds[nameLabel]) valid = false
    }
    if (!sorted || !valid) {
      const d = new WriteRequestReader(bytes)
      d.pos = payloadStart
      const series = d.timeSeries(payloadEnd)
      this.checkLabels(series.labels, payloadStart)
      const entry = seriesEntry(series)
      fingerprintSeries(entry.name, entry.labels, this.fp)
      return
    }
    beginFingerprint()
    if (nameLabel >= 0)
      absorbBytes(bytes, this.valueStarts[nameLabel] as number, this.valueEnds[nameLabel] as number)
    for (let j = 0; j < n; j++) {
      if (this.isNameLabel(j)) continue
      const valueStart = this.valueStarts[j] as number
      const valueEnd = this.valueEnds[j] as number
      if (valueStart === valueEnd) continue
      absorbSeparator()
      absorbBytes(bytes, this.nameStarts[j] as number, this.nameEnds[j] as number)
      absorbSeparator()
      absorbBytes(bytes, valueStart, valueEnd)
    }
    finishFingerprint(this.fp)
  }

  private isNameLabel(j: number): boolean {
    const start = this.nameStarts[j] as number
    if ((this.nameEnds[j] as number) - start !== NAME_LABEL.length) return false
    const bytes = this.bytes
    for (let k = 0; k < NAME_LABEL.length; k++) if (bytes[start + k] !== NAME_LABEL[k]) return false
    return true
  }

  /** Byte order of two label names (for ASCII, the UTF-16 order `toSeriesBatch` sorts by). */
  private compareNames(a: number, b: number): number {
    const bytes = this.bytes
    const aStart = this.nameStarts[a] as number
    const aLen = (this.nameEnds[a] as number) - aStart
    const bStart = this.nameStarts[b] as number
    const bLen = (this.nameEnds[b] as number) - bStart
    const n = Math.min(aLen, bLen)
    for (let k = 0; k < n; k++) {
      const d = (bytes[aStart + k] as number) - (bytes[bStart + k] as number)
      if (d !== 0) return d
    }
    return aLen - bLen
  }
}

/** What a scan found, as plain data (a decoding thread sends it to the main thread). */
export type ScanParts = Omit<ScannedWriteRequest, "bytes" | "wire" | "nameOf" | "labelsOf">

/**
 * The batch view of a scan: names and labels decoded on first use, then kept. `bytes` may be given
 * as a function that makes them (decompresses `wire`), called the first time they are needed: a
 * request whose series are all matched already and pass whole never needs them.
 *
 * A class, not an object literal with a `bytes` getter: a getter written in a literal is a new
 * function each time, so every request got a hidden class of its own, and hidden classes live in
 * V8's old generation. Their getter (and with it the request's arrays, buffers and decoded labels)
 * then outlived every young-generation collection until the next full one: at saturation the main
 * thread promoted about 1.4 MB per scavenge and held tens of MB of request buffers as garbage.
 */
// The scan's arrays are fields of the request, put there by `Object.assign` in the constructor (one
// order for every request); this declares them to the type checker and emits nothing.
// biome-ignore lint/correctness/noUnusedVariables: merged with the class below, which it types
interface Scanned extends ScanParts {}
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: every field the interface declares is assigned in the constructor
class Scanned implements ScannedWriteRequest {
  private body: Uint8Array | undefined
  private readonly make: (() => Uint8Array) | undefined
  private readonly names: Array<string | undefined> = []
  private readonly labels: Array<ReadonlyArray<string> | undefined> = []
  private reader: WriteRequestReader | undefined = undefined

  constructor(
    bytes: Uint8Array | (() => Uint8Array),
    private readonly parts: ScanParts,
    readonly wire: Uint8Array | undefined,
  ) {
    Object.assign(this, parts)
    this.body = typeof bytes === "function" ? undefined : bytes
    this.make = typeof bytes === "function" ? bytes : undefined
  }

  get bytes(): Uint8Array {
    this.body ??= (this.make as () => Uint8Array)()
    return this.body
  }

  // Arrow properties: the engine may call them detached from the batch.
  readonly nameOf = (i: number): string => {
    if (this.names[i] === undefined) this.decode(i)
    return this.names[i] as string
  }

  readonly labelsOf = (i: number): ReadonlyArray<string> => {
    if (this.labels[i] === undefined) this.decode(i)
    return this.labels[i] as ReadonlyArray<string>
  }

  private decode(i: number): void {
    this.reader ??= new WriteRequestReader(this.bytes)
    const d = this.reader
    d.pos = this.parts.payloadStarts[i] as number
    const entry = seriesEntry(d.timeSeries(this.parts.payloadEnds[i] as number))
    this.names[i] = entry.name
    this.labels[i] = entry.labels
  }
}

export const scanned = (
  bytes: Uint8Array | (() => Uint8Array),
  parts: ScanParts,
  wire?: Uint8Array,
): ScannedWriteRequest => new Scanned(bytes, parts, wire)

/**
 * Scans a (decompressed) remote-write body. Total: any input gives `Right` or `Left`, never a
 * throw; `Left` exactly where the full decoder gives `Left`, with the same reason.
 */
export const scanWriteRequest = (
  bytes: Uint8Array,
  bounds: RequestBounds = UNBOUNDED,
  /** The body as it came in, kept with the scan (`wire`) to be forwarded as it is. */
  wire?: Uint8Array,
  /** Buffers to scan into (given back by earlier requests). */
  arena?: ScanArena,
): Either.Either<ScannedWriteRequest, PrwDecodeError> => {
  try {
    return Either.right(new Scanner(bytes, bounds).scan(wire, arena))
  } catch (e) {
    return Either.left(decodeError(e))
  }
}

/** What to forward after the verdict: an encoded `WriteRequest`, and the datapoints it carries. */
export interface ForwardedBytes {
  readonly request: Uint8Array
  readonly datapoints: number
}

/** The datapoints of `req` when the verdict lets every series pass whole; else undefined. */
export const passesWhole = (req: ScannedWriteRequest, verdict: BatchVerdict): number | undefined => {
  const { pass } = verdict
  const datapoints = req.datapoints
  let total = 0
  for (let i = 0; i < req.length; i++) {
    const count = datapoints[i] as number
    if ((pass[i] as number) < count) return undefined
    total += count
  }
  return total
}

/**
 * Applies the verdict for `req` (whose batch view it is) as `applyVerdict` does to the decoded
 * request, on bytes: the body itself when everything passes; otherwise each field in wire order,
 * copied when its series passes whole (and for metadata and unknown fields), re-encoded when the
 * verdict changes its series.
 */
export const applyScannedVerdict = (
  req: ScannedWriteRequest,
  verdict: BatchVerdict,
  only?: ShardSelection,
): ForwardedBytes => {
  const { pass } = verdict
  const datapoints = req.datapoints
  if (only === undefined) {
    const total = passesWhole(req, verdict)
    if (total !== undefined) return { request: req.bytes, datapoints: total }
  }
  const owner = only?.owner
  const index = only?.index ?? 0

  const bytes = req.bytes
  const parts: Array<Uint8Array> = []
  let forwarded = 0
  let runStart = -1
  let runEnd = -1
  const flush = () => {
    if (runStart >= 0) parts.push(bytes.subarray(runStart, runEnd))
    runStart = -1
  }
  for (let f = 0; f < req.fieldCount; f++) {
    const start = req.fieldStarts[f] as number
    const end = req.fieldEnds[f] as number
    const s = req.fieldSeries[f] as number
    if (owner !== undefined && s >= 0 && owner[s] !== index) {
      // Another shard's series.
      flush()
      continue
    }
    const count = s < 0 ? 0 : (datapoints[s] as number)
    if (s < 0 || (pass[s] as number) >= count) {
      if (runStart >= 0 && runEnd === start) runEnd = end
      else {
        flush()
        runStart = start
        runEnd = end
      }
      forwarded += count
      continue
    }
    flush()
    const d = new WriteRequestReader(bytes)
    d.pos = req.payloadStarts[s] as number
    const series = d.timeSeries(req.payloadEnds[s] as number)
    const one = applyVerdict(
      { timeseries: [series], metadata: NO_BYTES, unknown: NO_BYTES },
      {
        pass: Uint32Array.of(pass[s] as number),
        strip: Uint8Array.of(verdict.strip[s] as number),
        rule: [verdict.rule[s]],
        ...(verdict.stripLabels === undefined ? {} : { stripLabels: [verdict.stripLabels[s]] }),
      },
    )
    if (one.request.timeseries.length > 0) parts.push(encodeWriteRequest(one.request))
    forwarded += one.datapoints
  }
  flush()
  const request = concatBytes(parts)
  // A lone copied run would keep the whole body alive in the export buffer: keep only its bytes.
  return { request: request.buffer === bytes.buffer ? request.slice() : request, datapoints: forwarded }
}

/** The bytes of `parts`, one after the other (the parts themselves when there is one). */
export const concatBytes = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (parts.length === 1) return parts[0] as Uint8Array
  let size = 0
  for (const p of parts) size += p.length
  const out = new Uint8Array(size)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** The plain-data parts of a scan, to send to another thread. */
export const partsOf = (req: ScannedWriteRequest): ScanParts => ({
  length: req.length,
  fieldStarts: req.fieldStarts,
  fieldEnds: req.fieldEnds,
  fieldSeries: req.fieldSeries,
  fieldCount: req.fieldCount,
  payloadStarts: req.payloadStarts,
  payloadEnds: req.payloadEnds,
  datapoints: req.datapoints,
  hi: req.hi,
  lo: req.lo,
})
