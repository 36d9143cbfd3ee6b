import type { ParseResult } from "effect"
import { Schema } from "effect"
import { DurationMs } from "./duration.js"

const opt = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })
const says = (message: string) => () => ({ message, override: true })

export const ACTIONS = ["log", "drop", "adaptive", "sample", "strip_labels"] as const

/** `unknown action "explode" (one of log, drop, …)`: the value as written, and every choice. */
const unknownChoice = (what: string, choices: ReadonlyArray<string>) => (issue: ParseResult.ParseIssue) => ({
  message: `unknown ${what} ${JSON.stringify(issue.actual) ?? String(issue.actual)} (one of ${choices.join(", ")})`,
  override: true,
})

/** What happens to a datapoint that violates its rule. */
export const Action = Schema.Literal(...ACTIONS).annotations({ message: unknownChoice("action", ACTIONS) })
export type Action = typeof Action.Type

const Limit = Schema.Number.pipe(
  Schema.int(),
  Schema.nonNegative(),
  Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER),
).annotations({ message: says("must be a whole number >= 0 (0 = no limit)") })

const SampleRate = Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1)).annotations({
  message: says("must be a number in (0, 1]"),
})

const LabelName = Schema.String.pipe(Schema.minLength(1)).annotations({
  message: says("must be a non-empty label name"),
})
const LabelList = Schema.Array(LabelName).annotations({ message: () => "must be a list of label names" })

/** The limit fields shared by `defaults` and every rule. */
const limitFields = {
  max_datapoints_rate: opt(Limit),
  max_cardinality: opt(Limit),
  action: opt(Action),
  group_by: opt(LabelList),
  sample_rate: opt(SampleRate),
  strip_labels: opt(LabelList),
}

export const Match = Schema.Struct({
  metric_name: opt(Schema.String.annotations({ message: says("must be a string (an RE2 regex)") })),
  labels: opt(
    Schema.Record({
      key: Schema.String,
      value: Schema.String.annotations({
        message: says('must be a string: an exact value, or "*" for any value (quote numbers: "200")'),
      }),
    }),
  ),
})
export type Match = typeof Match.Type

export const LABEL_LIMIT_ACTIONS = ["strip", "drop"] as const

/** What happens to a datapoint that would bring a label past its `label_limits` value count. */
export const LabelLimitAction = Schema.Literal(...LABEL_LIMIT_ACTIONS).annotations({
  message: unknownChoice("label_limit_action", LABEL_LIMIT_ACTIONS),
})
export type LabelLimitAction = typeof LabelLimitAction.Type

const LabelLimit = Schema.Number.pipe(
  Schema.int(),
  Schema.nonNegative(),
  Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER),
).annotations({
  message: says("must be a whole number >= 0 (distinct values per window; 0: always removed)"),
})

const AtPercent = Schema.Number.pipe(
  Schema.int(),
  Schema.greaterThanOrEqualTo(1),
  Schema.lessThanOrEqualTo(100),
).annotations({ message: says("must be a whole number from 1 to 100") })

/** One step of a tiered rule: from `at_percent` utilisation on, `action` applies. */
export const TierSpec = Schema.Struct({
  at_percent: AtPercent,
  action: Action,
  sample_rate: opt(SampleRate),
  strip_labels: opt(LabelList),
})
export type TierSpec = typeof TierSpec.Type

const Priority = Schema.Number.pipe(Schema.int(), Schema.nonNegative()).annotations({
  message: says("must be a whole number >= 0"),
})

/** The order in which `adaptive` sheds groups: by the value of one label. */
export const AdaptivePrioritySpec = Schema.Struct({
  label: LabelName,
  order: Schema.Array(
    Schema.String.annotations({ message: says("must be a string (a label value)") }),
  ).annotations({
    message: () => "must be a list of label values, most important first",
  }),
  default_priority: opt(Priority),
})
export type AdaptivePrioritySpec = typeof AdaptivePrioritySpec.Type

const StringMap = (what: string) =>
  Schema.Record({
    key: Schema.String,
    value: Schema.String.annotations({ message: says(`must be a string (${what}; quote numbers: "1")`) }),
  })

export const RuleSpec = Schema.Struct({
  name: Schema.String.annotations({ message: says("must be a string") }),
  /** Ownership metadata (team, owner…), exported on `metrics_governor_rule_info`. */
  labels: opt(StringMap("a metadata value")),
  match: opt(Match),
  ...limitFields,
  tiers: opt(Schema.Array(TierSpec).annotations({ message: () => "must be a list of tiers" })),
  label_limits: opt(Schema.Record({ key: Schema.String, value: LabelLimit })),
  label_limit_action: opt(LabelLimitAction),
  adaptive_priority: opt(AdaptivePrioritySpec),
})
export type RuleSpec = typeof RuleSpec.Type

export const DefaultsSpec = Schema.Struct(limitFields)
export type DefaultsSpec = typeof DefaultsSpec.Type

/** `limits.yaml`, exactly as written (keys of the seed), before compilation. */
export const LimitsSpec = Schema.Struct({
  window: opt(DurationMs),
  /** A rule that matched nothing for this long is reported dead. */
  dead_rule_interval: opt(DurationMs),
  /** Keys every rule's `labels` must hold. */
  required_labels: opt(LabelList),
  defaults: opt(DefaultsSpec),
  rules: opt(Schema.Array(RuleSpec).annotations({ message: () => "must be a list of rules" })),
})
export type LimitsSpec = typeof LimitsSpec.Type

export const DEFAULT_WINDOW_MS = 60_000
