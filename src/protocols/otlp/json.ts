/**
 * The OTLP/JSON codec of OTLP metrics: the proto3 JSON mapping with the OTLP deviations
 * (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).
 *
 * Decoding:
 * - keys are lowerCamelCase; the original snake_case names are accepted too (as the OpenTelemetry
 *   Collector does), and any other key is ignored, as OTLP/JSON requires;
 * - 64-bit integers (timestamps, counts, `asInt`, `intValue`) may be decimal strings or numbers.
 *   They are exact either way: integer literals of 16 or more digits are read from the text
 *   before `JSON.parse` could round them to a double;
 * - doubles may be numbers, numeric strings or `"NaN"`, `"Infinity"`, `"-Infinity"`;
 * - enums are integers (the enum value names are accepted too); `null` means "not set";
 * - `traceId` / `spanId` are hex; `bytesValue` is base64;
 * - a value of the wrong JSON type, two members of one oneof, or an integer out of its range is
 *   an error that names the path (`resourceMetrics[0].scopeMetrics[1].metrics[2].name`).
 *
 * Encoding writes lowerCamelCase keys, 64-bit integers as decimal strings, enums as integers,
 * non-finite doubles (and -0) as strings, ids as lowercase hex; fields at their proto3 default
 * are left out, except oneof members and `optional` fields, which are written whenever set.
 * `unknownFields` cannot be represented in JSON and are not written.
 */
import { Either } from "effect"
import {
  BoundExceeded,
  type RequestBounds,
  tooManyDatapoints,
  tooManyElements,
  UNBOUNDED,
} from "../../wire/bounds.js"
import { MAX_DEPTH } from "../../wire/protobuf.js"
import { OtlpDecodeError } from "./errors.js"
import type * as Otlp from "./types.js"
import { EMPTY_VALUE, type Mutable, NO_BYTES } from "./types.js"

type Obj = { readonly [key: string]: unknown }

const U64_MAX = 2n ** 64n - 1n
const I64_MIN = -(2n ** 63n)
const I64_MAX = 2n ** 63n - 1n

// ============================================================================================
// Decoding
// ============================================================================================

/** A JSON shape problem; `path` is filled in on the way out, so the success path pays nothing. */
class JsonShapeError extends Error {
  readonly path: Array<string> = []
}

function fail(message: string): never {
  throw new JsonShapeError(message)
}

/** Rethrows `e`, prefixing `segment` to the path of a shape error. */
function within(e: unknown, segment: string): never {
  if (e instanceof JsonShapeError) e.path.unshift(segment)
  throw e
}

/** The value under `camel` (or its snake_case original name); `null` counts as absent. */
const get = (o: Obj, camel: string, snake?: string): unknown => {
  const v = o[camel]
  if (v !== undefined && v !== null) return v
  if (snake === undefined) return undefined
  const s = o[snake]
  return s === null ? undefined : s
}

const asObject = (v: unknown): Obj => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail("expected an object")
  return v as Obj
}

const field = <A>(o: Obj, camel: string, snake: string | undefined, f: (v: unknown) => A): A | undefined => {
  const v = get(o, camel, snake)
  if (v === undefined) return undefined
  try {
    return f(v)
  } catch (e) {
    return within(e, camel)
  }
}

const list = <A>(o: Obj, camel: string, snake: string | undefined, f: (v: unknown) => A): A[] => {
  const v = get(o, camel, snake)
  if (v === undefined) return []
  if (!Array.isArray(v)) return within(new JsonShapeError("expected an array"), camel)
  const out: A[] = new Array(v.length)
  for (let i = 0; i < v.length; i++) {
    try {
      out[i] = f(v[i])
    } catch (e) {
      within(e, `${camel}[${i}]`)
    }
  }
  return out
}

const toStr = (v: unknown): string => (typeof v === "string" ? v : fail("expected a string"))

const toBool = (v: unknown): boolean => (typeof v === "boolean" ? v : fail("expected true or false"))

