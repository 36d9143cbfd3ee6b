/**
 * The binary protobuf codec of OTLP metrics, hand-written from the field numbers of
 * opentelemetry-proto (`collector/metrics/v1`, `metrics/v1`, `common/v1`, `resource/v1`).
 *
 * Decoding follows proto3: fields in any order, packed and unpacked repeated scalars, unknown
 * fields (and known fields with an unexpected wire type) kept verbatim in `unknownFields`; a
 * singular message field that occurs twice keeps the last occurrence (as protobufjs does; the
 * spec would merge them, which no sender relies on). A string with invalid UTF-8 is an error (as
 * proto3 and the Collector's decoder have it; OTLP/JSON and remote write refuse it too), never
 * rewritten to U+FFFD. `AnyValue` nesting deeper than `MAX_DEPTH` is rejected.
 *
 * Encoding writes fields in field-number order, skips proto3 defaults (a `-0` double is not a
 * default), writes oneof members and `optional` fields whenever set, packs repeated scalars, and
 * appends `unknownFields` after the known fields of each message.
 *
 * Why hand-written rather than protobufjs reflection: exact 64-bit values as `bigint` without
 * `Long`, unknown-field pass-through, no throw on any input, and speed. `bench/otlp-codec.ts`,
 * 10,000 points of 5 attributes (2.05 MB), Node 20 on a 2-core EPYC VM, medians:
 *
 * | | hand-written | protobufjs reflection |
 * |---|---|---|
 * | decode, repeated attribute values | 9 ms (≈230 MB/s, 0.9 µs/point) | 42–58 ms |
 * | decode, every value distinct | 14–31 ms | 47–58 ms |
 * | encode | 7–9 ms (≈250 MB/s) | 15–29 ms |
 *
 * Decoding is bound by young-generation GC: with `--max-semi-space-size=64` the same decodes
 * take 4.7 ms and 9.9 ms. Short strings are interned (`wire/protobuf.ts`) and a repeated `fixed64` reuses
 * its `bigint`, which is most of the gap on repetitive data.
 */
import * as Either from "effect/Either"
import { BoundExceeded, type RequestBounds, UNBOUNDED } from "../../wire/bounds.js"
import { I64, LEN, MAX_DEPTH, ProtoReader, ProtoWriter, tag, VARINT, WireError } from "../../wire/protobuf.js"
import { OtlpDecodeError } from "./errors.js"
import type {
  AnyValue,
  Buckets,
  Exemplar,
  ExponentialHistogramDataPoint,
  ExportMetricsPartialSuccess,
  ExportMetricsServiceRequest,
  ExportMetricsServiceResponse,
  HistogramDataPoint,
  InstrumentationScope,
  KeyValue,
  Metric,
  MetricData,
  NumberDataPoint,
  NumberValue,
  Resource,
  ResourceMetrics,
  ScopeMetrics,
  SummaryDataPoint,
  ValueAtQuantile,
} from "./types.js"
import { EMPTY_VALUE, type Mutable, NO_BYTES } from "./types.js"

/** Shared by every absent list that is usually empty (exemplars, metadata), to spare an allocation. */
const NONE: ReadonlyArray<never> = Object.freeze([])

// Tags, precomputed: T_<field>_<wire type>.
const T1_LEN = tag(1, LEN)
const T2_LEN = tag(2, LEN)
const T3_LEN = tag(3, LEN)
const T4_LEN = tag(4, LEN)
const T5_LEN = tag(5, LEN)
const T6_LEN = tag(6, LEN)
const T7_LEN = tag(7, LEN)
const T8_LEN = tag(8, LEN)
const T9_LEN = tag(9, LEN)
const T10_LEN = tag(10, LEN)
const T11_LEN = tag(11, LEN)
const T12_LEN = tag(12, LEN)
const T1_VAR = tag(1, VARINT)
const T2_VAR = tag(2, VARINT)
const T3_VAR = tag(3, VARINT)
const T4_VAR = tag(4, VARINT)
const T6_VAR = tag(6, VARINT)
const T8_VAR = tag(8, VARINT)
const T10_VAR = tag(10, VARINT)
const T1_I64 = tag(1, I64)
const T2_I64 = tag(2, I64)
const T3_I64 = tag(3, I64)
const T4_I64 = tag(4, I64)
const T5_I64 = tag(5, I64)
const T6_I64 = tag(6, I64)
const T7_I64 = tag(7, I64)
const T11_I64 = tag(11, I64)
const T12_I64 = tag(12, I64)
const T13_I64 = tag(13, I64)
const T14_I64 = tag(14, I64)

// ============================================================================================
// Decoding
// ============================================================================================

