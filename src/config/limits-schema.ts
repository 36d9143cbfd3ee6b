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

export const RuleSpec = Schema.Struct({
  name: Schema.String.annotations({ message: says("must be a string") }),
  match: opt(Match),
  ...limitFields,
})
export type RuleSpec = typeof RuleSpec.Type

export const DefaultsSpec = Schema.Struct(limitFields)
export type DefaultsSpec = typeof DefaultsSpec.Type

/** `limits.yaml`, exactly as written (keys of the seed), before compilation. */
export const LimitsSpec = Schema.Struct({
  window: opt(DurationMs),
  defaults: opt(DefaultsSpec),
  rules: opt(Schema.Array(RuleSpec).annotations({ message: () => "must be a list of rules" })),
})
export type LimitsSpec = typeof LimitsSpec.Type

export const DEFAULT_WINDOW_MS = 60_000