const INT_TEXT = /^-?\d+$/

/** Any JSON integer (number or decimal string) as a `bigint`, checked against `[min, max]`. */
const toBigInt = (v: unknown, min: bigint, max: bigint): bigint => {
  let b: bigint
  if (typeof v === "string") {
    if (!INT_TEXT.test(v)) fail(`expected an integer, got ${JSON.stringify(v.slice(0, 40))}`)
    b = BigInt(v)
  } else if (typeof v === "number") {
    if (!Number.isInteger(v)) fail(`expected an integer, got ${v}`)
    b = BigInt(v)
  } else {
    return fail("expected an integer")
  }
  if (b < min || b > max) fail(`integer ${b} out of range`)
  return b
}

const toUint64 = (v: unknown): bigint => toBigInt(v, 0n, U64_MAX)
const toInt64 = (v: unknown): bigint => toBigInt(v, I64_MIN, I64_MAX)
const toUint32 = (v: unknown): number => Number(toBigInt(v, 0n, 0xffffffffn))
const toInt32 = (v: unknown): number => Number(toBigInt(v, -0x80000000n, 0x7fffffffn))

const TEMPORALITY_NAMES: Readonly<Record<string, number>> = {
  AGGREGATION_TEMPORALITY_UNSPECIFIED: 0,
  AGGREGATION_TEMPORALITY_DELTA: 1,
  AGGREGATION_TEMPORALITY_CUMULATIVE: 2,
}

const toTemporality = (v: unknown): number => {
  if (typeof v === "string" && Object.hasOwn(TEMPORALITY_NAMES, v)) return TEMPORALITY_NAMES[v] as number
  return toInt32(v)
}

const NUMBER_TEXT = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/

