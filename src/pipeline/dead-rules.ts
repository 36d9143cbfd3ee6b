import { Clock, Effect, Schedule } from "effect"
import type { RuleUsage } from "../limits/stats.js"
import { logInfo, logWarn } from "../telemetry/log.js"

/** What changed between two looks at the rules: those that died and those that came back. */
export interface DeadTransitions {
  readonly died: ReadonlyArray<RuleUsage>
  readonly revived: ReadonlyArray<RuleUsage>
  /** The rules dead now: the `dead` of the next look. */
  readonly dead: ReadonlySet<string>
}

/**
 * Compares the rules' dead flags with the set of rules dead at the last look. A rule that is no
 * longer configured simply leaves the set (it neither dies nor comes back). Pure.
 */
export const deadTransitions = (
  dead: ReadonlySet<string>,
  usages: ReadonlyArray<RuleUsage>,
): DeadTransitions => {
  const died: Array<RuleUsage> = []
  const revived: Array<RuleUsage> = []
  const next = new Set<string>()
  for (const u of usages) {
    if (u.dead) {
      next.add(u.rule)
      if (!dead.has(u.rule)) died.push(u)
    } else if (dead.has(u.rule)) revived.push(u)
  }
  return { died, revived, dead: next }
}

/**
 * Logs once when a rule dies (`dead_rule_interval`) and once when it comes back, looking every
 * `everyMs` at the rules of the active version (`usages`, at the clock's time).
 */
export const watchDeadRules = (usages: (nowMs: number) => ReadonlyArray<RuleUsage>, everyMs: number) => {
  let dead: ReadonlySet<string> = new Set()
  const look = Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const t = deadTransitions(dead, usages(now))
    dead = t.dead
    for (const u of t.died)
      yield* logWarn("limits rule is dead: it matched nothing for dead_rule_interval", {
        rule: u.rule,
        last_match_seconds: Number.isFinite(u.lastMatchSeconds) ? u.lastMatchSeconds : null,
      })
    for (const u of t.revived) yield* logInfo("limits rule matches again", { rule: u.rule })
  })
  return look.pipe(Effect.repeat(Schedule.spaced(everyMs)), Effect.asVoid)
}
