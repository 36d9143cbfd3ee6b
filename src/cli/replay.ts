import { Data, Effect, Either } from "effect"
import {
  type DecodedLimits,
  type DecodedMainConfig,
  decodeLimits,
  decodeMainConfig,
} from "../config/decode.js"
import { ConfigInvalidError, type ConfigRole, ConfigTooLargeError, formatIssue } from "../config/errors.js"
import { ConfigLoadError, DEFAULT_CONFIG_MAX_BYTES, readConfigFile } from "../config/load.js"
import type { EventBody, ReloadEvent } from "../events/event.js"
import { scanEventLog, snapshotPath } from "../events/log.js"
import { apply, initialState, logEventOf, type ReloadState, type StateEvent } from "../reload/state.js"
import type { ConfigVersion } from "../reload/version.js"

export class ReplayError extends Data.TaggedError("ReplayError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.file}: ${this.reason}`
  }
}

const short = (sha: string) => (sha === "" ? "-" : sha.slice(0, 12))

export const describeEvent = (e: ReloadEvent): string => {
  const head = `${String(e.seq).padStart(5)}  ${e.at}  ${e.type}`
  switch (e.type) {
    case "Started":
      return `${head} pid=${e.pid}`
    case "ReloadRequested":
      return `${head} trigger=${e.trigger} coalesced=${e.coalesced}`
    case "ConfigApplied":
      return `${head} version=${e.version} trigger=${e.trigger} limits=${short(e.limits_sha256)} config=${short(e.config_sha256)} rules=${e.rules_count} dry_run=${e.dry_run}`
    case "ConfigUnchanged":
      return `${head} version=${e.version} trigger=${e.trigger}`
    case "ReloadRejected":
      return `${head} trigger=${e.trigger} kept version=${e.version}: ${e.error.message}`
    case "Stopped":
      return `${head} version=${e.version}`
  }
}

/** A disagreement between the log and what the current code derives from it, or a missing snapshot. */
export interface Divergence {
  readonly seq: number
  readonly problem: string
}

/** What the current code makes of one snapshot: its problems (none: valid), or why it is gone. */
type Verdict =
  | { readonly _tag: "Missing"; readonly problem: string }
  | { readonly _tag: "Checked"; readonly problems: ReadonlyArray<string> }

/** Decoded snapshots kept at once: the fold needs only the active version's, and the next one. */
const DECODED_KEPT = 4

/**
 * The snapshots beside a log, read with the reload's bound (a snapshot over `maxBytes` is refused
 * as the reload would refuse the file), checked against their hash and decoded with the current
 * code. A verdict is remembered per snapshot, the decoded content only for the last few: a log of
 * any length verifies in bounded memory.
 */
class Snapshots {
  private readonly verdicts = new Map<string, Verdict>()
  private readonly decoded = new Map<string, DecodedLimits | DecodedMainConfig>()

  constructor(
    private readonly logFile: string,
    private readonly maxBytes: number,
  ) {}

  async load(
    sha: string,
    name: string,
    role: ConfigRole,
  ): Promise<{ verdict: Verdict; content?: DecodedLimits | DecodedMainConfig | undefined }> {
    const key = `${role}:${name}:${sha}`
    const cached = this.decoded.get(key)
    const known = this.verdicts.get(key)
    if (
      known !== undefined &&
      (known._tag === "Missing" || known.problems.length > 0 || cached !== undefined)
    ) {
      return { verdict: known, content: cached }
    }
    const where = snapshotPath(this.logFile, sha)
    const read = await readConfigFile(where, role, this.maxBytes)
    let verdict: Verdict
    let content: DecodedLimits | DecodedMainConfig | undefined
    if (Either.isLeft(read)) {
      const e = read.left
      verdict =
        e._tag === "ConfigTooLargeError"
          ? {
              _tag: "Checked",
              problems: new ConfigTooLargeError({ ...e, file: name }).issues.map(formatIssue),
            }
          : { _tag: "Missing", problem: `snapshot ${sha} is missing (${where})` }
    } else if (read.right.sha256 !== sha) {
      verdict = { _tag: "Missing", problem: `snapshot ${sha} is corrupt (hash differs)` }
    } else {
      const decoded: Either.Either<DecodedLimits | DecodedMainConfig, ConfigInvalidError> =
        role === "limits" ? decodeLimits(name, read.right.bytes) : decodeMainConfig(name, read.right.bytes)
      if (Either.isLeft(decoded))
        verdict = { _tag: "Checked", problems: decoded.left.issues.map(formatIssue) }
      else {
        verdict = { _tag: "Checked", problems: [] }
        content = decoded.right
        if (this.decoded.size >= DECODED_KEPT) this.decoded.delete(this.decoded.keys().next().value as string)
        this.decoded.set(key, content)
      }
    }
    this.verdicts.set(key, verdict)
    return { verdict, content }
  }
}

