/**
 * The fingerprints of an OTLP protobuf request's data points, read straight from the wire: what a
 * decoding thread sends back for the usual request, without building the request's objects.
 *
 * `scanFingerprints(bytes, bounds)` reads the request with the decoder's own reader (the same
 * length, UTF-8, varint and bound checks) and computes, for every data point, the fingerprint that
 * `fingerprintDataPoints(decodeOtlpProtobuf(bytes))` gives: metric name, then the resource's
 * attributes merged with the point's (key-sorted, the first of a repeated key wins, a point's
 * attribute wins over the resource's, empty values left out).
 *
 * It covers the shape nearly every sender writes: gauges and sums of number data points without
 * exemplars, attribute values that are strings, bools, ints, doubles or empty, and no unknown
 * fields. Anything else (histograms, summaries, exemplars, metric metadata, array, kvlist or bytes
 * values, unknown fields, a singular field given twice where the decoder keeps the last, a point
 * with more than `MAX_SCAN_ATTRIBUTES` attributes) and any malformed input or bound exceeded gives
 * `undefined`: then the caller decodes the request in full, which says exactly what is wrong. So a
 * request this accepts is one the decoder accepts, with the same fingerprints (the laws in
 * `test/protocols/otlp/scan.test.ts` hold it to that).
 *
 * @module
 */
import { absorbText, beginFingerprint, finishFingerprint } from "../../limits/fingerprint.js"
import type { RequestBounds } from "../../wire/bounds.js"
import { I64, LEN, ProtoReader, tag, VARINT } from "../../wire/protobuf.js"
import { absorbLabel, type Fingerprints } from "./adapter.js"
import { doubleText, forEachMergedLabel } from "./attribute-text.js"

const T1_LEN = tag(1, LEN)
const T2_LEN = tag(2, LEN)
const T3_LEN = tag(3, LEN)
const T5_LEN = tag(5, LEN)
const T7_LEN = tag(7, LEN)
const T2_VAR = tag(2, VARINT)
const T3_VAR = tag(3, VARINT)
const T4_VAR = tag(4, VARINT)
const T8_VAR = tag(8, VARINT)
const T2_I64 = tag(2, I64)
const T3_I64 = tag(3, I64)
const T4_I64 = tag(4, I64)
const T6_I64 = tag(6, I64)

/** Above this many attributes on one point (or resource), the full decoder takes the request. */
export const MAX_SCAN_ATTRIBUTES = 64

/** Thrown to leave the fast path; caught in `scanFingerprints` only. */
const OUTSIDE = new Error("outside the scanned shape")

const outside = (): never => {
  throw OUTSIDE
}

const NO_LABELS: ReadonlyArray<string> = Object.freeze([])

// Module scope, reused by every scan in this thread (a scan runs to its end without yielding).
/** The attributes being read, flat `[k0, v0, k1, v1, …]`, `pairs` of them. */
const attrs: string[] = []
let pairs = 0
/** The scratch fingerprint arrays start this long, double as needed, and are kept up to `KEPT_ENTRIES`. */
const INITIAL_ENTRIES = 1024
const KEPT_ENTRIES = 1 << 16
let hi = new Uint32Array(INITIAL_ENTRIES)
let lo = new Uint32Array(INITIAL_ENTRIES)
let count = 0
const fp = new Uint32Array(2)

/** One `KeyValue` whose value is a scalar: its key and the label text of its value go to `attrs`. */
const readKeyValue = (r: ProtoReader, end: number): void => {
  r.element()
  let key = ""
  let text = ""
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    if (t === T1_LEN) key = r.string(end)
    else if (t === T2_LEN) text = readValueText(r, r.len(end))
    else outside()
  }
  r.done(end)
  if (pairs >= MAX_SCAN_ATTRIBUTES) outside()
  attrs[2 * pairs] = key
  attrs[2 * pairs + 1] = text
  pairs++
}

/** The label text of a scalar `AnyValue` (the last of its oneof fields wins, as in the decoder). */
const readValueText = (r: ProtoReader, end: number): string => {
  let text = ""
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T1_LEN:
        text = r.string(end)
        break
      case T2_VAR:
        text = r.bool() ? "true" : "false"
        break
      case T3_VAR:
        text = String(r.int64())
        break
      case T4_I64:
        text = doubleText(r.double())
        break
      default:
        outside()
    }
  }
  r.done(end)
  return text
}

/**
 * Sorts the `pairs` attributes of `attrs` by key (stable) and keeps the first of each repeated key:
 * `flattenAttributes`' order and choice. Returns how many pairs are left.
 */
const sortUnique = (): number => {
  for (let i = 1; i < pairs; i++) {
    const k = attrs[2 * i] as string
    const v = attrs[2 * i + 1] as string
    let j = i - 1
    while (j >= 0 && (attrs[2 * j] as string) > k) {
      attrs[2 * j + 2] = attrs[2 * j] as string
      attrs[2 * j + 3] = attrs[2 * j + 1] as string
      j--
    }
    attrs[2 * j + 2] = k
    attrs[2 * j + 3] = v
  }
  let w = 0
  for (let i = 0; i < pairs; i++) {
    const k = attrs[2 * i] as string
    if (w > 0 && attrs[2 * w - 2] === k) continue
    attrs[2 * w] = k
    attrs[2 * w + 1] = attrs[2 * i + 1] as string
    w++
  }
  return w
}