const decodeAnyValue = (r: ProtoReader, end: number, depth: number): AnyValue => {
  if (depth > MAX_DEPTH) r.fail("attribute value nested too deeply")
  let v: AnyValue = EMPTY_VALUE
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T1_LEN:
        v = { type: "string", value: r.string(end) }
        break
      case T2_VAR:
        v = { type: "bool", value: r.bool() }
        break
      case T3_VAR:
        v = { type: "int", value: r.int64() }
        break
      case T4_I64:
        v = { type: "double", value: r.double() }
        break
      case T5_LEN: {
        const e = r.len(end)
        const values: AnyValue[] = []
        for (let t = r.next(e); t !== 0; t = r.next(e)) {
          if (t === T1_LEN) {
            r.element()
            values.push(decodeAnyValue(r, r.len(e), depth + 1))
          } else r.skipField(t, e) // unknown fields of the ArrayValue wrapper are dropped
        }
        r.done(e)
        v = { type: "array", values }
        break
      }
      case T6_LEN: {
        const e = r.len(end)
        const values: KeyValue[] = []
        for (let t = r.next(e); t !== 0; t = r.next(e)) {
          if (t === T1_LEN) values.push(decodeKeyValue(r, r.len(e), depth + 1))
          else r.skipField(t, e) // likewise for KeyValueList
        }
        r.done(e)
        v = { type: "kvlist", values }
        break
      }
      case T7_LEN:
        v = { type: "bytes", value: r.bytes(end) }
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  return unknown === undefined ? v : { ...v, unknownFields: unknown }
}

const decodeKeyValue = (r: ProtoReader, end: number, depth: number): KeyValue => {
  r.element()
  let key = ""
  let value: AnyValue = EMPTY_VALUE
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T1_LEN:
        key = r.string(end)
        break
      case T2_LEN:
        value = decodeAnyValue(r, r.len(end), depth + 1)
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  return unknown === undefined ? { key, value } : { key, value, unknownFields: unknown }
}

const decodeResource = (r: ProtoReader, end: number): Resource => {
  const attributes: KeyValue[] = []
  let droppedAttributesCount = 0
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T1_LEN:
        attributes.push(decodeKeyValue(r, r.len(end), 0))
        break
      case T2_VAR:
        droppedAttributesCount = r.uint32()
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  const out: Mutable<Resource> = { attributes, droppedAttributesCount }
  if (unknown !== undefined) out.unknownFields = unknown
  return out
}

const decodeScope = (r: ProtoReader, end: number): InstrumentationScope => {
  let name = ""
  let version = ""
  const attributes: KeyValue[] = []
  let droppedAttributesCount = 0
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T1_LEN:
        name = r.string(end)
        break
      case T2_LEN:
        version = r.string(end)
        break
      case T3_LEN:
        attributes.push(decodeKeyValue(r, r.len(end), 0))
        break
      case T4_VAR:
        droppedAttributesCount = r.uint32()
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  const out: Mutable<InstrumentationScope> = { name, version, attributes, droppedAttributesCount }
  if (unknown !== undefined) out.unknownFields = unknown
  return out
}

const decodeExemplar = (r: ProtoReader, end: number): Exemplar => {
  r.element()
  let filteredAttributes: KeyValue[] | undefined
  let timeUnixNano = 0n
  let value: NumberValue | undefined
  let spanId: Uint8Array = NO_BYTES
  let traceId: Uint8Array = NO_BYTES
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T7_LEN:
        if (filteredAttributes === undefined) filteredAttributes = []
        filteredAttributes.push(decodeKeyValue(r, r.len(end), 0))
        break
      case T2_I64:
        timeUnixNano = r.fixed64()
        break
      case T3_I64:
        value = { type: "double", value: r.double() }
        break
      case T6_I64:
        value = { type: "int", value: r.sfixed64() }
        break
      case T4_LEN:
        spanId = r.bytes(end)
        break
      case T5_LEN:
        traceId = r.bytes(end)
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  const out: Mutable<Exemplar> = {
    filteredAttributes: filteredAttributes ?? NONE,
    timeUnixNano,
    spanId,
    traceId,
  }
  if (value !== undefined) out.value = value
  if (unknown !== undefined) out.unknownFields = unknown
  return out
}

const decodeNumberDataPoint = (r: ProtoReader, end: number): NumberDataPoint => {
  const attributes: KeyValue[] = []
  let startTimeUnixNano = 0n
  let timeUnixNano = 0n
  let value: NumberValue | undefined
  let exemplars: Exemplar[] | undefined
  let flags = 0
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T7_LEN:
        attributes.push(decodeKeyValue(r, r.len(end), 0))
        break
      case T2_I64:
        startTimeUnixNano = r.fixed64()
        break
      case T3_I64:
        timeUnixNano = r.fixed64()
        break
      case T4_I64:
        value = { type: "double", value: r.double() }
        break
      case T6_I64:
        value = { type: "int", value: r.sfixed64() }
        break
      case T5_LEN:
        if (exemplars === undefined) exemplars = []
        exemplars.push(decodeExemplar(r, r.len(end)))
        break
      case T8_VAR:
        flags = r.uint32()
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  const out: Mutable<NumberDataPoint> = {
    attributes,
    startTimeUnixNano,
    timeUnixNano,
    exemplars: exemplars ?? NONE,
    flags,
  }
  if (value !== undefined) out.value = value
  if (unknown !== undefined) out.unknownFields = unknown
  return out
}

