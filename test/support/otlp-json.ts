/**
 * OTLP/JSON encoding of requests, the test suite's way to send OTLP/JSON bodies (the governor
 * decodes OTLP/JSON requests but only ever encodes responses): the proto3 JSON mapping, with
 * 64-bit integers as decimal strings and non-finite doubles as strings, so a request survives the
 * trip exactly.
 *
 * @module
 */
import type * as Otlp from "../../src/protocols/otlp/types.js"

type Json = string | number | boolean | null | Json[] | { [key: string]: Json }
type JsonObject = { [key: string]: Json }

const put = (
  o: JsonObject,
  key: string,
  v: string | number | bigint | boolean | ReadonlyArray<unknown>,
): void => {
  if (typeof v === "bigint") {
    if (v !== 0n) o[key] = String(v)
  } else if (typeof v === "number") {
    if (v !== 0) o[key] = v
  } else if (typeof v === "string" || typeof v === "boolean") {
    if (v) o[key] = v
  } else if (v.length > 0) {
    o[key] = v as Json[]
  }
}

/** A double as proto3 JSON: non-finite values and -0 as strings, to survive the trip exactly. */
const jsonDouble = (v: number): Json => {
  if (Number.isFinite(v)) return v === 0 && 1 / v < 0 ? "-0" : v
  return Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity"
}

const isDefaultDouble = (v: number): boolean => v === 0 && 1 / v > 0

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex")

const base64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64")

const anyValueJson = (v: Otlp.AnyValue): JsonObject => {
  switch (v.type) {
    case "string":
      return { stringValue: v.value }
    case "bool":
      return { boolValue: v.value }
    case "int":
      return { intValue: String(v.value) }
    case "double":
      return { doubleValue: jsonDouble(v.value) }
    case "array":
      return { arrayValue: { values: v.values.map(anyValueJson) } }
    case "kvlist":
      return { kvlistValue: { values: v.values.map(keyValueJson) } }
    case "bytes":
      return { bytesValue: base64(v.value) }
    case "empty":
      return {}
  }
}

const keyValueJson = (kv: Otlp.KeyValue): JsonObject => ({ key: kv.key, value: anyValueJson(kv.value) })

/** Sets `key` unless `v` is the proto3 default (empty string, 0, 0n, false, empty list). */

const putAttributes = (o: JsonObject, key: string, attrs: ReadonlyArray<Otlp.KeyValue>): void => {
  if (attrs.length > 0) o[key] = attrs.map(keyValueJson)
}

const putDouble = (o: JsonObject, key: string, v: number): void => {
  if (!isDefaultDouble(v)) o[key] = jsonDouble(v)
}

const putOptionalDouble = (o: JsonObject, key: string, v: number | undefined): void => {
  if (v !== undefined) o[key] = jsonDouble(v)
}

const putNumberValue = (o: JsonObject, v: Otlp.NumberValue | undefined): void => {
  if (v?.type === "double") o.asDouble = jsonDouble(v.value)
  else if (v?.type === "int") o.asInt = String(v.value)
}

const exemplarJson = (e: Otlp.Exemplar): JsonObject => {
  const o: JsonObject = {}
  putAttributes(o, "filteredAttributes", e.filteredAttributes)
  put(o, "timeUnixNano", e.timeUnixNano)
  putNumberValue(o, e.value)
  if (e.spanId.length > 0) o.spanId = hex(e.spanId)
  if (e.traceId.length > 0) o.traceId = hex(e.traceId)
  return o
}

const pointCommon = (
  o: JsonObject,
  p: {
    readonly attributes: ReadonlyArray<Otlp.KeyValue>
    readonly startTimeUnixNano: bigint
    readonly timeUnixNano: bigint
  },
): JsonObject => {
  putAttributes(o, "attributes", p.attributes)
  put(o, "startTimeUnixNano", p.startTimeUnixNano)
  put(o, "timeUnixNano", p.timeUnixNano)
  return o
}

const numberDataPointJson = (p: Otlp.NumberDataPoint): JsonObject => {
  const o = pointCommon({}, p)
  putNumberValue(o, p.value)
  if (p.exemplars.length > 0) o.exemplars = p.exemplars.map(exemplarJson)
  put(o, "flags", p.flags)
  return o
}

const histogramDataPointJson = (p: Otlp.HistogramDataPoint): JsonObject => {
  const o = pointCommon({}, p)
  put(o, "count", p.count)
  putOptionalDouble(o, "sum", p.sum)
  if (p.bucketCounts.length > 0) o.bucketCounts = p.bucketCounts.map(String)
  if (p.explicitBounds.length > 0) o.explicitBounds = p.explicitBounds.map(jsonDouble)
  if (p.exemplars.length > 0) o.exemplars = p.exemplars.map(exemplarJson)
  put(o, "flags", p.flags)
  putOptionalDouble(o, "min", p.min)
  putOptionalDouble(o, "max", p.max)
  return o
}

