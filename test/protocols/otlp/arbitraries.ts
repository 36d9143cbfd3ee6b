/** fast-check arbitraries for OTLP metrics requests, shaped exactly as the decoders produce them. */
import fc from "fast-check"
import type {
  AnyValue,
  Buckets,
  Exemplar,
  ExponentialHistogramDataPoint,
  ExportMetricsServiceRequest,
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
} from "../../../src/protocols/otlp/types.js"
import { ProtoWriter } from "../../../src/wire/protobuf.js"

export const U64_MAX = 2n ** 64n - 1n
export const I64_MIN = -(2n ** 63n)
export const I64_MAX = 2n ** 63n - 1n
/** A timestamp that a double cannot hold exactly. */
export const NANOS = 1700000000123456789n

export const u64 = fc.oneof(
  fc.constantFrom(0n, 1n, NANOS, 2n ** 53n + 1n, U64_MAX),
  fc.bigInt({ min: 0n, max: U64_MAX }),
)
export const i64 = fc.oneof(
  fc.constantFrom(0n, -1n, I64_MIN, I64_MAX, -(2n ** 53n) - 1n),
  fc.bigInt({ min: I64_MIN, max: I64_MAX }),
)
export const u32 = fc.oneof(fc.constantFrom(0, 1, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }))
export const i32 = fc.oneof(
  fc.constantFrom(0, -1, -(2 ** 31), 2 ** 31 - 1),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
)
/** Includes NaN, ±Infinity, -0 and subnormals. */
export const dbl = fc.oneof(
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0),
  fc.double(),
)
export const str = fc.oneof(fc.string({ maxLength: 8 }), fc.string({ unit: "binary", maxLength: 60 }))
export const bytes = fc.uint8Array({ maxLength: 20 })

/** Well-formed unknown fields (numbers 50..99, never used by OTLP messages), or none. */
const unknownBytes = fc
  .array(fc.tuple(fc.integer({ min: 50, max: 99 }), fc.constantFrom(0, 1, 2, 5), u64, bytes), {
    minLength: 1,
    maxLength: 2,
  })
  .map((fields) => {
    const w = new ProtoWriter(64)
    for (const [field, wireType, n, b] of fields) {
      w.tag(field, wireType)
      if (wireType === 0) w.uint64(n)
      else if (wireType === 1) w.fixed64(n)
      else if (wireType === 2) w.bytes(b)
      else w.raw(new Uint8Array([1, 2, 3, 4]))
    }
    return Uint8Array.from(w.finish())
  })

export interface Options {
  /** Generate `unknownFields` (protobuf only: JSON cannot carry them). */
  readonly unknown: boolean
}