/** The files an applied or rejected event names, by role. */
const filesOf = (e: Extract<ReloadEvent, { type: "ConfigApplied" | "ReloadRejected" }>) => {
  const files: Array<{ sha: string; name: string; role: ConfigRole }> = []
  if (e.limits_sha256 !== "")
    files.push({ sha: e.limits_sha256, name: e.limits_path ?? "limits.yaml", role: "limits" })
  if (e.config_sha256 !== "")
    files.push({ sha: e.config_sha256, name: e.config_path ?? "config.yaml", role: "config" })
  return files
}

/** A rejection recorded for a file that could not be read (or was refused from its size or kind). */
const wasReadFailure = (e: Extract<ReloadEvent, { type: "ReloadRejected" }>): boolean =>
  e.error.issues.some(
    (i) => i.line === 0 && (i.message.startsWith("cannot read") || i.message.includes("(-config-max-bytes)")),
  )

/** One event of the log turned back into the event the fold takes, and what is wrong with it. */
interface Resolved {
  readonly event: StateEvent
  /** The content could not be derived (snapshot missing, corrupt or invalid today): these fields are the log's. */
  readonly recorded?: { limitsSha256: string; configSha256: string; rulesCount: number; dryRun: boolean }
  readonly problems: ReadonlyArray<string>
}

const resolve = async (e: ReloadEvent, snapshots: Snapshots): Promise<Resolved> => {
  const at = Date.parse(e.at)
  switch (e.type) {
    case "Started":
      return {
        event: {
          _tag: "Started",
          at,
          pid: e.pid,
          paths: { limits: e.limits_path ?? undefined, config: e.config_path ?? undefined },
          dryRunFlag: e.dry_run_flag,
        },
        problems: [],
      }
    case "ReloadRequested":
      return {
        event: { _tag: "ReloadRequested", at, trigger: e.trigger, coalesced: e.coalesced },
        problems: [],
      }
    case "ConfigUnchanged":
      return { event: { _tag: "ConfigUnchanged", at, trigger: e.trigger }, problems: [] }
    case "Stopped":
      return { event: { _tag: "Stopped", at }, problems: [] }
    case "ConfigApplied": {
      const content: { limits?: DecodedLimits; main?: DecodedMainConfig } = {}
      const problems: Array<string> = []
      let derivable = true
      for (const f of filesOf(e)) {
        const { verdict, content: c } = await snapshots.load(f.sha, f.name, f.role)
        if (verdict._tag === "Missing") {
          problems.push(verdict.problem)
          derivable = false
        } else if (verdict.problems.length > 0) {
          problems.push(`version ${e.version} was applied, now rejected: ${verdict.problems.join("; ")}`)
          derivable = false
        } else if (f.role === "limits") content.limits = c as DecodedLimits
        else content.main = c as DecodedMainConfig
      }
      const event: StateEvent = {
        _tag: "ConfigApplied",
        at,
        trigger: e.trigger,
        limits: content.limits,
        main: content.main,
      }
      if (derivable) return { event, problems }
      return {
        event,
        problems,
        recorded: {
          limitsSha256: e.limits_sha256,
          configSha256: e.config_sha256,
          rulesCount: e.rules_count,
          dryRun: e.dry_run,
        },
      }
    }
    case "ReloadRejected": {
      const problems: Array<string> = []
      const now: Array<string> = []
      let missing = false
      for (const f of filesOf(e)) {
        const { verdict } = await snapshots.load(f.sha, f.name, f.role)
        if (verdict._tag === "Missing") {
          missing = true
          problems.push(verdict.problem)
        } else now.push(...verdict.problems)
      }
      if (!missing && now.length === 0 && !wasReadFailure(e)) {
        problems.push(`was rejected (${e.error.message}), now valid`)
      }
      const file = e.limits_path ?? e.config_path ?? ""
      const error = new ConfigLoadError({
        errors: [new ConfigInvalidError({ file, issues: e.error.issues.map((i) => ({ ...i })) })],
      })
      return {
        event: {
          _tag: "ReloadRejected",
          at,
          trigger: e.trigger,
          error,
          limitsSha256: e.limits_sha256,
          configSha256: e.config_sha256,
        },
        problems,
      }
    }
  }
}

/** The fields of a logged event that the fold derives; a difference is a divergence. */
const DERIVED = ["version", "limits_sha256", "config_sha256", "rules_count", "dry_run"] as const

const disagreements = (logged: ReloadEvent, derived: EventBody): Array<string> => {
  const out: Array<string> = []
  if (logged.type !== derived.type) return out
  for (const key of DERIVED) {
    if (logged.type === "ReloadRejected" && key !== "version") continue
    const a = (logged as Record<string, unknown>)[key]
    const b = (derived as Record<string, unknown>)[key]
    if (a !== undefined && b !== undefined && a !== b) {
      out.push(`${logged.type} says ${key}=${JSON.stringify(a)}, the fold derives ${JSON.stringify(b)}`)
    }
  }
  return out
}