/** Repeated `fixed64`, packed (one LEN field) or not (one I64 field per value). */
const readPackedFixed64 = (r: ProtoReader, end: number, into: bigint[]): void => {
  const e = r.len(end)
  if ((e - r.pos) % 8 !== 0) r.fail("packed fixed64 length is not a multiple of 8")
  while (r.pos < e) {
    r.element()
    into.push(r.fixed64())
  }
}

const readPackedDouble = (r: ProtoReader, end: number, into: number[]): void => {
  const e = r.len(end)
  if ((e - r.pos) % 8 !== 0) r.fail("packed double length is not a multiple of 8")
  while (r.pos < e) {
    r.element()
    into.push(r.double())
  }
}

const decodeHistogramDataPoint = (r: ProtoReader, end: number): HistogramDataPoint => {
  const attributes: KeyValue[] = []
  let startTimeUnixNano = 0n
  let timeUnixNano = 0n
  let count = 0n
  let sum: number | undefined
  const bucketCounts: bigint[] = []
  const explicitBounds: number[] = []
  let exemplars: Exemplar[] | undefined
  let flags = 0
  let min: number | undefined
  let max: number | undefined
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T9_LEN:
        attributes.push(decodeKeyValue(r, r.len(end), 0))
        break
      case T2_I64:
        startTimeUnixNano = r.fixed64()
        break
      case T3_I64:
        timeUnixNano = r.fixed64()
        break
      case T4_I64:
        count = r.fixed64()
        break
      case T5_I64:
        sum = r.double()
        break
      case T6_LEN:
        readPackedFixed64(r, end, bucketCounts)
        break
      case T6_I64:
        r.element()
        bucketCounts.push(r.fixed64())
        break
      case T7_LEN:
        readPackedDouble(r, end, explicitBounds)
        break
      case T7_I64:
        r.element()
        explicitBounds.push(r.double())
        break
      case T8_LEN:
        if (exemplars === undefined) exemplars = []
        exemplars.push(decodeExemplar(r, r.len(end)))
        break
      case T10_VAR:
        flags = r.uint32()
        break
      case T11_I64:
        min = r.double()
        break
      case T12_I64:
        max = r.double()
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  const out: Mutable<HistogramDataPoint> = {
    attributes,
    startTimeUnixNano,
    timeUnixNano,
    count,
    bucketCounts,
    explicitBounds,
    exemplars: exemplars ?? NONE,
    flags,
  }
  if (sum !== undefined) out.sum = sum
  if (min !== undefined) out.min = min
  if (max !== undefined) out.max = max
  if (unknown !== undefined) out.unknownFields = unknown
  return out
}

const decodeBuckets = (r: ProtoReader, end: number): Buckets => {
  let offset = 0
  const bucketCounts: bigint[] = []
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T1_VAR:
        offset = r.sint32()
        break
      case T2_LEN: {
        const e = r.len(end)
        while (r.pos < e) {
          r.element()
          bucketCounts.push(r.uint64())
        }
        r.done(e)
        break
      }
      case T2_VAR:
        r.element()
        bucketCounts.push(r.uint64())
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  const out: Mutable<Buckets> = { offset, bucketCounts }
  if (unknown !== undefined) out.unknownFields = unknown
  return out
}

const decodeExponentialHistogramDataPoint = (r: ProtoReader, end: number): ExponentialHistogramDataPoint => {
  const attributes: KeyValue[] = []
  let startTimeUnixNano = 0n
  let timeUnixNano = 0n
  let count = 0n
  let sum: number | undefined
  let scale = 0
  let zeroCount = 0n
  let positive: Buckets | undefined
  let negative: Buckets | undefined
  let flags = 0
  let exemplars: Exemplar[] | undefined
  let min: number | undefined
  let max: number | undefined
  let zeroThreshold = 0
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T1_LEN:
        attributes.push(decodeKeyValue(r, r.len(end), 0))
        break
      case T2_I64:
        startTimeUnixNano = r.fixed64()
        break
      case T3_I64:
        timeUnixNano = r.fixed64()
        break
      case T4_I64:
        count = r.fixed64()
        break
      case T5_I64:
        sum = r.double()
        break
      case T6_VAR:
        scale = r.sint32()
        break
      case T7_I64:
        zeroCount = r.fixed64()
        break
      case T8_LEN:
        positive = decodeBuckets(r, r.len(end))
        break
      case T9_LEN:
        negative = decodeBuckets(r, r.len(end))
        break
      case T10_VAR:
        flags = r.uint32()
        break
      case T11_LEN:
        if (exemplars === undefined) exemplars = []
        exemplars.push(decodeExemplar(r, r.len(end)))
        break
      case T12_I64:
        min = r.double()
        break
      case T13_I64:
        max = r.double()
        break
      case T14_I64:
        zeroThreshold = r.double()
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  const out: Mutable<ExponentialHistogramDataPoint> = {
    attributes,
    startTimeUnixNano,
    timeUnixNano,
    count,
    scale,
    zeroCount,
    flags,
    exemplars: exemplars ?? NONE,
    zeroThreshold,
  }
  if (sum !== undefined) out.sum = sum
  if (positive !== undefined) out.positive = positive
  if (negative !== undefined) out.negative = negative
  if (min !== undefined) out.min = min
  if (max !== undefined) out.max = max
  if (unknown !== undefined) out.unknownFields = unknown
  return out
}