export const makeArbitraries = ({ unknown }: Options) => {
  /** Adds `unknownFields` to some values. */
  const withUnknown = <T extends object>(arb: fc.Arbitrary<T>): fc.Arbitrary<T> =>
    unknown
      ? fc
          .tuple(arb, fc.option(unknownBytes, { freq: 4, nil: undefined }))
          .map(([v, u]) => (u === undefined ? v : { ...v, unknownFields: u }))
      : arb

  const { anyValue, keyValue } = fc.letrec<{ anyValue: AnyValue; keyValue: KeyValue }>((tie) => ({
    anyValue: withUnknown(
      fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        str.map((value): AnyValue => ({ type: "string", value })),
        fc.boolean().map((value): AnyValue => ({ type: "bool", value })),
        i64.map((value): AnyValue => ({ type: "int", value })),
        dbl.map((value): AnyValue => ({ type: "double", value })),
        bytes.map((value): AnyValue => ({ type: "bytes", value })),
        fc.constant<AnyValue>({ type: "empty" }),
        fc.array(tie("anyValue"), { maxLength: 3 }).map((values): AnyValue => ({ type: "array", values })),
        fc.array(tie("keyValue"), { maxLength: 3 }).map((values): AnyValue => ({ type: "kvlist", values })),
      ),
    ),
    keyValue: withUnknown(fc.record({ key: str, value: tie("anyValue") })),
  }))

  const attributes = fc.array(keyValue, { maxLength: 4 })

  const numberValue: fc.Arbitrary<NumberValue> = fc.oneof(
    dbl.map((value): NumberValue => ({ type: "double", value })),
    i64.map((value): NumberValue => ({ type: "int", value })),
  )

  const exemplar: fc.Arbitrary<Exemplar> = withUnknown(
    fc.record(
      {
        filteredAttributes: attributes,
        timeUnixNano: u64,
        value: numberValue,
        spanId: fc.uint8Array({ minLength: 8, maxLength: 8 }),
        traceId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      },
      { requiredKeys: ["filteredAttributes", "timeUnixNano", "spanId", "traceId"] },
    ),
  )
  const exemplars = fc.array(exemplar, { maxLength: 2 })

  const numberDataPoint: fc.Arbitrary<NumberDataPoint> = withUnknown(
    fc.record(
      { attributes, startTimeUnixNano: u64, timeUnixNano: u64, value: numberValue, exemplars, flags: u32 },
      { requiredKeys: ["attributes", "startTimeUnixNano", "timeUnixNano", "exemplars", "flags"] },
    ),
  )

  const histogramDataPoint: fc.Arbitrary<HistogramDataPoint> = withUnknown(
    fc.record(
      {
        attributes,
        startTimeUnixNano: u64,
        timeUnixNano: u64,
        count: u64,
        sum: dbl,
        bucketCounts: fc.array(u64, { maxLength: 5 }),
        explicitBounds: fc.array(dbl, { maxLength: 4 }),
        exemplars,
        flags: u32,
        min: dbl,
        max: dbl,
      },
      {
        requiredKeys: [
          "attributes",
          "startTimeUnixNano",
          "timeUnixNano",
          "count",
          "bucketCounts",
          "explicitBounds",
          "exemplars",
          "flags",
        ],
      },
    ),
  )

  const buckets: fc.Arbitrary<Buckets> = withUnknown(
    fc.record({ offset: i32, bucketCounts: fc.array(u64, { maxLength: 5 }) }),
  )

  const exponentialHistogramDataPoint: fc.Arbitrary<ExponentialHistogramDataPoint> = withUnknown(
    fc.record(
      {
        attributes,
        startTimeUnixNano: u64,
        timeUnixNano: u64,
        count: u64,
        sum: dbl,
        scale: i32,
        zeroCount: u64,
        positive: buckets,
        negative: buckets,
        flags: u32,
        exemplars,
        min: dbl,
        max: dbl,
        zeroThreshold: dbl,
      },
      {
        requiredKeys: [
          "attributes",
          "startTimeUnixNano",
          "timeUnixNano",
          "count",
          "scale",
          "zeroCount",
          "flags",
          "exemplars",
          "zeroThreshold",
        ],
      },
    ),
  )

  const valueAtQuantile: fc.Arbitrary<ValueAtQuantile> = withUnknown(fc.record({ quantile: dbl, value: dbl }))

  const summaryDataPoint: fc.Arbitrary<SummaryDataPoint> = withUnknown(
    fc.record({
      attributes,
      startTimeUnixNano: u64,
      timeUnixNano: u64,
      count: u64,
      sum: dbl,
      quantileValues: fc.array(valueAtQuantile, { maxLength: 3 }),
      flags: u32,
    }),
  )

  const points = <T>(arb: fc.Arbitrary<T>) => fc.array(arb, { maxLength: 3 })

  const metricData: fc.Arbitrary<MetricData> = withUnknown(
    fc.oneof(
      points(numberDataPoint).map((dataPoints): MetricData => ({ type: "gauge", dataPoints })),
      fc.tuple(points(numberDataPoint), i32, fc.boolean()).map(
        ([dataPoints, aggregationTemporality, isMonotonic]): MetricData => ({
          type: "sum",
          dataPoints,
          aggregationTemporality,
          isMonotonic,
        }),
      ),
      fc.tuple(points(histogramDataPoint), fc.constantFrom(0, 1, 2)).map(
        ([dataPoints, aggregationTemporality]): MetricData => ({
          type: "histogram",
          dataPoints,
          aggregationTemporality,
        }),
      ),
      fc.tuple(points(exponentialHistogramDataPoint), fc.constantFrom(0, 1, 2)).map(
        ([dataPoints, aggregationTemporality]): MetricData => ({
          type: "exponentialHistogram",
          dataPoints,
          aggregationTemporality,
        }),
      ),
      points(summaryDataPoint).map((dataPoints): MetricData => ({ type: "summary", dataPoints })),
    ),
  )

  const metric: fc.Arbitrary<Metric> = withUnknown(
    fc.record(
      {
        name: str,
        description: str,
        unit: str,
        data: metricData,
        metadata: fc.array(keyValue, { maxLength: 2 }),
      },
      { requiredKeys: ["name", "description", "unit", "metadata"] },
    ),
  )

  const scope: fc.Arbitrary<InstrumentationScope> = withUnknown(
    fc.record({ name: str, version: str, attributes, droppedAttributesCount: u32 }),
  )

  const scopeMetrics: fc.Arbitrary<ScopeMetrics> = withUnknown(
    fc.record(
      { scope, metrics: fc.array(metric, { maxLength: 3 }), schemaUrl: str },
      { requiredKeys: ["metrics", "schemaUrl"] },
    ),
  )

  const resource: fc.Arbitrary<Resource> = withUnknown(fc.record({ attributes, droppedAttributesCount: u32 }))

  const resourceMetrics: fc.Arbitrary<ResourceMetrics> = withUnknown(
    fc.record(
      { resource, scopeMetrics: fc.array(scopeMetrics, { maxLength: 2 }), schemaUrl: str },
      { requiredKeys: ["scopeMetrics", "schemaUrl"] },
    ),
  )

  const request: fc.Arbitrary<ExportMetricsServiceRequest> = withUnknown(
    fc.record({ resourceMetrics: fc.array(resourceMetrics, { maxLength: 3 }) }),
  )

  return { anyValue, keyValue, attributes, metric, request, numberDataPoint }
}
