import { Data, Effect, Either } from "effect"
import { decodeLimits, decodeMainConfig } from "../config/decode.js"
import {
  type ConfigInvalidError,
  type ConfigRole,
  ConfigTooLargeError,
  formatIssue,
} from "../config/errors.js"
import { DEFAULT_CONFIG_MAX_BYTES, readConfigFile } from "../config/load.js"
import type { ReloadEvent } from "../events/event.js"
import { initialState, step } from "../events/fold.js"
import { scanEventLog, snapshotPath } from "../events/log.js"

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

/** The version active at time `at` (RFC 3339), per the log: the last applied before it in a live run. */
export const activeAt = (events: ReadonlyArray<ReloadEvent>, at: number) => {
  let active: Extract<ReloadEvent, { type: "ConfigApplied" }> | undefined
  for (const e of events) {
    if (Date.parse(e.at) > at) break
    active = activeAfter(active, e)
  }
  return active
}

/** One step of `activeAt`: the active version after `e`. */
const activeAfter = (
  active: Extract<ReloadEvent, { type: "ConfigApplied" }> | undefined,
  e: ReloadEvent,
): Extract<ReloadEvent, { type: "ConfigApplied" }> | undefined =>
  e.type === "Started" || e.type === "Stopped" ? undefined : e.type === "ConfigApplied" ? e : active

/** One recorded config whose verdict differs with the current code, or whose bytes are gone. */
export interface Divergence {
  readonly seq: number
  readonly problem: string
}

type Verdict =
  | { readonly _tag: "Missing"; readonly problem: string }
  | { readonly _tag: "Checked"; readonly problems: ReadonlyArray<string> }

/**
 * Re-validates one snapshot with the current code: read with the reload's bound (a snapshot over
 * `maxBytes` is refused as the reload would refuse the file), checked against its hash, decoded.
 */
const checkSnapshot = async (
  logFile: string,
  file: { sha: string; name: string; role: ConfigRole },
  maxBytes: number,
): Promise<Verdict> => {
  const where = snapshotPath(logFile, file.sha)
  const read = await readConfigFile(where, file.role, maxBytes)
  if (Either.isLeft(read)) {
    const e = read.left
    if (e._tag === "ConfigTooLargeError") {
      const tooLarge = new ConfigTooLargeError({ ...e, file: file.name })
      return { _tag: "Checked", problems: tooLarge.issues.map(formatIssue) }
    }
    return { _tag: "Missing", problem: `snapshot ${file.sha} is missing (${where})` }
  }
  if (read.right.sha256 !== file.sha) {
    return { _tag: "Missing", problem: `snapshot ${file.sha} is corrupt (hash differs)` }
  }
  const decode = file.role === "limits" ? decodeLimits : decodeMainConfig
  const decoded: Either.Either<unknown, ConfigInvalidError> = decode(file.name, read.right.bytes)
  return { _tag: "Checked", problems: Either.isLeft(decoded) ? decoded.left.issues.map(formatIssue) : [] }
}

/**
 * Re-validates recorded configs one event at a time: each snapshot is read, decoded and let go
 * before the next (a verdict is remembered per snapshot, not its bytes), so a log of any length
 * and snapshots up to `maxBytes` verify in bounded memory.
 */