/** Adds the fingerprint of `name` + the merge of `base` and the first `n` pairs of `attrs`. */
const addFingerprint = (name: string, base: ReadonlyArray<string>, n: number): void => {
  beginFingerprint()
  absorbText(name)
  forEachMergedLabel(base, attrs, absorbLabel, 2 * n)
  finishFingerprint(fp)
  if (count === hi.length) {
    const h = new Uint32Array(2 * count)
    const l = new Uint32Array(2 * count)
    h.set(hi)
    l.set(lo)
    hi = h
    lo = l
  }
  hi[count] = fp[0] as number
  lo[count] = fp[1] as number
  count++
}

/** `NumberDataPoint` without exemplars: timestamps, value and flags are checked and passed over. */
const scanNumberPoint = (r: ProtoReader, end: number, name: string, base: ReadonlyArray<string>): void => {
  pairs = 0
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T7_LEN:
        readKeyValue(r, r.len(end))
        break
      case T2_I64:
      case T3_I64:
      case T4_I64:
      case T6_I64:
        r.double()
        break
      case T8_VAR:
        r.uint32()
        break
      default:
        outside()
    }
  }
  r.done(end)
  addFingerprint(name, base, sortUnique())
}

/** `Gauge` or `Sum`. */
const scanNumberData = (
  r: ProtoReader,
  end: number,
  isSum: boolean,
  name: string,
  base: ReadonlyArray<string>,
): void => {
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    if (t === T1_LEN) {
      const e = r.len(end)
      r.datapoint()
      scanNumberPoint(r, e, name, base)
    } else if (t === T2_VAR && isSum) r.uint32()
    else if (t === T3_VAR && isSum) r.bool()
    else outside()
  }
  r.done(end)
}

/** `Metric`: its name may come after its data, so the data is read once the metric's fields are. */
const scanMetric = (r: ProtoReader, end: number, base: ReadonlyArray<string>): void => {
  let name = ""
  let dataStart = -1
  let dataEnd = -1
  let isSum = false
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T1_LEN:
        name = r.string(end)
        break
      case T2_LEN:
      case T3_LEN:
        r.string(end)
        break
      case T5_LEN:
      case T7_LEN:
        if (dataStart >= 0) outside() // the decoder keeps the last one
        dataEnd = r.len(end)
        dataStart = r.pos
        isSum = t === T7_LEN
        r.pos = dataEnd
        break
      default:
        outside()
    }
  }
  r.done(end)
  if (dataStart < 0) return
  r.pos = dataStart
  scanNumberData(r, dataEnd, isSum, name, base)
  r.pos = end
}

/** `InstrumentationScope`: checked, not part of a series. */
const scanScope = (r: ProtoReader, end: number): void => {
  pairs = 0
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    if (t === T1_LEN || t === T2_LEN) r.string(end)
    else if (t === T3_LEN) {
      readKeyValue(r, r.len(end))
      pairs = 0
    } else if (t === T4_VAR) r.uint32()
    else outside()
  }
  r.done(end)
}

/** `ScopeMetrics`. */
const scanScopeMetrics = (r: ProtoReader, end: number, base: ReadonlyArray<string>): void => {
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    if (t === T1_LEN) scanScope(r, r.len(end))
    else if (t === T2_LEN) {
      r.element()
      scanMetric(r, r.len(end), base)
    } else if (t === T3_LEN) r.string(end)
    else outside()
  }
  r.done(end)
}

/** `Resource`: its attributes as a flat key-sorted label list. */
const scanResource = (r: ProtoReader, end: number): ReadonlyArray<string> => {
  pairs = 0
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    if (t === T1_LEN) readKeyValue(r, r.len(end))
    else if (t === T2_VAR) r.uint32()
    else outside()
  }
  r.done(end)
  const n = sortUnique()
  return n === 0 ? NO_LABELS : attrs.slice(0, 2 * n)
}

/** `ResourceMetrics`: its resource may come after its scopes, so the scopes are read last. */
const scanResourceMetrics = (r: ProtoReader, end: number): void => {
  let resourceStart = -1
  let resourceEnd = -1
  const scopes: number[] = []
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    if (t === T1_LEN) {
      if (resourceStart >= 0) outside() // the decoder keeps the last one
      resourceEnd = r.len(end)
      resourceStart = r.pos
      r.pos = resourceEnd
    } else if (t === T2_LEN) {
      r.element()
      const e = r.len(end)
      scopes.push(r.pos, e)
      r.pos = e
    } else if (t === T3_LEN) r.string(end)
    else outside()
  }
  r.done(end)
  let base = NO_LABELS
  if (resourceStart >= 0) {
    r.pos = resourceStart
    base = scanResource(r, resourceEnd)
  }
  for (let s = 0; s < scopes.length; s += 2) {
    r.pos = scopes[s] as number
    scanScopeMetrics(r, scopes[s + 1] as number, base)
  }
  r.pos = end
}

/**
 * The fingerprint of every data point of the protobuf `ExportMetricsServiceRequest` in `bytes`, in
 * `toSeriesBatch` order, when the request has the scanned shape and is valid within `bounds`;
 * otherwise `undefined` (decode it in full). Never throws.
 */
export const scanFingerprints = (bytes: Uint8Array, bounds: RequestBounds): Fingerprints | undefined => {
  count = 0
  let out: Fingerprints | undefined
  try {
    const r = new ProtoReader(bytes, bounds)
    const end = r.end
    for (let t = r.next(end); t !== 0; t = r.next(end)) {
      if (t !== T1_LEN) outside()
      r.element()
      scanResourceMetrics(r, r.len(end))
    }
    out = { hi: hi.slice(0, count), lo: lo.slice(0, count) }
  } catch {
    out = undefined
  }
  // One unusually large request does not keep its scratch arrays for the life of the thread.
  if (hi.length > KEPT_ENTRIES) {
    hi = new Uint32Array(INITIAL_ENTRIES)
    lo = new Uint32Array(INITIAL_ENTRIES)
  }
  return out
}