const decodeValueAtQuantile = (r: ProtoReader, end: number): ValueAtQuantile => {
  r.element()
  let quantile = 0
  let value = 0
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T1_I64:
        quantile = r.double()
        break
      case T2_I64:
        value = r.double()
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  return unknown === undefined ? { quantile, value } : { quantile, value, unknownFields: unknown }
}

const decodeSummaryDataPoint = (r: ProtoReader, end: number): SummaryDataPoint => {
  const attributes: KeyValue[] = []
  let startTimeUnixNano = 0n
  let timeUnixNano = 0n
  let count = 0n
  let sum = 0
  const quantileValues: ValueAtQuantile[] = []
  let flags = 0
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T7_LEN:
        attributes.push(decodeKeyValue(r, r.len(end), 0))
        break
      case T2_I64:
        startTimeUnixNano = r.fixed64()
        break
      case T3_I64:
        timeUnixNano = r.fixed64()
        break
      case T4_I64:
        count = r.fixed64()
        break
      case T5_I64:
        sum = r.double()
        break
      case T6_LEN:
        quantileValues.push(decodeValueAtQuantile(r, r.len(end)))
        break
      case T8_VAR:
        flags = r.uint32()
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  const out: Mutable<SummaryDataPoint> = {
    attributes,
    startTimeUnixNano,
    timeUnixNano,
    count,
    sum,
    quantileValues,
    flags,
  }
  if (unknown !== undefined) out.unknownFields = unknown
  return out
}

/** `Gauge`, `Sum`, `Histogram`, `ExponentialHistogram`, `Summary`: data points plus a few scalars. */
const decodeMetricData = (r: ProtoReader, end: number, type: MetricData["type"]): MetricData => {
  const dataPoints: Array<MetricData["dataPoints"][number]> = []
  let aggregationTemporality = 0
  let isMonotonic = false
  let unknown: Uint8Array | undefined
  const hasTemporality = type !== "gauge" && type !== "summary"
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    if (t === T1_LEN) {
      const e = r.len(end)
      r.datapoint()
      switch (type) {
        case "gauge":
        case "sum":
          dataPoints.push(decodeNumberDataPoint(r, e))
          break
        case "histogram":
          dataPoints.push(decodeHistogramDataPoint(r, e))
          break
        case "exponentialHistogram":
          dataPoints.push(decodeExponentialHistogramDataPoint(r, e))
          break
        case "summary":
          dataPoints.push(decodeSummaryDataPoint(r, e))
          break
      }
    } else if (t === T2_VAR && hasTemporality) {
      aggregationTemporality = r.uint32() | 0
    } else if (t === T3_VAR && type === "sum") {
      isMonotonic = r.bool()
    } else {
      unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  let out: Mutable<MetricData>
  switch (type) {
    case "gauge":
      out = { type, dataPoints: dataPoints as NumberDataPoint[] }
      break
    case "sum":
      out = { type, dataPoints: dataPoints as NumberDataPoint[], aggregationTemporality, isMonotonic }
      break
    case "histogram":
      out = { type, dataPoints: dataPoints as HistogramDataPoint[], aggregationTemporality }
      break
    case "exponentialHistogram":
      out = { type, dataPoints: dataPoints as ExponentialHistogramDataPoint[], aggregationTemporality }
      break
    case "summary":
      out = { type, dataPoints: dataPoints as SummaryDataPoint[] }
      break
  }
  if (unknown !== undefined) out.unknownFields = unknown
  return out
}

const decodeMetric = (r: ProtoReader, end: number): Metric => {
  let name = ""
  let description = ""
  let unit = ""
  let data: MetricData | undefined
  let metadata: KeyValue[] | undefined
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T1_LEN:
        name = r.string(end)
        break
      case T2_LEN:
        description = r.string(end)
        break
      case T3_LEN:
        unit = r.string(end)
        break
      case T5_LEN:
        data = decodeMetricData(r, r.len(end), "gauge")
        break
      case T7_LEN:
        data = decodeMetricData(r, r.len(end), "sum")
        break
      case T9_LEN:
        data = decodeMetricData(r, r.len(end), "histogram")
        break
      case T10_LEN:
        data = decodeMetricData(r, r.len(end), "exponentialHistogram")
        break
      case T11_LEN:
        data = decodeMetricData(r, r.len(end), "summary")
        break
      case T12_LEN:
        if (metadata === undefined) metadata = []
        metadata.push(decodeKeyValue(r, r.len(end), 0))
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  const out: Mutable<Metric> = { name, description, unit, metadata: metadata ?? NONE }
  if (data !== undefined) out.data = data
  if (unknown !== undefined) out.unknownFields = unknown
  return out
}

/**
 * `ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; string
 * schema_url = 3 }` and `ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2;
 * string schema_url = 3 }`: one shape, a head, a list and a schema URL.
 */
const decodeGroup = <H, I>(
  r: ProtoReader,
  end: number,
  decodeHead: (r: ProtoReader, end: number) => H,
  decodeItem: (r: ProtoReader, end: number) => I,
) => {
  let head: H | undefined
  const items: I[] = []
  let schemaUrl = ""
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    switch (t) {
      case T1_LEN:
        head = decodeHead(r, r.len(end))
        break
      case T2_LEN:
        r.element()
        items.push(decodeItem(r, r.len(end)))
        break
      case T3_LEN:
        schemaUrl = r.string(end)
        break
      default:
        unknown = r.keep(t, end, unknown)
    }
  }
  r.done(end)
  return { head, items, schemaUrl, unknown }
}

