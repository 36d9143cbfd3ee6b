/**
 * The OTLP metrics data model (`opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest`
 * and everything it contains), as plain immutable TypeScript values.
 *
 * Conventions, shared by the protobuf and JSON codecs:
 *
 * - Every 64-bit integer (`fixed64` timestamps and counts, `sfixed64` / `int64` values, `uint64`
 *   bucket counts) is a `bigint`: exact over the whole 64-bit range, so
 *   `1700000000123456789n` nanoseconds survive decode → encode unchanged. Unsigned fields hold
 *   `0n … 2n ** 64n - 1n`; signed fields `-(2n ** 63n) … 2n ** 63n - 1n`; the encoders take other
 *   values modulo 2^64.
 * - 32-bit integers (`uint32` flags and counts, `sint32` scale and offset, enums) are `number`s.
 * - Scalar and repeated fields are always present (proto3 defaults: `""`, `0`, `0n`, `false`,
 *   `[]`); message fields, `optional` scalars and `oneof`s are optional properties, absent when
 *   not set on the wire.
 * - `unknownFields` holds the raw protobuf bytes (tags included) of fields this codec does not
 *   know, in wire order, so a newer sender's fields pass through the governor unchanged. Only the
 *   protobuf codec fills and writes it; the JSON codec ignores unknown keys, as OTLP/JSON requires.
 */

/** Raw protobuf bytes of fields unknown to this codec, re-emitted verbatim by the encoder. */
export interface Unknown {
  readonly unknownFields?: Uint8Array
}

/** A message under construction by a decoder: its properties writable. */
export type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** No bytes: a `bytes` field not set. Shared by the decoders, never written to. */
export const NO_BYTES = new Uint8Array(0)

// --- opentelemetry.proto.common.v1 -----------------------------------------------------------

/** `AnyValue`: one of its `oneof value` members, or `empty` when none is set. */
export type AnyValue = (
  | { readonly type: "string"; readonly value: string }
  | { readonly type: "bool"; readonly value: boolean }
  | { readonly type: "int"; readonly value: bigint }
  | { readonly type: "double"; readonly value: number }
  | { readonly type: "array"; readonly values: ReadonlyArray<AnyValue> }
  | { readonly type: "kvlist"; readonly values: ReadonlyArray<KeyValue> }
  | { readonly type: "bytes"; readonly value: Uint8Array }
  | { readonly type: "empty" }
) &
  Unknown

/** The `AnyValue` with no member set, shared by the decoders. */
export const EMPTY_VALUE: AnyValue = Object.freeze({ type: "empty" })

/** `KeyValue`. An absent `value` on the wire decodes as `{ type: "empty" }`. */
export interface KeyValue extends Unknown {
  readonly key: string
  readonly value: AnyValue
}

/** `InstrumentationScope`. */
export interface InstrumentationScope extends Unknown {
  readonly name: string
  readonly version: string
  readonly attributes: ReadonlyArray<KeyValue>
  readonly droppedAttributesCount: number
}

// --- opentelemetry.proto.resource.v1 ---------------------------------------------------------

/** `Resource`. */
export interface Resource extends Unknown {
  readonly attributes: ReadonlyArray<KeyValue>
  readonly droppedAttributesCount: number
}

// --- opentelemetry.proto.metrics.v1 ----------------------------------------------------------

/** `AggregationTemporality` (enum, kept as its integer so unknown values pass through). */
export const AggregationTemporality = {
  UNSPECIFIED: 0,
  DELTA: 1,
  CUMULATIVE: 2,
} as const

/** The `oneof value` of `NumberDataPoint` and `Exemplar`: `as_double` or `as_int`. */
export type NumberValue =
  | { readonly type: "double"; readonly value: number }
  | { readonly type: "int"; readonly value: bigint }

/** `Exemplar`. */
export interface Exemplar extends Unknown {
  readonly filteredAttributes: ReadonlyArray<KeyValue>
  readonly timeUnixNano: bigint
  readonly value?: NumberValue
  /** 8 bytes when set; empty when not. */
  readonly spanId: Uint8Array
  /** 16 bytes when set; empty when not. */
  readonly traceId: Uint8Array
}

/** `NumberDataPoint`, the points of `Gauge` and `Sum`. */
export interface NumberDataPoint extends Unknown {
  readonly attributes: ReadonlyArray<KeyValue>
  readonly startTimeUnixNano: bigint
  readonly timeUnixNano: bigint
  readonly value?: NumberValue
  readonly exemplars: ReadonlyArray<Exemplar>
  readonly flags: number
}

