/**
 * The Prometheus remote-write 1.0 request (`prometheus.WriteRequest` of prometheus/prompb), as the
 * governor holds it between decoding and re-encoding.
 *
 * Only what the limits engine needs is decoded: labels and float samples. Everything else
 * (exemplars, native histograms, metadata, fields this version does not know) is kept as the raw
 * bytes that arrived, and re-encoded unchanged, so forwarding never loses or reshapes data the
 * governor does not interpret.
 *
 * Raw byte fields are views into the decoded body (no copy): do not reuse that buffer while the
 * request is alive.
 *
 * @module
 */

/** One label pair (`prometheus.Label`: `name = 1`, `value = 2`). */
export interface Label {
  readonly name: string
  readonly value: string
}

/**
 * One float sample (`prometheus.Sample`: `value = 1` double, `timestamp = 2` int64 milliseconds).
 *
 * `value` keeps its exact bit pattern from decode to encode, which matters for the staleness
 * marker (a signalling NaN, bits `0x7ff0000000000002`). V8 quiets NaNs stored in an array of
 * doubles (`[v1, v2]`, `Float64Array` is fine): move values between samples as sample objects,
 * never through a plain `number[]`.
 *
 * `timestamp` is exact in `[-2^53, 2^53]`, far beyond any millisecond timestamp.
 */
export interface Sample {
  readonly value: number
  readonly timestamp: number
}

/** One series with its samples (`prometheus.TimeSeries`). */
export interface TimeSeries {
  /** Field 1, in the order received (senders usually send them sorted by name). */
  readonly labels: ReadonlyArray<Label>
  /** Field 2, in the order received. */
  readonly samples: ReadonlyArray<Sample>
  /** Field 3: the payload of each `prometheus.Exemplar`, undecoded. */
  readonly exemplars: ReadonlyArray<Uint8Array>
  /** Field 4: the payload of each native `prometheus.Histogram`, undecoded. Each counts as one datapoint. */
  readonly histograms: ReadonlyArray<Uint8Array>
  /** Any other field, each as its complete encoding (key and payload), in the order received. */
  readonly unknown: ReadonlyArray<Uint8Array>
}

/** One remote-write request (`prometheus.WriteRequest`). */
export interface WriteRequest {
  /** Field 1. */
  readonly timeseries: ReadonlyArray<TimeSeries>
  /** Field 3: the payload of each `prometheus.MetricMetadata`, undecoded. */
  readonly metadata: ReadonlyArray<Uint8Array>
  /** Any other field (e.g. Mimir's `source = 2`), each as its complete encoding, in the order received. */
  readonly unknown: ReadonlyArray<Uint8Array>
}

/** Protobuf field numbers, per prometheus/prompb `types.proto` and `remote.proto`. */
export const FieldNumber = {
  WriteRequest: { timeseries: 1, metadata: 3 },
  TimeSeries: { labels: 1, samples: 2, exemplars: 3, histograms: 4 },
  Label: { name: 1, value: 2 },
  Sample: { value: 1, timestamp: 2 },
} as const

/** Shared empty list for the raw fields of a decoded series that has none. Never mutated. */
export const NO_BYTES: ReadonlyArray<Uint8Array> = Object.freeze([])