const decodeScopeMetrics = (r: ProtoReader, end: number): ScopeMetrics => {
  const g = decodeGroup(r, end, decodeScope, decodeMetric)
  const out: Mutable<ScopeMetrics> = { metrics: g.items, schemaUrl: g.schemaUrl }
  if (g.head !== undefined) out.scope = g.head
  if (g.unknown !== undefined) out.unknownFields = g.unknown
  return out
}

const decodeResourceMetrics = (r: ProtoReader, end: number): ResourceMetrics => {
  const g = decodeGroup(r, end, decodeResource, decodeScopeMetrics)
  const out: Mutable<ResourceMetrics> = { scopeMetrics: g.items, schemaUrl: g.schemaUrl }
  if (g.head !== undefined) out.resource = g.head
  if (g.unknown !== undefined) out.unknownFields = g.unknown
  return out
}

const decodeRequest = (r: ProtoReader): ExportMetricsServiceRequest => {
  const end = r.end
  const resourceMetrics: ResourceMetrics[] = []
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    if (t === T1_LEN) {
      r.element()
      resourceMetrics.push(decodeResourceMetrics(r, r.len(end)))
    } else unknown = r.keep(t, end, unknown)
  }
  return unknown === undefined ? { resourceMetrics } : { resourceMetrics, unknownFields: unknown }
}

const decodeResponse = (r: ProtoReader): ExportMetricsServiceResponse => {
  const end = r.end
  let partialSuccess: ExportMetricsPartialSuccess | undefined
  let unknown: Uint8Array | undefined
  for (let t = r.next(end); t !== 0; t = r.next(end)) {
    if (t === T1_LEN) {
      const e = r.len(end)
      let rejectedDataPoints = 0n
      let errorMessage = ""
      let inner: Uint8Array | undefined
      for (let t = r.next(e); t !== 0; t = r.next(e)) {
        if (t === T1_VAR) rejectedDataPoints = r.int64()
        else if (t === T2_LEN) errorMessage = r.string(e)
        else inner = r.keep(t, e, inner)
      }
      r.done(e)
      partialSuccess =
        inner === undefined
          ? { rejectedDataPoints, errorMessage }
          : { rejectedDataPoints, errorMessage, unknownFields: inner }
    } else unknown = r.keep(t, end, unknown)
  }
  const out: Mutable<ExportMetricsServiceResponse> = {}
  if (partialSuccess !== undefined) out.partialSuccess = partialSuccess
  if (unknown !== undefined) out.unknownFields = unknown
  return out
}

const decodeWith = <A>(
  bytes: Uint8Array,
  decode: (r: ProtoReader) => A,
  bounds: RequestBounds = UNBOUNDED,
): Either.Either<A, OtlpDecodeError> => {
  try {
    return Either.right(decode(new ProtoReader(bytes, bounds)))
  } catch (e) {
    if (e instanceof BoundExceeded)
      return Either.left(new OtlpDecodeError({ kind: "too_many", reason: e.message }))
    const reason =
      e instanceof WireError
        ? e.message
        : e instanceof RangeError
          ? "message nested too deeply"
          : `unexpected: ${e instanceof Error ? e.message : String(e)}`
    return Either.left(new OtlpDecodeError({ kind: "bad_protobuf", reason }))
  }
}