const toDouble = (v: unknown): number => {
  if (typeof v === "number") return v
  if (typeof v === "string") {
    if (v === "NaN") return Number.NaN
    if (v === "Infinity") return Number.POSITIVE_INFINITY
    if (v === "-Infinity") return Number.NEGATIVE_INFINITY
    if (NUMBER_TEXT.test(v)) return Number(v)
  }
  return fail("expected a number")
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/

const toHexBytes = (v: unknown): Uint8Array => {
  const s = toStr(v)
  if (!HEX.test(s)) fail("expected an even number of hex digits")
  return s.length === 0 ? NO_BYTES : new Uint8Array(Buffer.from(s, "hex"))
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/

const toBase64Bytes = (v: unknown): Uint8Array => {
  const s = toStr(v)
  if (!BASE64.test(s)) fail("expected base64")
  return new Uint8Array(Buffer.from(s, "base64"))
}

const toAnyValue = (v: unknown, depth: number): Otlp.AnyValue => {
  if (depth > MAX_DEPTH) fail("attribute value nested too deeply")
  const o = asObject(v)
  let out: Otlp.AnyValue = EMPTY_VALUE
  let seen: string | undefined
  for (const key in o) {
    const x = o[key]
    if (x === null || x === undefined) continue
    let next: Otlp.AnyValue
    try {
      switch (key) {
        case "stringValue":
        case "string_value":
          next = { type: "string", value: toStr(x) }
          break
        case "boolValue":
        case "bool_value":
          next = { type: "bool", value: toBool(x) }
          break
        case "intValue":
        case "int_value":
          next = { type: "int", value: toInt64(x) }
          break
        case "doubleValue":
        case "double_value":
          next = { type: "double", value: toDouble(x) }
          break
        case "arrayValue":
        case "array_value":
          next = {
            type: "array",
            values: list(asObject(x), "values", undefined, (e) => toAnyValue(e, depth + 1)),
          }
          break
        case "kvlistValue":
        case "kvlist_value":
          next = {
            type: "kvlist",
            values: list(asObject(x), "values", undefined, (e) => toKeyValue(e, depth + 1)),
          }
          break
        case "bytesValue":
        case "bytes_value":
          next = { type: "bytes", value: toBase64Bytes(x) }
          break
        default:
          continue
      }
    } catch (e) {
      within(e, key)
    }
    if (seen !== undefined) fail(`both ${seen} and ${key} are set`)
    seen = key
    out = next
  }
  return out
}

const toKeyValue = (v: unknown, depth: number): Otlp.KeyValue => {
  const o = asObject(v)
  return {
    key: field(o, "key", undefined, toStr) ?? "",
    value: field(o, "value", undefined, (x) => toAnyValue(x, depth + 1)) ?? EMPTY_VALUE,
  }
}

const toAttributes = (o: Obj, camel: string, snake: string | undefined): Otlp.KeyValue[] =>
  list(o, camel, snake, (x) => toKeyValue(x, 0))

const toResource = (v: unknown): Otlp.Resource => {
  const o = asObject(v)
  return {
    attributes: toAttributes(o, "attributes", undefined),
    droppedAttributesCount: field(o, "droppedAttributesCount", "dropped_attributes_count", toUint32) ?? 0,
  }
}

const toScope = (v: unknown): Otlp.InstrumentationScope => {
  const o = asObject(v)
  return {
    name: field(o, "name", undefined, toStr) ?? "",
    version: field(o, "version", undefined, toStr) ?? "",
    attributes: toAttributes(o, "attributes", undefined),
    droppedAttributesCount: field(o, "droppedAttributesCount", "dropped_attributes_count", toUint32) ?? 0,
  }
}

const toNumberValue = (o: Obj): Otlp.NumberValue | undefined => {
  const d = field(o, "asDouble", "as_double", toDouble)
  const i = field(o, "asInt", "as_int", toInt64)
  if (d !== undefined && i !== undefined) fail("both asDouble and asInt are set")
  return d !== undefined
    ? { type: "double", value: d }
    : i !== undefined
      ? { type: "int", value: i }
      : undefined
}

const toExemplar = (v: unknown): Otlp.Exemplar => {
  const o = asObject(v)
  const out: Mutable<Otlp.Exemplar> = {
    filteredAttributes: toAttributes(o, "filteredAttributes", "filtered_attributes"),
    timeUnixNano: field(o, "timeUnixNano", "time_unix_nano", toUint64) ?? 0n,
    spanId: field(o, "spanId", "span_id", toHexBytes) ?? NO_BYTES,
    traceId: field(o, "traceId", "trace_id", toHexBytes) ?? NO_BYTES,
  }
  const value = toNumberValue(o)
  if (value !== undefined) out.value = value
  return out
}

const startTime = (o: Obj): bigint => field(o, "startTimeUnixNano", "start_time_unix_nano", toUint64) ?? 0n
const time = (o: Obj): bigint => field(o, "timeUnixNano", "time_unix_nano", toUint64) ?? 0n
const flags = (o: Obj): number => field(o, "flags", undefined, toUint32) ?? 0
const exemplars = (o: Obj): Otlp.Exemplar[] => list(o, "exemplars", undefined, toExemplar)

const toNumberDataPoint = (v: unknown): Otlp.NumberDataPoint => {
  const o = asObject(v)
  const out: Mutable<Otlp.NumberDataPoint> = {
    attributes: toAttributes(o, "attributes", undefined),
    startTimeUnixNano: startTime(o),
    timeUnixNano: time(o),
    exemplars: exemplars(o),
    flags: flags(o),
  }
  const value = toNumberValue(o)
  if (value !== undefined) out.value = value
  return out
}

const toHistogramDataPoint = (v: unknown): Otlp.HistogramDataPoint => {
  const o = asObject(v)
  const out: Mutable<Otlp.HistogramDataPoint> = {
    attributes: toAttributes(o, "attributes", undefined),
    startTimeUnixNano: startTime(o),
    timeUnixNano: time(o),
    count: field(o, "count", undefined, toUint64) ?? 0n,
    bucketCounts: list(o, "bucketCounts", "bucket_counts", toUint64),
    explicitBounds: list(o, "explicitBounds", "explicit_bounds", toDouble),
    exemplars: exemplars(o),
    flags: flags(o),
  }
  const sum = field(o, "sum", undefined, toDouble)
  const min = field(o, "min", undefined, toDouble)
  const max = field(o, "max", undefined, toDouble)
  if (sum !== undefined) out.sum = sum
  if (min !== undefined) out.min = min
  if (max !== undefined) out.max = max
  return out
}

const toBuckets = (v: unknown): Otlp.Buckets => {
  const o = asObject(v)
  return {
    offset: field(o, "offset", undefined, toInt32) ?? 0,
    bucketCounts: list(o, "bucketCounts", "bucket_counts", toUint64),
  }
}

const toExponentialHistogramDataPoint = (v: unknown): Otlp.ExponentialHistogramDataPoint => {
  const o = asObject(v)
  const out: Mutable<Otlp.ExponentialHistogramDataPoint> = {
    attributes: toAttributes(o, "attributes", undefined),
    startTimeUnixNano: startTime(o),
    timeUnixNano: time(o),
    count: field(o, "count", undefined, toUint64) ?? 0n,
    scale: field(o, "scale", undefined, toInt32) ?? 0,
    zeroCount: field(o, "zeroCount", "zero_count", toUint64) ?? 0n,
    flags: flags(o),
    exemplars: exemplars(o),
    zeroThreshold: field(o, "zeroThreshold", "zero_threshold", toDouble) ?? 0,
  }
  const sum = field(o, "sum", undefined, toDouble)
  const positive = field(o, "positive", undefined, toBuckets)
  const negative = field(o, "negative", undefined, toBuckets)
  const min = field(o, "min", undefined, toDouble)
  const max = field(o, "max", undefined, toDouble)
  if (sum !== undefined) out.sum = sum
  if (positive !== undefined) out.positive = positive
  if (negative !== undefined) out.negative = negative
  if (min !== undefined) out.min = min
  if (max !== undefined) out.max = max
  return out
}

const toValueAtQuantile = (v: unknown): Otlp.ValueAtQuantile => {
  const o = asObject(v)
  return {
    quantile: field(o, "quantile", undefined, toDouble) ?? 0,
    value: field(o, "value", undefined, toDouble) ?? 0,
  }
}

const toSummaryDataPoint = (v: unknown): Otlp.SummaryDataPoint => {
  const o = asObject(v)
  return {
    attributes: toAttributes(o, "attributes", undefined),
    startTimeUnixNano: startTime(o),
    timeUnixNano: time(o),
    count: field(o, "count", undefined, toUint64) ?? 0n,
    sum: field(o, "sum", undefined, toDouble) ?? 0,
    quantileValues: list(o, "quantileValues", "quantile_values", toValueAtQuantile),
    flags: flags(o),
  }
}

const temporality = (o: Obj): number =>
  field(o, "aggregationTemporality", "aggregation_temporality", toTemporality) ?? 0

const DATA_KEYS = [
  ["gauge", undefined],
  ["sum", undefined],
  ["histogram", undefined],
  ["exponentialHistogram", "exponential_histogram"],
  ["summary", undefined],
] as const

/**
 * Datapoints the request being decoded may still hold (`receivers.max_datapoints_per_request`).
 * Decoding is synchronous, so one counter, set by `decodeJsonWith`, serves every decode.
 */
let datapointBound = UNBOUNDED.maxDatapoints
let datapointsLeft = datapointBound

/** `list` for data points: counted against the bound before any of them is converted. */
const points = <A>(o: Obj, f: (v: unknown) => A): A[] => {
  const v = get(o, "dataPoints", "data_points")
  if (Array.isArray(v)) {
    datapointsLeft -= v.length
    if (datapointsLeft < 0) throw new BoundExceeded(tooManyDatapoints(datapointBound))
  }
  return list(o, "dataPoints", "data_points", f)
}

const toMetricData = (type: Otlp.MetricData["type"], v: unknown): Otlp.MetricData => {
  const o = asObject(v)
  switch (type) {
    case "gauge":
      return { type, dataPoints: points(o, toNumberDataPoint) }
    case "sum":
      return {
        type,
        dataPoints: points(o, toNumberDataPoint),
        aggregationTemporality: temporality(o),
        isMonotonic: field(o, "isMonotonic", "is_monotonic", toBool) ?? false,
      }
    case "histogram":
      return {
        type,
        dataPoints: points(o, toHistogramDataPoint),
        aggregationTemporality: temporality(o),
      }
    case "exponentialHistogram":
      return {
        type,
        dataPoints: points(o, toExponentialHistogramDataPoint),
        aggregationTemporality: temporality(o),
      }
    case "summary":
      return { type, dataPoints: points(o, toSummaryDataPoint) }
  }
}

const toMetric = (v: unknown): Otlp.Metric => {
  const o = asObject(v)
  const out: Mutable<Otlp.Metric> = {
    name: field(o, "name", undefined, toStr) ?? "",
    description: field(o, "description", undefined, toStr) ?? "",
    unit: field(o, "unit", undefined, toStr) ?? "",
    metadata: toAttributes(o, "metadata", undefined),
  }
  for (const [camel, snake] of DATA_KEYS) {
    const data = field(o, camel, snake, (x) => toMetricData(camel, x))
    if (data === undefined) continue
    if (out.data !== undefined) fail(`both ${out.data.type} and ${camel} are set`)
    out.data = data
  }
  return out
}

const toScopeMetrics = (v: unknown): Otlp.ScopeMetrics => {
  const o = asObject(v)
  const out: Mutable<Otlp.ScopeMetrics> = {
    metrics: list(o, "metrics", undefined, toMetric),
    schemaUrl: field(o, "schemaUrl", "schema_url", toStr) ?? "",
  }
  const scope = field(o, "scope", undefined, toScope)
  if (scope !== undefined) out.scope = scope
  return out
}

const toResourceMetrics = (v: unknown): Otlp.ResourceMetrics => {
  const o = asObject(v)
  const out: Mutable<Otlp.ResourceMetrics> = {
    scopeMetrics: list(o, "scopeMetrics", "scope_metrics", toScopeMetrics),
    schemaUrl: field(o, "schemaUrl", "schema_url", toStr) ?? "",
  }
  const resource = field(o, "resource", undefined, toResource)
  if (resource !== undefined) out.resource = resource
  return out
}

const toRequest = (v: unknown): Otlp.ExportMetricsServiceRequest => ({
  resourceMetrics: list(asObject(v), "resourceMetrics", "resource_metrics", toResourceMetrics),
})

/** A bare integer literal of 16+ digits somewhere after `:`, `[` or `,` (maybe inside a string). */
const BIG_INTEGER_HINT = /[:[,]\s*-?\d{16}/

/**
 * Quotes every bare integer literal of 16 or more digits, so `JSON.parse` keeps its exact digits
 * (the integer fields accept strings); shorter integers are below 2^53 and exact anyway.
 */
const quoteBigIntegers = (text: string): string => {
  if (!BIG_INTEGER_HINT.test(text)) return text
  const n = text.length
  const parts: string[] = []
  let last = 0
  let i = 0
  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      // A string: skip to its closing quote.
      i++
      while (i < n) {
        const d = text.charCodeAt(i)
        if (d === 0x5c) i += 2
        else if (d === 0x22) break
        else i++
      }
      i++
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      const start = i
      if (c === 0x2d) i++
      const digitsStart = i
      while (i < n && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++
      const digits = i - digitsStart
      const next = i < n ? text.charCodeAt(i) : 0
      if (next === 0x2e || next === 0x65 || next === 0x45) {
        // A fraction or an exponent: a double literal, left to JSON.parse.
        i++
        while (i < n) {
          const d = text.charCodeAt(i)
          if ((d >= 0x30 && d <= 0x39) || d === 0x2b || d === 0x2d || d === 0x65 || d === 0x45 || d === 0x2e)
            i++
          else break
        }
      } else if (digits >= 16) {
        parts.push(text.slice(last, start), '"', text.slice(start, i), '"')
        last = i
      }
    } else {
      i++
    }
  }
  if (last === 0) return text
  parts.push(text.slice(last))
  return parts.join("")
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * Whether `text` holds more than `bound` elements: JSON objects and further members or items
 * (every `{` and every `,` outside strings). Run before `JSON.parse`, which would otherwise build
 * the whole tree first: `[{},{},…]` costs an object per 3 bytes.
 */
const exceedsElements = (text: string, bound: number): boolean => {
  let left = bound
  const n = text.length
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      // A string: skip to its closing quote.
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i)
        if (d === 0x5c) i++
        else if (d === 0x22) break
      }
    } else if (c === 0x7b || c === 0x2c) {
      if (--left < 0) return true
    }
  }
  return false
}