export const verifier = (logFile: string, maxBytes: number = DEFAULT_CONFIG_MAX_BYTES) => {
  const verdicts = new Map<string, Verdict>()
  const verdictOf = async (file: { sha: string; name: string; role: ConfigRole }): Promise<Verdict> => {
    const key = `${file.role}:${file.name}:${file.sha}`
    const known = verdicts.get(key)
    if (known !== undefined) return known
    const v = await checkSnapshot(logFile, file, maxBytes)
    verdicts.set(key, v)
    return v
  }
  return async (e: ReloadEvent): Promise<Array<Divergence>> => {
    if (e.type !== "ConfigApplied" && e.type !== "ReloadRejected") return []
    const files: Array<{ sha: string; name: string; role: ConfigRole }> = []
    if (e.limits_sha256 !== "")
      files.push({ sha: e.limits_sha256, name: e.limits_path ?? "limits.yaml", role: "limits" })
    if (e.config_sha256 !== "")
      files.push({ sha: e.config_sha256, name: e.config_path ?? "config.yaml", role: "config" })
    const out: Array<Divergence> = []
    const problems: Array<string> = []
    let missing = false
    for (const f of files) {
      const v = await verdictOf(f)
      if (v._tag === "Missing") {
        missing = true
        out.push({ seq: e.seq, problem: v.problem })
      } else problems.push(...v.problems)
    }
    if (missing) return out
    if (e.type === "ConfigApplied" && problems.length > 0) {
      out.push({
        seq: e.seq,
        problem: `version ${e.version} was applied, now rejected: ${problems.join("; ")}`,
      })
    }
    // A file that could not be read (or was refused from its size or kind) left no snapshot.
    const readFailure =
      e.type === "ReloadRejected" &&
      e.error.issues.some(
        (i) =>
          i.line === 0 && (i.message.startsWith("cannot read") || i.message.includes("(-config-max-bytes)")),
      )
    if (e.type === "ReloadRejected" && problems.length === 0 && !readFailure) {
      out.push({ seq: e.seq, problem: `was rejected (${e.error.message}), now valid` })
    }
    return out
  }
}

/** Re-validates every applied and every rejected config of `events` with the current code. */
export const verify = async (
  logFile: string,
  events: Iterable<ReloadEvent>,
  maxBytes: number = DEFAULT_CONFIG_MAX_BYTES,
): Promise<Array<Divergence>> => {
  const check = verifier(logFile, maxBytes)
  const out: Array<Divergence> = []
  for (const e of events) out.push(...(await check(e)))
  return out
}

const describeActive = (a: {
  version: number
  limits_sha256: string
  config_sha256: string
  rules_count: number
  dry_run: boolean
  at: string
}): string =>
  `version=${a.version} limits_sha256=${a.limits_sha256} config_sha256=${a.config_sha256} rules_count=${a.rules_count} dry_run=${a.dry_run} applied_at=${a.at}`

/**
 * `metrics-governor replay EVENT_LOG [-verify] [-at RFC3339]`. Returns the exit code.
 *
 * The log is read as a stream, one line at a time, and each event is printed, folded and (with
 * `-verify`) re-validated as it is read: memory does not grow with the log. With `-at`, only the
 * events up to that time count: it prints the version active then, and `-verify` re-validates the
 * configs recorded up to then.
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
    const check = options.verify ? verifier(options.eventLog, options.configMaxBytes) : undefined
    const divergences: Array<Divergence> = []
    let state = initialState
    let active: Extract<ReloadEvent, { type: "ConfigApplied" }> | undefined
    let past = false
    yield* Effect.tryPromise({
      try: () =>
        scanEventLog(options.eventLog, {
          bad: (b) => {
            process.stderr.write(`${options.eventLog}:${b.line}: skipped, ${b.reason}: ${b.text}\n`)
          },
          event: async (e) => {
            if (until !== undefined) {
              // As `activeAt`: the first event after the time ends the history that counts.
              if (past || Date.parse(e.at) > until) {
                past = true
                return
              }
              active = activeAfter(active, e)
            } else {
              out(describeEvent(e))
              state = step(state, e)
            }
            if (check !== undefined) divergences.push(...(await check(e)))
          },
        }),
      catch: (e) =>
        new ReplayError({ file: options.eventLog, reason: e instanceof Error ? e.message : String(e) }),
    })
    if (options.at !== undefined) {
      out(
        active === undefined
          ? `no version active at ${options.at}`
          : `active at ${options.at}: ${describeActive(active)}`,
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
      options.at === undefined ? "every recorded config" : `every config recorded up to ${options.at}`
    out(
      divergences.length === 0
        ? `verify: ok, ${scope} has the same verdict today`
        : `verify: FAILED, ${divergences.length} divergence(s)`,
    )
    return divergences.length === 0 ? 0 : 1
  })