/**
 * Decodes a binary protobuf `ExportMetricsServiceRequest`. Total: any input gives a request or an
 * `OtlpDecodeError` of kind `bad_protobuf`, or `too_many` as soon as the request holds more
 * datapoints or elements than `bounds` allow; it never throws. An empty body is an empty request.
 */
export const decodeOtlpProtobuf = (
  bytes: Uint8Array,
  bounds: RequestBounds = UNBOUNDED,
): Either.Either<ExportMetricsServiceRequest, OtlpDecodeError> => decodeWith(bytes, decodeRequest, bounds)

/** Decodes a binary protobuf `ExportMetricsServiceResponse` (what an OTLP server answers). */
export const decodeOtlpResponseProtobuf = (
  bytes: Uint8Array,
): Either.Either<ExportMetricsServiceResponse, OtlpDecodeError> => decodeWith(bytes, decodeResponse)

// ============================================================================================
// Encoding
// ============================================================================================

/** A `double` with implicit presence is written unless it is +0 (a -0 is written, as protobuf-go does). */
const isDefaultDouble = (v: number): boolean => v === 0 && 1 / v > 0

const encodeAnyValueBody = (w: ProtoWriter, v: AnyValue): void => {
  switch (v.type) {
    case "string":
      w.uint32(T1_LEN)
      w.string(v.value)
      break
    case "bool":
      w.uint32(T2_VAR)
      w.bool(v.value)
      break
    case "int":
      w.uint32(T3_VAR)
      w.int64(v.value)
      break
    case "double":
      w.uint32(T4_I64)
      w.double(v.value)
      break
    case "array": {
      const m = w.beginLen(5)
      for (const item of v.values) {
        const m2 = w.beginLen(1)
        encodeAnyValueBody(w, item)
        w.endLen(m2)
      }
      w.endLen(m)
      break
    }
    case "kvlist": {
      const m = w.beginLen(6)
      for (const kv of v.values) encodeKeyValue(w, 1, kv)
      w.endLen(m)
      break
    }
    case "bytes":
      w.uint32(T7_LEN)
      w.bytes(v.value)
      break
    case "empty":
      break
  }
  if (v.unknownFields !== undefined) w.raw(v.unknownFields)
}

const encodeKeyValue = (w: ProtoWriter, field: number, kv: KeyValue): void => {
  const m = w.beginLen(field)
  if (kv.key !== "") {
    w.uint32(T1_LEN)
    w.string(kv.key)
  }
  const v = kv.value
  if (v.type !== "empty" || v.unknownFields !== undefined) {
    const m2 = w.beginLen(2)
    encodeAnyValueBody(w, v)
    w.endLen(m2)
  }
  if (kv.unknownFields !== undefined) w.raw(kv.unknownFields)
  w.endLen(m)
}

const encodeAttributes = (w: ProtoWriter, field: number, attrs: ReadonlyArray<KeyValue>): void => {
  for (const x of attrs) encodeKeyValue(w, field, x)
}

const writeFixed64Field = (w: ProtoWriter, t: number, v: bigint): void => {
  if (v !== 0n) {
    w.uint32(t)
    w.fixed64(v)
  }
}

const writeUint32Field = (w: ProtoWriter, t: number, v: number): void => {
  if (v !== 0) {
    w.uint32(t)
    w.uint32(v)
  }
}

const writeDoubleField = (w: ProtoWriter, t: number, v: number): void => {
  if (!isDefaultDouble(v)) {
    w.uint32(t)
    w.double(v)
  }
}

const writeOptionalDouble = (w: ProtoWriter, t: number, v: number | undefined): void => {
  if (v !== undefined) {
    w.uint32(t)
    w.double(v)
  }
}

const writeStringField = (w: ProtoWriter, t: number, v: string): void => {
  if (v !== "") {
    w.uint32(t)
    w.string(v)
  }
}

const writeUnknown = (w: ProtoWriter, u: Uint8Array | undefined): void => {
  if (u !== undefined) w.raw(u)
}

const encodeResource = (w: ProtoWriter, res: Resource): void => {
  const m = w.beginLen(1)
  encodeAttributes(w, 1, res.attributes)
  writeUint32Field(w, T2_VAR, res.droppedAttributesCount)
  writeUnknown(w, res.unknownFields)
  w.endLen(m)
}

const encodeScope = (w: ProtoWriter, s: InstrumentationScope): void => {
  const m = w.beginLen(1)
  writeStringField(w, T1_LEN, s.name)
  writeStringField(w, T2_LEN, s.version)
  encodeAttributes(w, 3, s.attributes)
  writeUint32Field(w, T4_VAR, s.droppedAttributesCount)
  writeUnknown(w, s.unknownFields)
  w.endLen(m)
}

