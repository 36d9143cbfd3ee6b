import type { CompiledRule } from "./rules.js"

/**
 * The protocol-neutral view of one request that the limits engine decides on. A protocol adapter
 * (remote write, OTLP) lists each series entry of the request once, in request order; the same
 * series may appear more than once (OTLP lists every data point separately).
 *
 * Entry `i` has `datapoints[i]` datapoints, metric name `nameOf(i)` and labels `labelsOf(i)`. The
 * engine asks for the name and labels only when it needs them (a series it has not matched yet in
 * this version, a rule with `group_by`), so an adapter that reads them from the wire may decode
 * them on demand.
 */
export interface SeriesBatch {
  /** Number of entries. */
  readonly length: number
  /** Datapoints carried by each entry, in order (remote write: samples; OTLP: 1 per data point). */
  readonly datapoints: ArrayLike<number>
  /** Metric name of entry `i` (`__name__` for remote write; the metric name for OTLP). */
  readonly nameOf: (i: number) => string
  /**
   * Labels of entry `i` as a flat, key-sorted `[k0, v0, k1, v1, …]` list, without `__name__`.
   * For OTLP: resource attributes and data point attributes together (data point wins on a clash),
   * values as strings.
   */
  readonly labelsOf: (i: number) => ReadonlyArray<string>
  /**
   * The fingerprint of each entry's series (`fingerprintSeries(nameOf(i), labelsOf(i))`: high
   * halves in `hi`, low halves in `lo`), when the adapter computed it while decoding; otherwise the
   * engine computes it.
   */
  readonly hi?: Uint32Array
  readonly lo?: Uint32Array
}

/** A batch whose names and labels are already decoded, as arrays. */
export interface ArraySeriesBatch extends SeriesBatch {
  readonly names: ReadonlyArray<string>
  readonly labels: ReadonlyArray<ReadonlyArray<string>>
}

/** The batch of `names[i]`, `labels[i]`, `datapoints[i]`. */
export const arrayBatch = (
  names: ReadonlyArray<string>,
  labels: ReadonlyArray<ReadonlyArray<string>>,
  datapoints: ArrayLike<number>,
): ArraySeriesBatch => ({
  length: names.length,
  names,
  labels,
  datapoints,
  nameOf: (i) => names[i] as string,
  labelsOf: (i) => labels[i] as ReadonlyArray<string>,
})

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
  /**
   * The labels to strip from entry `i` when `strip[i] === 1`, where they are not the rule's
   * `stripLabels` (a tier's, or labels over their `label_limits`). Absent when no entry needs it.
   */
  readonly stripLabels?: ReadonlyArray<ReadonlyArray<string> | undefined>
}

/** The labels the violating datapoints of entry `i` lose when `strip[i] === 1`. */
export const stripLabelsOf = (verdict: BatchVerdict, i: number): ReadonlyArray<string> =>
  verdict.stripLabels?.[i] ?? verdict.rule[i]?.stripLabels ?? []

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
  /** The compiled rule, when one of the per-tier or per-label counts below is set (their labels). */
  compiled?: CompiledRule
  /** Tiers: datapoints decided by each tier (by position in `tiers`); undefined for a rule without tiers. */
  tierDatapoints?: Array<number>
  /** `label_limits`: datapoints that brought a label past its limit, by position in `labelLimits`. */
  labelLimited?: Array<number>
}
