/**
 * The reload state is a fold of the reload events: `apply(state, event)` is the only way the active
 * config version changes, in the live process and in `replay` alike. The pipeline decides (pure,
 * `decide`), records the event, and the new state is `apply(old, event)`; the event log holds the
 * same events with the content replaced by its hashes, and `replay` folds them back with the same
 * function after reading the content from the snapshots kept beside the log.
 *
 * What an event states is what the fold needs and nothing it could contradict: an applied event
 * carries the decoded files, and the version number, rule count and effective dry-run follow from
 * them and from the state (see `logEventOf` for the log's copy of them, which `replay --verify`
 * re-derives and compares).
 *
 * @module
 */
import type { Either } from "effect"
import type { DecodedLimits, DecodedMainConfig } from "../config/decode.js"
import type { ConfigLoadError, LoadedConfig } from "../config/load.js"
import type { MainConfigSpec } from "../config/main-schema.js"
import type { EventBody } from "../events/event.js"
import { runToEnd, type Steps } from "../threads/slices.js"
import { restartOnlyChanges } from "./restart.js"
import type { Trigger } from "./trigger.js"
import { type ConfigVersion, nextVersionSteps } from "./version.js"

/** Which files make up the configuration of a run, as `Started` records them. */
export interface RunPaths {
  readonly limits: string | undefined
  readonly config: string | undefined
}

/** One reload event with its content: what `apply` folds. `at` is wall-clock ms. */
export type StateEvent =
  | {
      readonly _tag: "Started"
      readonly at: number
      readonly pid: number
      readonly paths: RunPaths
      /** `-limits-dry-run` when given: wins over `limits.dry_run` for the whole run. */
      readonly dryRunFlag: boolean | undefined
    }
  | {
      readonly _tag: "ReloadRequested"
      readonly at: number
      readonly trigger: Trigger
      readonly coalesced: number
    }
  | {
      readonly _tag: "ConfigApplied"
      readonly at: number
      readonly trigger: Trigger
      readonly limits: DecodedLimits | undefined
      readonly main: DecodedMainConfig | undefined
    }
  | { readonly _tag: "ConfigUnchanged"; readonly at: number; readonly trigger: Trigger }
  | {
      readonly _tag: "ReloadRejected"
      readonly at: number
      readonly trigger: Trigger
      readonly error: ConfigLoadError
      /** Hashes of the rejected bytes; `""` for a file that could not be read or is not configured. */
      readonly limitsSha256: string
      readonly configSha256: string
    }
  | { readonly _tag: "Stopped"; readonly at: number }

/** What the events say about the process (the live one, or the runs of a log). */
export interface ReloadState {
  /** Process lifetimes seen: one per `Started`. */
  readonly runs: number
  readonly running: boolean
  readonly paths: RunPaths
  readonly dryRunFlag: boolean | undefined
  /** The active version of the latest run; undefined before its first `ConfigApplied`. */
  readonly active: ConfigVersion | undefined
  /** The main config the run started with: the sections that are read at start only. */
  readonly startMain: MainConfigSpec | undefined
  /** Keys of the active `config.yaml` that differ from the start and take effect only after a restart. */
  readonly restartRequired: ReadonlyArray<string>
  readonly applied: number
  readonly unchanged: number
  readonly rejected: number
}

export const initialState: ReloadState = {
  runs: 0,
  running: false,
  paths: { limits: undefined, config: undefined },
  dryRunFlag: undefined,
  active: undefined,
  startMain: undefined,
  restartRequired: [],
  applied: 0,
  unchanged: 0,
  rejected: 0,
}

/**
 * `apply` in steps (see `threads/slices.ts`): an applied event reconciles the rule stats one rule
 * per step, so the live process can build a version of many rules in slices beside the data path.
 */
export function* applySteps(state: ReloadState, event: StateEvent): Steps<ReloadState> {
  switch (event._tag) {
    case "Started":
      return {
        ...state,
        runs: state.runs + 1,
        running: true,
        paths: event.paths,
        dryRunFlag: event.dryRunFlag,
        active: undefined,
        startMain: undefined,
        restartRequired: [],
      }
    case "ReloadRequested":
      return state
    case "ConfigApplied": {
      const active = yield* nextVersionSteps(state.active, {
        limits: event.limits,
        main: event.main,
        dryRunFlag: state.dryRunFlag,
        trigger: event.trigger,
        now: event.at,
      })
      const startMain = state.startMain ?? active.main
      return {
        ...state,
        active,
        startMain,
        restartRequired: restartOnlyChanges(startMain, active.main),
        applied: state.applied + 1,
      }
    }
    case "ConfigUnchanged":
      return { ...state, unchanged: state.unchanged + 1 }
    case "ReloadRejected":
      return { ...state, rejected: state.rejected + 1 }
    case "Stopped":
      return { ...state, running: false }
  }
}