const encodeExemplar = (w: ProtoWriter, field: number, e: Exemplar): void => {
  const m = w.beginLen(field)
  writeFixed64Field(w, T2_I64, e.timeUnixNano)
  if (e.value?.type === "double") {
    w.uint32(T3_I64)
    w.double(e.value.value)
  }
  if (e.spanId.length > 0) {
    w.uint32(T4_LEN)
    w.bytes(e.spanId)
  }
  if (e.traceId.length > 0) {
    w.uint32(T5_LEN)
    w.bytes(e.traceId)
  }
  if (e.value?.type === "int") {
    w.uint32(T6_I64)
    w.sfixed64(e.value.value)
  }
  encodeAttributes(w, 7, e.filteredAttributes)
  writeUnknown(w, e.unknownFields)
  w.endLen(m)
}

const encodeExemplars = (w: ProtoWriter, field: number, es: ReadonlyArray<Exemplar>): void => {
  for (const x of es) encodeExemplar(w, field, x)
}

const encodeNumberDataPoint = (w: ProtoWriter, p: NumberDataPoint): void => {
  const m = w.beginLen(1)
  writeFixed64Field(w, T2_I64, p.startTimeUnixNano)
  writeFixed64Field(w, T3_I64, p.timeUnixNano)
  const v = p.value
  if (v?.type === "double") {
    w.uint32(T4_I64)
    w.double(v.value)
  }
  encodeExemplars(w, 5, p.exemplars)
  if (v?.type === "int") {
    w.uint32(T6_I64)
    w.sfixed64(v.value)
  }
  encodeAttributes(w, 7, p.attributes)
  writeUint32Field(w, T8_VAR, p.flags)
  writeUnknown(w, p.unknownFields)
  w.endLen(m)
}

const encodeHistogramDataPoint = (w: ProtoWriter, p: HistogramDataPoint): void => {
  const m = w.beginLen(1)
  writeFixed64Field(w, T2_I64, p.startTimeUnixNano)
  writeFixed64Field(w, T3_I64, p.timeUnixNano)
  writeFixed64Field(w, T4_I64, p.count)
  writeOptionalDouble(w, T5_I64, p.sum)
  const bc = p.bucketCounts
  if (bc.length > 0) {
    w.uint32(T6_LEN)
    w.uint32(bc.length * 8)
    for (const c of bc) w.fixed64(c)
  }
  const eb = p.explicitBounds
  if (eb.length > 0) {
    w.uint32(T7_LEN)
    w.uint32(eb.length * 8)
    for (const b of eb) w.double(b)
  }
  encodeExemplars(w, 8, p.exemplars)
  encodeAttributes(w, 9, p.attributes)
  writeUint32Field(w, T10_VAR, p.flags)
  writeOptionalDouble(w, T11_I64, p.min)
  writeOptionalDouble(w, T12_I64, p.max)
  writeUnknown(w, p.unknownFields)
  w.endLen(m)
}

const encodeBuckets = (w: ProtoWriter, field: number, b: Buckets): void => {
  const m = w.beginLen(field)
  if (b.offset !== 0) {
    w.uint32(T1_VAR)
    w.sint32(b.offset)
  }
  if (b.bucketCounts.length > 0) {
    const m2 = w.beginLen(2)
    for (const c of b.bucketCounts) w.uint64(c)
    w.endLen(m2)
  }
  writeUnknown(w, b.unknownFields)
  w.endLen(m)
}

const encodeExponentialHistogramDataPoint = (w: ProtoWriter, p: ExponentialHistogramDataPoint): void => {
  const m = w.beginLen(1)
  encodeAttributes(w, 1, p.attributes)
  writeFixed64Field(w, T2_I64, p.startTimeUnixNano)
  writeFixed64Field(w, T3_I64, p.timeUnixNano)
  writeFixed64Field(w, T4_I64, p.count)
  writeOptionalDouble(w, T5_I64, p.sum)
  if (p.scale !== 0) {
    w.uint32(T6_VAR)
    w.sint32(p.scale)
  }
  writeFixed64Field(w, T7_I64, p.zeroCount)
  if (p.positive !== undefined) encodeBuckets(w, 8, p.positive)
  if (p.negative !== undefined) encodeBuckets(w, 9, p.negative)
  writeUint32Field(w, T10_VAR, p.flags)
  encodeExemplars(w, 11, p.exemplars)
  writeOptionalDouble(w, T12_I64, p.min)
  writeOptionalDouble(w, T13_I64, p.max)
  writeDoubleField(w, T14_I64, p.zeroThreshold)
  writeUnknown(w, p.unknownFields)
  w.endLen(m)
}

