import type { RE2JS } from "re2js"
import type { Action, LabelLimitAction } from "../config/limits-schema.js"

export type { Action, LabelLimitAction }

/** One tier of a rule: from `atPercent` utilisation on, `action` applies (see docs/limits.md, tiers). */
export interface CompiledTier {
  readonly atPercent: number
  readonly action: Action
  /** Fraction kept by `sample`; 1 for other actions. */
  readonly sampleRate: number
  readonly stripLabels: ReadonlyArray<string>
}

/** `adaptive_priority`: the rank of a group by one label's value (0: most important, shed last). */
export interface CompiledPriority {
  readonly label: string
  /** Rank of each listed value: its position in `order`. */
  readonly rank: ReadonlyMap<string, number>
  /** Rank of a group whose value is not listed, or that lacks the label. */
  readonly defaultRank: number
}

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
  /** Ownership metadata (`labels:`), sorted by key: exported on `metrics_governor_rule_info`. */
  readonly info: ReadonlyArray<readonly [string, string]>
  /** Tiers by ascending `atPercent`; empty for none. */
  readonly tiers: ReadonlyArray<CompiledTier>
  /** `label_limits`, by label name: at most `max` distinct values per window (0: always stripped). */
  readonly labelLimits: ReadonlyArray<{ readonly name: string; readonly max: number }>
  readonly labelLimitAction: LabelLimitAction
  readonly priority: CompiledPriority | undefined
  /** Whether the rule has tiers or label limits: read on every entry, so kept on the rule itself. */
  readonly shaped: boolean
}

/** All rules of one config version. Immutable. */
export interface CompiledLimits {
  readonly windowMs: number
  /** In file order: the first rule that matches a series owns it. */
  readonly rules: ReadonlyArray<CompiledRule>
  /** The `default` rule for unmatched series; undefined when `defaults` sets no limit. */
  readonly defaults: CompiledRule | undefined
  /** `dead_rule_interval` in ms; 0 when dead rules are not reported. */
  readonly deadRuleIntervalMs: number
}

/** No limits at all: what runs when `-limits-config` is not given. */
export const EMPTY_LIMITS: CompiledLimits = {
  windowMs: 60_000,
  rules: [],
  defaults: undefined,
  deadRuleIntervalMs: 0,
}

/** The advanced keys of a rule that uses none of them (tiers, label limits, priority, metadata). */
export const NO_ADVANCED_KEYS = {
  info: [],
  tiers: [],
  labelLimits: [],
  labelLimitAction: "strip",
  priority: undefined,
  shaped: false,
} as const satisfies Pick<
  CompiledRule,
  "info" | "tiers" | "labelLimits" | "labelLimitAction" | "priority" | "shaped"
>