const bucketsJson = (b: Otlp.Buckets): JsonObject => {
  const o: JsonObject = {}
  put(o, "offset", b.offset)
  if (b.bucketCounts.length > 0) o.bucketCounts = b.bucketCounts.map(String)
  return o
}

const exponentialHistogramDataPointJson = (p: Otlp.ExponentialHistogramDataPoint): JsonObject => {
  const o = pointCommon({}, p)
  put(o, "count", p.count)
  putOptionalDouble(o, "sum", p.sum)
  put(o, "scale", p.scale)
  put(o, "zeroCount", p.zeroCount)
  if (p.positive !== undefined) o.positive = bucketsJson(p.positive)
  if (p.negative !== undefined) o.negative = bucketsJson(p.negative)
  put(o, "flags", p.flags)
  if (p.exemplars.length > 0) o.exemplars = p.exemplars.map(exemplarJson)
  putOptionalDouble(o, "min", p.min)
  putOptionalDouble(o, "max", p.max)
  putDouble(o, "zeroThreshold", p.zeroThreshold)
  return o
}

const summaryDataPointJson = (p: Otlp.SummaryDataPoint): JsonObject => {
  const o = pointCommon({}, p)
  put(o, "count", p.count)
  putDouble(o, "sum", p.sum)
  if (p.quantileValues.length > 0) {
    o.quantileValues = p.quantileValues.map((q) => {
      const qo: JsonObject = {}
      putDouble(qo, "quantile", q.quantile)
      putDouble(qo, "value", q.value)
      return qo
    })
  }
  put(o, "flags", p.flags)
  return o
}

const metricDataJson = (d: Otlp.MetricData): JsonObject => {
  const o: JsonObject = {}
  switch (d.type) {
    case "gauge":
      put(o, "dataPoints", d.dataPoints.map(numberDataPointJson))
      break
    case "sum":
      put(o, "dataPoints", d.dataPoints.map(numberDataPointJson))
      put(o, "aggregationTemporality", d.aggregationTemporality)
      put(o, "isMonotonic", d.isMonotonic)
      break
    case "histogram":
      put(o, "dataPoints", d.dataPoints.map(histogramDataPointJson))
      put(o, "aggregationTemporality", d.aggregationTemporality)
      break
    case "exponentialHistogram":
      put(o, "dataPoints", d.dataPoints.map(exponentialHistogramDataPointJson))
      put(o, "aggregationTemporality", d.aggregationTemporality)
      break
    case "summary":
      put(o, "dataPoints", d.dataPoints.map(summaryDataPointJson))
      break
  }
  return o
}

const metricJson = (m: Otlp.Metric): JsonObject => {
  const o: JsonObject = {}
  put(o, "name", m.name)
  put(o, "description", m.description)
  put(o, "unit", m.unit)
  if (m.data !== undefined) o[m.data.type] = metricDataJson(m.data)
  putAttributes(o, "metadata", m.metadata)
  return o
}

const scopeJson = (s: Otlp.InstrumentationScope): JsonObject => {
  const o: JsonObject = {}
  put(o, "name", s.name)
  put(o, "version", s.version)
  putAttributes(o, "attributes", s.attributes)
  put(o, "droppedAttributesCount", s.droppedAttributesCount)
  return o
}

const resourceJson = (r: Otlp.Resource): JsonObject => {
  const o: JsonObject = {}
  putAttributes(o, "attributes", r.attributes)
  put(o, "droppedAttributesCount", r.droppedAttributesCount)
  return o
}

const scopeMetricsJson = (sm: Otlp.ScopeMetrics): JsonObject => {
  const o: JsonObject = {}
  if (sm.scope !== undefined) o.scope = scopeJson(sm.scope)
  put(o, "metrics", sm.metrics.map(metricJson))
  put(o, "schemaUrl", sm.schemaUrl)
  return o
}

const resourceMetricsJson = (rm: Otlp.ResourceMetrics): JsonObject => {
  const o: JsonObject = {}
  if (rm.resource !== undefined) o.resource = resourceJson(rm.resource)
  put(o, "scopeMetrics", rm.scopeMetrics.map(scopeMetricsJson))
  put(o, "schemaUrl", rm.schemaUrl)
  return o
}

/** Encodes an `Otlp.ExportMetricsServiceRequest` as OTLP/JSON. */
export const encodeOtlpJson = (req: Otlp.ExportMetricsServiceRequest): string =>
  JSON.stringify({ resourceMetrics: req.resourceMetrics.map(resourceMetricsJson) })
