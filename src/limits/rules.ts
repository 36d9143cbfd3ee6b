import type { RE2JS } from "re2js"
import type { Action } from "../config/limits-schema.js"

export type { Action }

/** The name under which series that match no rule are accounted, when `defaults` sets a limit. */
export const DEFAULT_RULE_NAME = "default"

/** One rule, compiled once per config version and ready for matching. Immutable. */
export interface CompiledRule {
  readonly name: string
  /** Anchored RE2 over the metric name; undefined matches every name. */
  readonly metricName: RE2JS | undefined
  /** The source of `metricName`, kept for display and encoding. */
  readonly metricNameSource: string | undefined
  /** A literal every name `metricName` matches starts with (`literalPrefix`; "" for none). */
  readonly metricNamePrefix: string
  /** Label conditions: `value === undefined` means "present, any value". */
  readonly labels: ReadonlyArray<{ readonly name: string; readonly value: string | undefined }>
  /** Datapoints per window; 0 = no limit. */
  readonly maxDatapointsRate: number
  /** Distinct series per window; 0 = no limit. */
  readonly maxCardinality: number
  readonly action: Action
  readonly groupBy: ReadonlyArray<string>
  /** Fraction kept by `sample`; 1 for other actions. */
  readonly sampleRate: number
  readonly stripLabels: ReadonlyArray<string>
}

/** All rules of one config version. Immutable. */
export interface CompiledLimits {
  readonly windowMs: number
  /** In file order: the first rule that matches a series owns it. */
  readonly rules: ReadonlyArray<CompiledRule>
  /** The `default` rule for unmatched series; undefined when `defaults` sets no limit. */
  readonly defaults: CompiledRule | undefined
}

/** No limits at all: what runs when `-limits-config` is not given. */
export const EMPTY_LIMITS: CompiledLimits = { windowMs: 60_000, rules: [], defaults: undefined }
