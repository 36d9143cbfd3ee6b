import type { ReloadEvent } from "./event.js"

/** One applied version, as the log recorded it. */
export interface VersionRecord {
  readonly version: number
  readonly at: string
  readonly trigger: string
  readonly limits_sha256: string
  readonly config_sha256: string
  readonly rules_count: number
  readonly dry_run: boolean
}

/** What the event log says about the process. The live process and `replay` fold with `step`. */
export interface ReloadState {
  readonly lastSeq: number
  /** Process lifetimes seen (one per `Started`). */
  readonly runs: number
  readonly running: boolean
  /** The active version of the latest run; undefined before its first `ConfigApplied`. */
  readonly active: VersionRecord | undefined
  /** Every applied version across all runs, oldest first. */
  readonly history: ReadonlyArray<VersionRecord>
  readonly applied: number
  readonly unchanged: number
  readonly rejected: number
}

export const initialState: ReloadState = {
  lastSeq: 0,
  runs: 0,
  running: false,
  active: undefined,
  history: [],
  applied: 0,
  unchanged: 0,
  rejected: 0,
}

/** Folds one event into the state. Pure and total. */
export const step = (state: ReloadState, event: ReloadEvent): ReloadState => {
  const s = { ...state, lastSeq: event.seq }
  switch (event.type) {
    case "Started":
      return { ...s, runs: s.runs + 1, running: true, active: undefined }
    case "ReloadRequested":
      return s
    case "ConfigApplied": {
      const record: VersionRecord = {
        version: event.version,
        at: event.at,
        trigger: event.trigger,
        limits_sha256: event.limits_sha256,
        config_sha256: event.config_sha256,
        rules_count: event.rules_count,
        dry_run: event.dry_run,
      }
      return { ...s, active: record, history: [...s.history, record], applied: s.applied + 1 }
    }
    case "ConfigUnchanged":
      return { ...s, unchanged: s.unchanged + 1 }
    case "ReloadRejected":
      return { ...s, rejected: s.rejected + 1 }
    case "Stopped":
      return { ...s, running: false }
  }
}

export const fold = (events: Iterable<ReloadEvent>, from: ReloadState = initialState): ReloadState => {
  let state = from
  for (const e of events) state = step(state, e)
  return state
}