/** `HistogramDataPoint`. */
export interface HistogramDataPoint extends Unknown {
  readonly attributes: ReadonlyArray<KeyValue>
  readonly startTimeUnixNano: bigint
  readonly timeUnixNano: bigint
  readonly count: bigint
  readonly sum?: number
  readonly bucketCounts: ReadonlyArray<bigint>
  readonly explicitBounds: ReadonlyArray<number>
  readonly exemplars: ReadonlyArray<Exemplar>
  readonly flags: number
  readonly min?: number
  readonly max?: number
}

/** `ExponentialHistogramDataPoint.Buckets`. */
export interface Buckets extends Unknown {
  readonly offset: number
  readonly bucketCounts: ReadonlyArray<bigint>
}

/** `ExponentialHistogramDataPoint`. */
export interface ExponentialHistogramDataPoint extends Unknown {
  readonly attributes: ReadonlyArray<KeyValue>
  readonly startTimeUnixNano: bigint
  readonly timeUnixNano: bigint
  readonly count: bigint
  readonly sum?: number
  readonly scale: number
  readonly zeroCount: bigint
  readonly positive?: Buckets
  readonly negative?: Buckets
  readonly flags: number
  readonly exemplars: ReadonlyArray<Exemplar>
  readonly min?: number
  readonly max?: number
  readonly zeroThreshold: number
}

/** `SummaryDataPoint.ValueAtQuantile`. */
export interface ValueAtQuantile extends Unknown {
  readonly quantile: number
  readonly value: number
}

/** `SummaryDataPoint`. */
export interface SummaryDataPoint extends Unknown {
  readonly attributes: ReadonlyArray<KeyValue>
  readonly startTimeUnixNano: bigint
  readonly timeUnixNano: bigint
  readonly count: bigint
  readonly sum: number
  readonly quantileValues: ReadonlyArray<ValueAtQuantile>
  readonly flags: number
}

/** `Gauge`. */
export interface Gauge extends Unknown {
  readonly type: "gauge"
  readonly dataPoints: ReadonlyArray<NumberDataPoint>
}

/** `Sum`. */
export interface Sum extends Unknown {
  readonly type: "sum"
  readonly dataPoints: ReadonlyArray<NumberDataPoint>
  readonly aggregationTemporality: number
  readonly isMonotonic: boolean
}

/** `Histogram`. */
export interface Histogram extends Unknown {
  readonly type: "histogram"
  readonly dataPoints: ReadonlyArray<HistogramDataPoint>
  readonly aggregationTemporality: number
}

/** `ExponentialHistogram`. */
export interface ExponentialHistogram extends Unknown {
  readonly type: "exponentialHistogram"
  readonly dataPoints: ReadonlyArray<ExponentialHistogramDataPoint>
  readonly aggregationTemporality: number
}

/** `Summary`. */
export interface Summary extends Unknown {
  readonly type: "summary"
  readonly dataPoints: ReadonlyArray<SummaryDataPoint>
}

/** The `oneof data` of `Metric`, tagged by `type`. */
export type MetricData = Gauge | Sum | Histogram | ExponentialHistogram | Summary

/** Any data point, of whichever metric type. */
export type DataPoint = MetricData["dataPoints"][number]

/** `Metric`. */
export interface Metric extends Unknown {
  readonly name: string
  readonly description: string
  readonly unit: string
  /** Absent when the sender set no (known) data type; such a metric carries no data points. */
  readonly data?: MetricData
  readonly metadata: ReadonlyArray<KeyValue>
}

/** `ScopeMetrics`. */
export interface ScopeMetrics extends Unknown {
  readonly scope?: InstrumentationScope
  readonly metrics: ReadonlyArray<Metric>
  readonly schemaUrl: string
}

/** `ResourceMetrics`. */
export interface ResourceMetrics extends Unknown {
  readonly resource?: Resource
  readonly scopeMetrics: ReadonlyArray<ScopeMetrics>
  readonly schemaUrl: string
}

// --- opentelemetry.proto.collector.metrics.v1 ------------------------------------------------

/** `ExportMetricsServiceRequest`: the body of `POST /v1/metrics` and of `MetricsService/Export`. */
export interface ExportMetricsServiceRequest extends Unknown {
  readonly resourceMetrics: ReadonlyArray<ResourceMetrics>
}

/** `ExportMetricsPartialSuccess`. */
export interface ExportMetricsPartialSuccess extends Unknown {
  readonly rejectedDataPoints: bigint
  readonly errorMessage: string
}

/** `ExportMetricsServiceResponse`. Full success leaves `partialSuccess` unset. */
export interface ExportMetricsServiceResponse extends Unknown {
  readonly partialSuccess?: ExportMetricsPartialSuccess
}
