import * as fs from "node:fs"
import { Data, Effect, Either } from "effect"
import { decodeLimits, decodeMainConfig, sha256Hex } from "../config/decode.js"
import { type ConfigInvalidError, formatIssue } from "../config/errors.js"
import type { ReloadEvent } from "../events/event.js"
import { fold } from "../events/fold.js"
import { parseEventLog, snapshotPath } from "../events/log.js"

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
    if (e.type === "Started" || e.type === "Stopped") active = undefined
    if (e.type === "ConfigApplied") active = e
  }
  return active
}

/** One recorded config whose verdict differs with the current code, or whose bytes are gone. */
export interface Divergence {
  readonly seq: number
  readonly problem: string
}

const readSnapshot = (logFile: string, sha: string): Either.Either<Uint8Array, string> => {
  try {
    const bytes = fs.readFileSync(snapshotPath(logFile, sha))
    return sha256Hex(bytes) === sha
      ? Either.right(bytes)
      : Either.left(`snapshot ${sha} is corrupt (hash differs)`)
  } catch {
    return Either.left(`snapshot ${sha} is missing (${snapshotPath(logFile, sha)})`)
  }
}

/** Re-validates every applied and every rejected config of the log with the current code. */
export const verify = (logFile: string, events: ReadonlyArray<ReloadEvent>): Array<Divergence> => {
  const out: Array<Divergence> = []
  for (const e of events) {
    if (e.type !== "ConfigApplied" && e.type !== "ReloadRejected") continue
    const files: Array<{
      sha: string
      name: string
      decode: (file: string, bytes: Uint8Array) => Either.Either<unknown, ConfigInvalidError>
    }> = []
    if (e.limits_sha256 !== "")
      files.push({ sha: e.limits_sha256, name: e.limits_path ?? "limits.yaml", decode: decodeLimits })
    if (e.config_sha256 !== "")
      files.push({ sha: e.config_sha256, name: e.config_path ?? "config.yaml", decode: decodeMainConfig })
    const problems: Array<string> = []
    let missing = false
    for (const f of files) {
      const bytes = readSnapshot(logFile, f.sha)
      if (Either.isLeft(bytes)) {
        missing = true
        out.push({ seq: e.seq, problem: bytes.left })
        continue
      }
      const decoded = f.decode(f.name, bytes.right)
      if (Either.isLeft(decoded)) problems.push(...decoded.left.issues.map(formatIssue))
    }
    if (missing) continue
    if (e.type === "ConfigApplied" && problems.length > 0) {
      out.push({
        seq: e.seq,
        problem: `version ${e.version} was applied, now rejected: ${problems.join("; ")}`,
      })
    }
    const readFailure =
      e.type === "ReloadRejected" &&
      e.error.issues.some((i) => i.line === 0 && i.message.startsWith("cannot read"))
    if (e.type === "ReloadRejected" && problems.length === 0 && !readFailure) {
      out.push({ seq: e.seq, problem: `was rejected (${e.error.message}), now valid` })
    }
  }
  return out
}

/** `metrics-governor replay EVENT_LOG [-verify] [-at RFC3339]`. Returns the exit code. */
export const replay = (options: { eventLog: string; verify: boolean; at: string | undefined }) =>
  Effect.gen(function* () {
    const text = yield* Effect.try({
      try: () => fs.readFileSync(options.eventLog, "utf8"),
      catch: (e) =>
        new ReplayError({ file: options.eventLog, reason: e instanceof Error ? e.message : String(e) }),
    })
    const { events, bad } = parseEventLog(text)
    for (const b of bad)
      process.stderr.write(`${options.eventLog}:${b.line}: skipped, ${b.reason}: ${b.text}\n`)
    const out = (line: string) => process.stdout.write(`${line}\n`)
    if (options.at !== undefined) {
      const t = Date.parse(options.at)
      if (Number.isNaN(t)) {
        return yield* Effect.fail(
          new ReplayError({
            file: options.eventLog,
            reason: `invalid time "${options.at}" for -at (RFC 3339)`,
          }),
        )
      }
      const v = activeAt(events, t)
      out(
        v === undefined
          ? `no version active at ${options.at}`
          : `active at ${options.at}: version=${v.version} limits_sha256=${v.limits_sha256} config_sha256=${v.config_sha256} rules_count=${v.rules_count} dry_run=${v.dry_run} applied_at=${v.at}`,
      )
      return 0
    }
    for (const e of events) out(describeEvent(e))
    const state = fold(events)
    const a = state.active
    out(
      a === undefined
        ? "active: none"
        : `active: version=${a.version} limits_sha256=${a.limits_sha256} config_sha256=${a.config_sha256} rules_count=${a.rules_count} dry_run=${a.dry_run} applied_at=${a.at}`,
    )
    out(
      `reloads: applied=${state.applied} unchanged=${state.unchanged} rejected=${state.rejected} runs=${state.runs}`,
    )
    if (!options.verify) return 0
    const divergences = verify(options.eventLog, events)
    for (const d of divergences) out(`DIVERGENCE seq ${d.seq}: ${d.problem}`)
    out(
      divergences.length === 0
        ? "verify: ok, every recorded config has the same verdict today"
        : `verify: FAILED, ${divergences.length} divergence(s)`,
    )
    return divergences.length === 0 ? 0 : 1
  })