/** The replay of a log: folds each event with `apply`, as the live process did. */
export class Replayer {
  state: ReloadState = initialState
  private readonly snapshots: Snapshots

  constructor(logFile: string, maxBytes: number = DEFAULT_CONFIG_MAX_BYTES) {
    this.snapshots = new Snapshots(logFile, maxBytes)
  }

  /** Folds one event; returns what the log says that the fold does not, and what cannot be derived. */
  async step(e: ReloadEvent): Promise<Array<Divergence>> {
    const resolved = await resolve(e, this.snapshots)
    const before = this.state
    let after = apply(before, resolved.event)
    if (resolved.recorded !== undefined && after.active !== undefined) {
      // Not derivable today: the version goes on from the log's word, and the gap is reported.
      const r = resolved.recorded
      after = {
        ...after,
        active: {
          ...after.active,
          limitsSha256: r.limitsSha256,
          configSha256: r.configSha256,
          rulesCount: r.rulesCount,
          dryRun: r.dryRun,
        },
      }
    }
    this.state = after
    const out = resolved.problems.map((problem) => ({ seq: e.seq, problem }))
    if (resolved.recorded === undefined) {
      for (const problem of disagreements(e, logEventOf(resolved.event, before, after))) {
        out.push({ seq: e.seq, problem })
      }
    }
    return out
  }
}

const describeActive = (a: ConfigVersion): string =>
  `version=${a.version} limits_sha256=${a.limitsSha256} config_sha256=${a.configSha256} rules_count=${a.rulesCount} dry_run=${a.dryRun} applied_at=${new Date(a.loadedAt).toISOString()}`

/**
 * `metrics-governor replay EVENT_LOG [-verify] [-at RFC3339]`. Returns the exit code.
 *
 * The log is read as a stream, one line at a time; each event is printed and folded with `apply`
 * (the content of an applied version read from its snapshots and decoded with the current code),
 * so the version, rule count and dry-run printed are derived, not copied. With `-verify`, every
 * event whose recorded fields differ from the fold's, every config whose verdict changed, and every
 * missing snapshot is a divergence (exit 1). With `-at`, only the events up to that time count.
 */
export const replay = (options: {
  eventLog: string
  verify: boolean
  at: string | undefined
  configMaxBytes?: number
}) =>
  Effect.gen(function* () {
    let until: number | undefined
    if (options.at !== undefined) {
      until = Date.parse(options.at)
      if (Number.isNaN(until)) {
        return yield* Effect.fail(
          new ReplayError({
            file: options.eventLog,
            reason: `invalid time "${options.at}" for -at (RFC 3339)`,
          }),
        )
      }
    }
    const out = (line: string) => process.stdout.write(`${line}\n`)
    const replayer = new Replayer(options.eventLog, options.configMaxBytes)
    const divergences: Array<Divergence> = []
    let past = false
    yield* Effect.tryPromise({
      try: () =>
        scanEventLog(options.eventLog, {
          bad: (b) => {
            process.stderr.write(`${options.eventLog}:${b.line}: skipped, ${b.reason}: ${b.text}\n`)
          },
          event: async (e) => {
            // The first event after the time ends the history that counts.
            if (until !== undefined && (past || Date.parse(e.at) > until)) {
              past = true
              return
            }
            if (until === undefined) out(describeEvent(e))
            const found = await replayer.step(e)
            if (options.verify) divergences.push(...found)
            else {
              for (const d of found) process.stderr.write(`seq ${d.seq}: not derived: ${d.problem}\n`)
            }
          },
        }),
      catch: (e) =>
        new ReplayError({ file: options.eventLog, reason: e instanceof Error ? e.message : String(e) }),
    })
    const state = replayer.state
    if (options.at !== undefined) {
      const a = state.running ? state.active : undefined
      out(
        a === undefined
          ? `no version active at ${options.at}`
          : `active at ${options.at}: ${describeActive(a)}`,
      )
    } else {
      const a = state.active
      out(a === undefined ? "active: none" : `active: ${describeActive(a)}`)
      out(
        `reloads: applied=${state.applied} unchanged=${state.unchanged} rejected=${state.rejected} runs=${state.runs}`,
      )
    }
    if (!options.verify) return 0
    for (const d of divergences) out(`DIVERGENCE seq ${d.seq}: ${d.problem}`)
    const scope =
      options.at === undefined ? "every recorded event" : `every event recorded up to ${options.at}`
    out(
      divergences.length === 0
        ? `verify: ok, ${scope} folds to what the log says, and every config has the same verdict today`
        : `verify: FAILED, ${divergences.length} divergence(s)`,
    )
    return divergences.length === 0 ? 0 : 1
  })