const decodeJsonWith = <A>(
  input: string | Uint8Array,
  convert: (v: unknown) => A,
  bounds: RequestBounds = UNBOUNDED,
): Either.Either<A, OtlpDecodeError> => {
  const bad = (reason: string) => Either.left(new OtlpDecodeError({ kind: "bad_json", reason }))
  let text: string
  if (typeof input === "string") {
    text = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input
  } else {
    try {
      text = utf8.decode(input) // also drops a leading BOM
    } catch {
      return bad("body is not valid UTF-8")
    }
  }
  if (bounds !== UNBOUNDED && exceedsElements(text, bounds.maxElements)) {
    return Either.left(new OtlpDecodeError({ kind: "too_many", reason: tooManyElements(bounds.maxElements) }))
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(quoteBigIntegers(text))
  } catch (e) {
    return bad(e instanceof Error ? e.message : "syntax error")
  }
  datapointBound = bounds.maxDatapoints
  datapointsLeft = datapointBound
  try {
    return Either.right(convert(parsed))
  } catch (e) {
    if (e instanceof BoundExceeded)
      return Either.left(new OtlpDecodeError({ kind: "too_many", reason: e.message }))
    if (e instanceof JsonShapeError) {
      return bad(e.path.length === 0 ? e.message : `${e.path.join(".")}: ${e.message}`)
    }
    return bad(`unexpected: ${e instanceof Error ? e.message : String(e)}`)
  }
}