const encodeSummaryDataPoint = (w: ProtoWriter, p: SummaryDataPoint): void => {
  const m = w.beginLen(1)
  writeFixed64Field(w, T2_I64, p.startTimeUnixNano)
  writeFixed64Field(w, T3_I64, p.timeUnixNano)
  writeFixed64Field(w, T4_I64, p.count)
  writeDoubleField(w, T5_I64, p.sum)
  for (const q of p.quantileValues) {
    const m2 = w.beginLen(6)
    writeDoubleField(w, T1_I64, q.quantile)
    writeDoubleField(w, T2_I64, q.value)
    writeUnknown(w, q.unknownFields)
    w.endLen(m2)
  }
  encodeAttributes(w, 7, p.attributes)
  writeUint32Field(w, T8_VAR, p.flags)
  writeUnknown(w, p.unknownFields)
  w.endLen(m)
}

const DATA_FIELD: Record<MetricData["type"], number> = {
  gauge: 5,
  sum: 7,
  histogram: 9,
  exponentialHistogram: 10,
  summary: 11,
}

const encodeMetricData = (w: ProtoWriter, d: MetricData): void => {
  const m = w.beginLen(DATA_FIELD[d.type])
  switch (d.type) {
    case "gauge":
      for (const x of d.dataPoints) encodeNumberDataPoint(w, x)
      break
    case "sum":
      for (const x of d.dataPoints) encodeNumberDataPoint(w, x)
      if (d.aggregationTemporality !== 0) {
        w.uint32(T2_VAR)
        w.int32(d.aggregationTemporality)
      }
      if (d.isMonotonic) {
        w.uint32(T3_VAR)
        w.bool(true)
      }
      break
    case "histogram":
      for (const x of d.dataPoints) encodeHistogramDataPoint(w, x)
      if (d.aggregationTemporality !== 0) {
        w.uint32(T2_VAR)
        w.int32(d.aggregationTemporality)
      }
      break
    case "exponentialHistogram":
      for (const x of d.dataPoints) encodeExponentialHistogramDataPoint(w, x)
      if (d.aggregationTemporality !== 0) {
        w.uint32(T2_VAR)
        w.int32(d.aggregationTemporality)
      }
      break
    case "summary":
      for (const x of d.dataPoints) encodeSummaryDataPoint(w, x)
      break
  }
  writeUnknown(w, d.unknownFields)
  w.endLen(m)
}

const encodeMetric = (w: ProtoWriter, metric: Metric): void => {
  const m = w.beginLen(2)
  writeStringField(w, T1_LEN, metric.name)
  writeStringField(w, T2_LEN, metric.description)
  writeStringField(w, T3_LEN, metric.unit)
  if (metric.data !== undefined) encodeMetricData(w, metric.data)
  encodeAttributes(w, 12, metric.metadata)
  writeUnknown(w, metric.unknownFields)
  w.endLen(m)
}

const encodeScopeMetrics = (w: ProtoWriter, sm: ScopeMetrics): void => {
  const m = w.beginLen(2)
  if (sm.scope !== undefined) encodeScope(w, sm.scope)
  for (const x of sm.metrics) encodeMetric(w, x)
  writeStringField(w, T3_LEN, sm.schemaUrl)
  writeUnknown(w, sm.unknownFields)
  w.endLen(m)
}

const encodeResourceMetrics = (w: ProtoWriter, rm: ResourceMetrics): void => {
  const m = w.beginLen(1)
  if (rm.resource !== undefined) encodeResource(w, rm.resource)
  for (const x of rm.scopeMetrics) encodeScopeMetrics(w, x)
  writeStringField(w, T3_LEN, rm.schemaUrl)
  writeUnknown(w, rm.unknownFields)
  w.endLen(m)
}

/**
 * Encodes an `ExportMetricsServiceRequest` as binary protobuf. Requests concatenate: the bytes of
 * two encoded requests, joined, decode as one request holding both `resourceMetrics` lists.
 */
export const encodeOtlpProtobuf = (req: ExportMetricsServiceRequest): Uint8Array => {
  const w = new ProtoWriter()
  for (const x of req.resourceMetrics) encodeResourceMetrics(w, x)
  writeUnknown(w, req.unknownFields)
  return w.finish()
}

/** Encodes an `ExportMetricsServiceResponse` as binary protobuf (empty for full success). */
export const encodeOtlpResponseProtobuf = (res: ExportMetricsServiceResponse): Uint8Array => {
  const w = new ProtoWriter(64)
  const ps = res.partialSuccess
  if (ps !== undefined) {
    const m = w.beginLen(1)
    if (ps.rejectedDataPoints !== 0n) {
      w.uint32(T1_VAR)
      w.int64(ps.rejectedDataPoints)
    }
    writeStringField(w, T2_LEN, ps.errorMessage)
    writeUnknown(w, ps.unknownFields)
    w.endLen(m)
  }
  writeUnknown(w, res.unknownFields)
  return w.finish()
}
