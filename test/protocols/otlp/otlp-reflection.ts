/**
 * The OTLP metrics schema as protobufjs reflection, built in code from the field numbers of
 * opentelemetry-proto (no .proto file). An independent wire implementation to cross-check the
 * hand-written codec against, and the baseline of `bench/otlp-codec.ts`.
 */
import protobuf from "protobufjs"

type FieldSpec = readonly [name: string, id: number, type: string, rule?: "repeated" | "optional"]

const message = (name: string, fields: ReadonlyArray<FieldSpec>, oneofs: Record<string, string[]> = {}) => {
  const t = new protobuf.Type(name)
  for (const [n, id, type, rule] of fields)
    t.add(new protobuf.Field(n, id, type, rule === "repeated" ? rule : undefined))
  for (const [n, members] of Object.entries(oneofs)) t.add(new protobuf.OneOf(n, members))
  for (const [n, , , rule] of fields) {
    if (rule === "optional") t.add(new protobuf.OneOf(`_${n}`, [n])) // proto3 `optional`
  }
  return t
}

const root = new protobuf.Root()
root.add(
  message(
    "AnyValue",
    [
      ["stringValue", 1, "string"],
      ["boolValue", 2, "bool"],
      ["intValue", 3, "int64"],
      ["doubleValue", 4, "double"],
      ["arrayValue", 5, "ArrayValue"],
      ["kvlistValue", 6, "KeyValueList"],
      ["bytesValue", 7, "bytes"],
    ],
    {
      value: [
        "stringValue",
        "boolValue",
        "intValue",
        "doubleValue",
        "arrayValue",
        "kvlistValue",
        "bytesValue",
      ],
    },
  ),
)
root.add(message("ArrayValue", [["values", 1, "AnyValue", "repeated"]]))
root.add(message("KeyValueList", [["values", 1, "KeyValue", "repeated"]]))
root.add(
  message("KeyValue", [
    ["key", 1, "string"],
    ["value", 2, "AnyValue"],
  ]),
)
root.add(
  message("InstrumentationScope", [
    ["name", 1, "string"],
    ["version", 2, "string"],
    ["attributes", 3, "KeyValue", "repeated"],
    ["droppedAttributesCount", 4, "uint32"],
  ]),
)
root.add(
  message("Resource", [
    ["attributes", 1, "KeyValue", "repeated"],
    ["droppedAttributesCount", 2, "uint32"],
  ]),
)
root.add(
  message(
    "Exemplar",
    [
      ["filteredAttributes", 7, "KeyValue", "repeated"],
      ["timeUnixNano", 2, "fixed64"],
      ["asDouble", 3, "double"],
      ["asInt", 6, "sfixed64"],
      ["spanId", 4, "bytes"],
      ["traceId", 5, "bytes"],
    ],
    { value: ["asDouble", "asInt"] },
  ),
)
root.add(
  message(
    "NumberDataPoint",
    [
      ["attributes", 7, "KeyValue", "repeated"],
      ["startTimeUnixNano", 2, "fixed64"],
      ["timeUnixNano", 3, "fixed64"],
      ["asDouble", 4, "double"],
      ["asInt", 6, "sfixed64"],
      ["exemplars", 5, "Exemplar", "repeated"],
      ["flags", 8, "uint32"],
    ],
    { value: ["asDouble", "asInt"] },
  ),
)
root.add(
  message("HistogramDataPoint", [
    ["attributes", 9, "KeyValue", "repeated"],
    ["startTimeUnixNano", 2, "fixed64"],
    ["timeUnixNano", 3, "fixed64"],
    ["count", 4, "fixed64"],
    ["sum", 5, "double", "optional"],
    ["bucketCounts", 6, "fixed64", "repeated"],
    ["explicitBounds", 7, "double", "repeated"],
    ["exemplars", 8, "Exemplar", "repeated"],
    ["flags", 10, "uint32"],
    ["min", 11, "double", "optional"],
    ["max", 12, "double", "optional"],
  ]),
)
root.add(
  message("Buckets", [
    ["offset", 1, "sint32"],
    ["bucketCounts", 2, "uint64", "repeated"],
  ]),
)
root.add(
  message("ExponentialHistogramDataPoint", [
    ["attributes", 1, "KeyValue", "repeated"],
    ["startTimeUnixNano", 2, "fixed64"],
    ["timeUnixNano", 3, "fixed64"],
    ["count", 4, "fixed64"],
    ["sum", 5, "double", "optional"],
    ["scale", 6, "sint32"],
    ["zeroCount", 7, "fixed64"],
    ["positive", 8, "Buckets"],
    ["negative", 9, "Buckets"],
    ["flags", 10, "uint32"],
    ["exemplars", 11, "Exemplar", "repeated"],
    ["min", 12, "double", "optional"],
    ["max", 13, "double", "optional"],
    ["zeroThreshold", 14, "double"],
  ]),
)
root.add(
  message("ValueAtQuantile", [
    ["quantile", 1, "double"],
    ["value", 2, "double"],
  ]),
)
root.add(
  message("SummaryDataPoint", [
    ["attributes", 7, "KeyValue", "repeated"],
    ["startTimeUnixNano", 2, "fixed64"],
    ["timeUnixNano", 3, "fixed64"],
    ["count", 4, "fixed64"],
    ["sum", 5, "double"],
    ["quantileValues", 6, "ValueAtQuantile", "repeated"],
    ["flags", 8, "uint32"],
  ]),
)
root.add(message("Gauge", [["dataPoints", 1, "NumberDataPoint", "repeated"]]))
root.add(
  message("Sum", [
    ["dataPoints", 1, "NumberDataPoint", "repeated"],
    ["aggregationTemporality", 2, "int32"],
    ["isMonotonic", 3, "bool"],
  ]),
)
root.add(
  message("Histogram", [
    ["dataPoints", 1, "HistogramDataPoint", "repeated"],
    ["aggregationTemporality", 2, "int32"],
  ]),
)
root.add(
  message("ExponentialHistogram", [
    ["dataPoints", 1, "ExponentialHistogramDataPoint", "repeated"],
    ["aggregationTemporality", 2, "int32"],
  ]),
)
root.add(message("Summary", [["dataPoints", 1, "SummaryDataPoint", "repeated"]]))
root.add(
  message(
    "Metric",
    [
      ["name", 1, "string"],
      ["description", 2, "string"],
      ["unit", 3, "string"],
      ["gauge", 5, "Gauge"],
      ["sum", 7, "Sum"],
      ["histogram", 9, "Histogram"],
      ["exponentialHistogram", 10, "ExponentialHistogram"],
      ["summary", 11, "Summary"],
      ["metadata", 12, "KeyValue", "repeated"],
    ],
    { data: ["gauge", "sum", "histogram", "exponentialHistogram", "summary"] },
  ),
)
root.add(
  message("ScopeMetrics", [
    ["scope", 1, "InstrumentationScope"],
    ["metrics", 2, "Metric", "repeated"],
    ["schemaUrl", 3, "string"],
  ]),
)
root.add(
  message("ResourceMetrics", [
    ["resource", 1, "Resource"],
    ["scopeMetrics", 2, "ScopeMetrics", "repeated"],
    ["schemaUrl", 3, "string"],
  ]),
)
root.add(message("ExportMetricsServiceRequest", [["resourceMetrics", 1, "ResourceMetrics", "repeated"]]))
root.resolveAll()

export const ExportMetricsServiceRequestType = root.lookupType("ExportMetricsServiceRequest")
