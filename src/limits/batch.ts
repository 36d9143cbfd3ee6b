import type { CompiledRule } from "./rules.js"

/**
 * The protocol-neutral view of one request that the limits engine decides on. A protocol adapter
 * (remote write, OTLP) lists each series entry of the request once, in request order; the same
 * series may appear more than once (OTLP lists every data point separately).
 *
 * Parallel arrays keep the hot loop allocation-light: entry `i` is `names[i]`, `labels[i]`,
 * `datapoints[i]`.
 */
export interface SeriesBatch {
  /** Number of entries. */
  readonly length: number
  /** Metric name of each entry (`__name__` for remote write; the metric name for OTLP). */
  readonly names: ReadonlyArray<string>
  /**
   * Labels of each entry as a flat, key-sorted `[k0, v0, k1, v1, …]` list, without `__name__`.
   * For OTLP: resource attributes and data point attributes together (data point wins on a clash),
   * values as strings.
   */
  readonly labels: ReadonlyArray<ReadonlyArray<string>>
  /** Datapoints carried by each entry, in order (remote write: samples; OTLP: 1 per data point). */
  readonly datapoints: ArrayLike<number>
}

/**
 * What the engine decided for each entry of a `SeriesBatch`. For entry `i`: the first `pass[i]`
 * datapoints pass unchanged; the remaining `datapoints[i] - pass[i]` are violating: they pass with
 * `rule[i].stripLabels` removed when `strip[i] === 1`, otherwise they are dropped.
 * In dry-run, every datapoint passes unchanged (`pass[i] === datapoints[i]`).
 */
export interface BatchVerdict {
  readonly pass: Uint32Array
  readonly strip: Uint8Array
  /** The owning rule of each entry (undefined: no rule and no defaults). */
  readonly rule: ReadonlyArray<CompiledRule | undefined>
}

/** Per-rule counts of one batch, turned into the `{rule,action}` counters once per batch. */
export interface RuleCounts {
  readonly rule: string
  readonly action: string
  /** Datapoints of the rule that passed (unchanged or stripped). */
  passed: number
  /** Datapoints dropped (0 in dry-run). */
  dropped: number
  /** Datapoints dry-run would have dropped (or stripped). */
  wouldDrop: number
  /** Datapoints that violated the cardinality limit. */
  cardinalityExceeded: number
  /** Datapoints that violated the datapoints-rate limit. */
  datapointsExceeded: number
}
