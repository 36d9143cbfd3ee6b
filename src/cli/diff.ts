/**
 * `metrics-governor diff OLD NEW [-stats-addr HOST:PORT]`: validates two limits files as `validate`
 * does and prints their rule-level difference; with the address of a running governor's control
 * server, also each changed limit against the rule's current usage there.
 *
 * Exit codes: 0 no difference, 1 differences, 2 invalid input (a file that does not validate, or a
 * bad command line).
 *
 * @module
 */
import { Data, Effect, Either } from "effect"
import { formatIssue } from "../config/errors.js"
import { loadConfig } from "../config/load.js"
import { formatRuleDiff, isEmptyDiff, ruleDiff } from "../console/rule-diff.js"
import type { RuleRow, RulesAnswer } from "../console/service.js"
import type { CompiledLimits, CompiledRule } from "../limits/rules.js"
import { accountedRules } from "../limits/stats.js"
import { parseListenAddress } from "../server/address.js"

export interface DiffCommand {
  readonly old: string
  readonly new: string
  readonly statsAddr: string | undefined
  readonly configMaxBytes: number
}

/** The running governor's usage could not be read. */
export class UsageUnavailable extends Data.TaggedError("UsageUnavailable")<{
  readonly url: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot read rule usage from ${this.url}: ${this.reason}`
  }
}

const pct = (value: number, limit: number): number => Math.round((value / limit) * 100)

/** One usage against one limit: `old limit 2000 (60%)`, `no limit`. */
const against = (which: string, usage: number, limit: number, action: string): string => {
  if (limit <= 0) return `${which}: no limit`
  const p = pct(usage, limit)
  if (usage <= limit) return `${which} limit ${limit} (${p}%)`
  const over = Math.round(((usage - limit) / usage) * 100)
  const effect =
    action === "log"
      ? `over: would log ~${over}%`
      : `${p}%: would start ${action === "drop" ? "dropping" : `limiting (${action})`} ~${over}%`
  return `${which} limit ${limit} (${action === "log" ? `${p}%, ${effect}` : effect})`
}

/**
 * For each rule (and `default`) in both files whose effective cardinality or datapoints limit
 * changed: its usage against the old and the new limit. Pure.
 */
export const usageLines = (
  oldLimits: CompiledLimits,
  newLimits: CompiledLimits,
  usage: ReadonlyArray<Pick<RuleRow, "name" | "cardinality" | "datapoints">>,
): Array<string> => {
  const byName = new Map(usage.map((u) => [u.name, u]))
  const olds = new Map(accountedRules(oldLimits).map((r) => [r.name, r]))
  const out: Array<string> = []
  for (const rule of accountedRules(newLimits)) {
    const before: CompiledRule | undefined = olds.get(rule.name)
    if (before === undefined) continue
    const u = byName.get(rule.name)
    const line = (what: string, value: number, oldLimit: number, newLimit: number) =>
      `rule ${rule.name}: ${what} ${value} — ${against("old", value, oldLimit, before.action)}, ${against("new", value, newLimit, rule.action)}`
    if (before.maxCardinality !== rule.maxCardinality) {
      out.push(
        u === undefined
          ? `rule ${rule.name}: cardinality unknown (the governor has no such rule)`
          : line("cardinality", u.cardinality, before.maxCardinality, rule.maxCardinality),
      )
    }
    if (before.maxDatapointsRate !== rule.maxDatapointsRate) {
      out.push(
        u === undefined
          ? `rule ${rule.name}: datapoints unknown (the governor has no such rule)`
          : line("datapoints", u.datapoints, before.maxDatapointsRate, rule.maxDatapointsRate),
      )
    }
  }
  return out
}

const fetchRules = (statsAddr: string) =>
  Effect.gen(function* () {
    const address = parseListenAddress("stats-addr", statsAddr)
    if (Either.isLeft(address)) {
      return yield* Effect.fail(new UsageUnavailable({ url: statsAddr, reason: address.left.message }))
    }
    const { host, port } = address.right
    const h = host === undefined ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host
    const url = `http://${h}:${port}/api/v1/status/rules`
    return yield* Effect.tryPromise({
      try: async () => {
        const res = await fetch(url, { signal: AbortSignal.timeout(5_000) })
        if (!res.ok) throw new Error(`HTTP ${res.status}`)
        return (await res.json()) as RulesAnswer
      },
      catch: (e) => new UsageUnavailable({ url, reason: e instanceof Error ? e.message : String(e) }),
    })
  })

/** Runs `diff`; resolves to the exit code. */
export const diff = (command: DiffCommand) =>
  Effect.gen(function* () {
    const load = (file: string) =>
      Effect.either(loadConfig({ config: undefined, limits: file }, command.configMaxBytes))
    const a = yield* load(command.old)
    const b = yield* load(command.new)
    if (Either.isLeft(a) || Either.isLeft(b)) {
      const issues = [...(Either.isLeft(a) ? a.left.issues : []), ...(Either.isLeft(b) ? b.left.issues : [])]
      for (const issue of issues) process.stderr.write(`${formatIssue(issue)}\n`)
      process.stderr.write(`invalid: ${issues.length} problem${issues.length === 1 ? "" : "s"}\n`)
      return 2
    }
    const oldLimits = a.right.limits
    const newLimits = b.right.limits
    const d = ruleDiff(oldLimits?.spec, newLimits?.spec)
    if (isEmptyDiff(d)) {
      process.stdout.write("no difference in rules or settings\n")
      return 0
    }
    process.stdout.write(`${formatRuleDiff(d).join("\n")}\n`)
    if (command.statsAddr !== undefined && oldLimits !== undefined && newLimits !== undefined) {
      const rules = yield* Effect.either(fetchRules(command.statsAddr))
      if (Either.isLeft(rules)) process.stderr.write(`warning: ${rules.left.message}\n`)
      else {
        const lines = usageLines(oldLimits.compiled, newLimits.compiled, rules.right.rules)
        process.stdout.write(
          `\nusage at ${command.statsAddr} (version ${rules.right.version}, current ${rules.right.window_seconds} s window):\n`,
        )
        process.stdout.write(
          lines.length === 0 ? "no limit of an existing rule changed\n" : `${lines.join("\n")}\n`,
        )
      }
    }
    return 1
  })
