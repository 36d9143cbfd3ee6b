import { Schema } from "effect"

/**
 * The reload event log (docs/reload.md, the event log): one JSON object per line. Every event has `seq` (1, 2, 3…),
 * `at` (RFC 3339) and `type`. Decoded with a Schema, so `replay` reads exactly what is written.
 */

const TriggerName = Schema.Literal("startup", "sighup", "watch", "poll", "touch", "http", "rollback")

const Base = { seq: Schema.Number, at: Schema.String }

const Hashes = {
  limits_sha256: Schema.String,
  config_sha256: Schema.String,
}

const Paths = {
  limits_path: Schema.NullOr(Schema.String),
  config_path: Schema.NullOr(Schema.String),
}

export const Issue = Schema.Struct({
  file: Schema.String,
  line: Schema.Number,
  column: Schema.Number,
  path: Schema.String,
  message: Schema.String,
})

export const Started = Schema.Struct({
  ...Base,
  type: Schema.Literal("Started"),
  pid: Schema.Number,
  ...Paths,
  /** `-limits-dry-run` when it was given: the effective dry-run of every version of the run. */
  dry_run_flag: Schema.optional(Schema.Boolean),
})
export const ReloadRequested = Schema.Struct({
  ...Base,
  type: Schema.Literal("ReloadRequested"),
  trigger: TriggerName,
  /** How many triggers were coalesced into this reload. */
  coalesced: Schema.Number,
})
export const ConfigApplied = Schema.Struct({
  ...Base,
  type: Schema.Literal("ConfigApplied"),
  trigger: TriggerName,
  version: Schema.Number,
  ...Hashes,
  ...Paths,
  rules_count: Schema.Number,
  dry_run: Schema.Boolean,
})
export const ConfigUnchanged = Schema.Struct({
  ...Base,
  type: Schema.Literal("ConfigUnchanged"),
  trigger: TriggerName,
  version: Schema.Number,
  ...Hashes,
})
export const ReloadRejected = Schema.Struct({
  ...Base,
  type: Schema.Literal("ReloadRejected"),
  trigger: TriggerName,
  /** The version that stays active (0 when startup failed). */
  version: Schema.Number,
  /** Hashes of the rejected bytes; empty for a file that could not be read or is not configured. */
  ...Hashes,
  ...Paths,
  error: Schema.Struct({ message: Schema.String, issues: Schema.Array(Issue) }),
})
export const Stopped = Schema.Struct({
  ...Base,
  type: Schema.Literal("Stopped"),
  version: Schema.Number,
})

export const ReloadEvent = Schema.Union(
  Started,
  ReloadRequested,
  ConfigApplied,
  ConfigUnchanged,
  ReloadRejected,
  Stopped,
)
export type ReloadEvent = typeof ReloadEvent.Type
export type ConfigAppliedEvent = typeof ConfigApplied.Type
export type ReloadRejectedEvent = typeof ReloadRejected.Type

/** An event before the log numbers and stamps it. */
export type EventBody = ReloadEvent extends infer E
  ? E extends ReloadEvent
    ? Omit<E, "seq" | "at">
    : never
  : never

export const decodeEventJson = Schema.decodeUnknownEither(Schema.parseJson(ReloadEvent))
