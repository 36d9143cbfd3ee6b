import protobuf from "protobufjs"

/**
 * prometheus/prompb (`remote.proto`, `types.proto`) rebuilt with protobufjs reflection, as an
 * independent codec to check ours against. `Histogram` is a subset of the real message (enough
 * fields to carry varints, doubles, zigzag and int64 through the raw-bytes path).
 */
const { Field, Root, Type } = protobuf

const label = new Type("Label").add(new Field("name", 1, "string")).add(new Field("value", 2, "string"))

const sample = new Type("Sample").add(new Field("value", 1, "double")).add(new Field("timestamp", 2, "int64"))

const exemplar = new Type("Exemplar")
  .add(new Field("labels", 1, "Label", "repeated"))
  .add(new Field("value", 2, "double"))
  .add(new Field("timestamp", 3, "int64"))

const histogram = new Type("Histogram")
  .add(new Field("countInt", 1, "uint64"))
  .add(new Field("sum", 3, "double"))
  .add(new Field("schema", 4, "sint32"))
  .add(new Field("zeroThreshold", 5, "double"))
  .add(new Field("timestamp", 15, "int64"))

const timeSeries = new Type("TimeSeries")
  .add(new Field("labels", 1, "Label", "repeated"))
  .add(new Field("samples", 2, "Sample", "repeated"))
  .add(new Field("exemplars", 3, "Exemplar", "repeated"))
  .add(new Field("histograms", 4, "Histogram", "repeated"))

const metricMetadata = new Type("MetricMetadata")
  .add(new Field("type", 1, "int32"))
  .add(new Field("metricFamilyName", 2, "string"))
  .add(new Field("help", 4, "string"))
  .add(new Field("unit", 5, "string"))

const writeRequest = new Type("WriteRequest")
  .add(new Field("timeseries", 1, "TimeSeries", "repeated"))
  .add(new Field("metadata", 3, "MetricMetadata", "repeated"))

const root = new Root().define("prometheus")
for (const type of [label, sample, exemplar, histogram, timeSeries, metricMetadata, writeRequest])
  root.add(type)

export const Prompb = {
  Label: label,
  Sample: sample,
  Exemplar: exemplar,
  Histogram: histogram,
  TimeSeries: timeSeries,
  MetricMetadata: metricMetadata,
  WriteRequest: writeRequest,
} as const

/** Plain objects with int64 as numbers, every field present (defaults included). */
export const toPlain = (type: protobuf.Type, message: protobuf.Message): Record<string, unknown> =>
  type.toObject(message, { longs: Number, defaults: true, arrays: true })