/**
 * Decodes an OTLP/JSON `ExportMetricsServiceRequest` from text or UTF-8 bytes. Total: any input
 * gives a request or an `OtlpDecodeError` of kind `bad_json`, or `too_many` when it holds more
 * datapoints or elements than `bounds` allow (checked before anything is built); it never throws.
 */
export const decodeOtlpJson = (
  input: string | Uint8Array,
  bounds: RequestBounds = UNBOUNDED,
): Either.Either<Otlp.ExportMetricsServiceRequest, OtlpDecodeError> =>
  decodeJsonWith(input, toRequest, bounds)

// ============================================================================================
// Encoding
// ============================================================================================

/** Encodes an `ExportMetricsServiceResponse` as OTLP/JSON (`{}` for full success). */
export const encodeOtlpResponseJson = (res: Otlp.ExportMetricsServiceResponse): string => {
  const ps = res.partialSuccess
  if (ps === undefined) return "{}"
  // Fields at their default value are left out, as proto3 JSON does.
  const o: Record<string, string> = {}
  if (ps.rejectedDataPoints !== 0n) o.rejectedDataPoints = String(ps.rejectedDataPoints)
  if (ps.errorMessage !== "") o.errorMessage = ps.errorMessage
  return JSON.stringify({ partialSuccess: o })
}