/** Folds one event into the state. Pure but for the new version's empty caches. */
export const apply = (state: ReloadState, event: StateEvent): ReloadState =>
  runToEnd(applySteps(state, event))

/** Folds events, from the empty state unless told otherwise. */
export const fold = (events: Iterable<StateEvent>, from: ReloadState = initialState): ReloadState => {
  let state = from
  for (const e of events) state = apply(state, e)
  return state
}

export interface DecideContext {
  readonly trigger: Trigger
  readonly now: number
  /** The hashes of what was read (`""` not configured or unreadable), for a rejection's record. */
  readonly limitsSha256: string
  readonly configSha256: string
}

/**
 * Decides a reload from the state and what was read: a load failure is rejected (the state keeps
 * its version); the same content hashes as the active version change nothing (unchanged); anything
 * else is applied. Pure and cheap: the new version is built by `apply`.
 */
export const decide = (
  state: ReloadState,
  loaded: Either.Either<LoadedConfig, ConfigLoadError>,
  ctx: DecideContext,
): StateEvent => {
  if (loaded._tag === "Left") {
    return {
      _tag: "ReloadRejected",
      at: ctx.now,
      trigger: ctx.trigger,
      error: loaded.left,
      limitsSha256: ctx.limitsSha256,
      configSha256: ctx.configSha256,
    }
  }
  const { limits, main } = loaded.right
  const current = state.active
  if (
    current !== undefined &&
    current.limitsSha256 === (limits?.sha256 ?? "") &&
    current.configSha256 === (main?.sha256 ?? "")
  ) {
    return { _tag: "ConfigUnchanged", at: ctx.now, trigger: ctx.trigger }
  }
  return { _tag: "ConfigApplied", at: ctx.now, trigger: ctx.trigger, limits, main }
}

const issuesJson = (error: ConfigLoadError) => ({
  message: error.message,
  issues: error.issues.map((i) => ({
    file: i.file,
    line: i.line,
    column: i.column,
    path: i.path,
    message: i.message,
  })),
})

/**
 * The event as the log records it (docs/reload.md, the event log), from the states before and after it: content
 * becomes its hashes; the version, rule count and dry-run are read off the state `apply` made, so
 * `replay --verify` can derive them again and catch a log that says otherwise.
 */
export const logEventOf = (event: StateEvent, before: ReloadState, after: ReloadState): EventBody => {
  const paths = { limits_path: after.paths.limits ?? null, config_path: after.paths.config ?? null }
  switch (event._tag) {
    case "Started":
      return {
        type: "Started",
        pid: event.pid,
        ...paths,
        ...(event.dryRunFlag === undefined ? {} : { dry_run_flag: event.dryRunFlag }),
      }
    case "ReloadRequested":
      return { type: "ReloadRequested", trigger: event.trigger, coalesced: event.coalesced }
    case "ConfigApplied": {
      const v = after.active as ConfigVersion
      return {
        type: "ConfigApplied",
        trigger: event.trigger,
        version: v.version,
        limits_sha256: v.limitsSha256,
        config_sha256: v.configSha256,
        ...paths,
        rules_count: v.rulesCount,
        dry_run: v.dryRun,
      }
    }
    case "ConfigUnchanged":
      return {
        type: "ConfigUnchanged",
        trigger: event.trigger,
        version: after.active?.version ?? 0,
        limits_sha256: after.active?.limitsSha256 ?? "",
        config_sha256: after.active?.configSha256 ?? "",
      }
    case "ReloadRejected":
      return {
        type: "ReloadRejected",
        trigger: event.trigger,
        version: before.active?.version ?? 0,
        limits_sha256: event.limitsSha256,
        config_sha256: event.configSha256,
        ...paths,
        error: issuesJson(event.error),
      }
    case "Stopped":
      return { type: "Stopped", version: after.active?.version ?? 0 }
  }
}
