import { endsStep, runToEnd, type Steps } from "../threads/slices.js"
import type { CompiledLimits, CompiledRule } from "./rules.js"
import { newTracker, type SeriesTracker } from "./tracker.js"
import { windowStartOf } from "./window.js"

/** Per-group accounting of a rule with `group_by`: what the group counted toward the rule's usage. */
export interface GroupStats {
  datapoints: number
  /** Series first counted in this window under this group. */
  series: number
  /** `adaptive_priority`: the group's rank (0: most important, shed last); 0 without priorities. */
  rank: number
}

/**
 * The accounting of one rule in its current window. Owned by the config version that holds it and
 * mutated only by the synchronous enforcement loop; a reload hands it on through `reconcile`.
 */
export interface RuleStats {
  /** Start (ms since the epoch) of the window these figures are for. */
  windowStart: number
  /** Datapoints counted toward `max_datapoints_rate` in this window. */
  datapoints: number
  /** Distinct series counted toward `max_cardinality` in this window (fingerprints, see SeriesSet). */
  readonly series: SeriesTracker
  /** The `group_by` the groups below were computed with. */
  readonly groupBy: ReadonlyArray<string>
  readonly groups: Map<string, GroupStats>
  /** `adaptive`: groups dropped for the rest of the window. */
  readonly droppedGroups: Set<string>
  /** `adaptive`: datapoints that dropped groups had counted when they were dropped. */
  shedDatapoints: number
  /** `adaptive`: series that dropped groups had counted when they were dropped. */
  shedSeries: number
  /** The `adaptive_priority` the groups' ranks were computed with. */
  readonly priority: CompiledRule["priority"]
  /** `label_limits`: the distinct values of each limited label seen in this window. */
  readonly labelValues: Map<string, Set<string>>
  /** Wall-clock ms of the last datapoint the rule owned; 0: none since `sinceMs`. */
  lastMatchMs: number
  /** Wall-clock ms from which the rule has been in force (dead-rule reporting counts from here). */
  readonly sinceMs: number
}

export type StatsByRule = ReadonlyMap<string, RuleStats>

export const emptyStats = (rule: CompiledRule, windowStart = 0, sinceMs = 0): RuleStats => ({
  windowStart,
  datapoints: 0,
  series: newTracker(),
  groupBy: rule.groupBy,
  groups: new Map(),
  droppedGroups: new Set(),
  shedDatapoints: 0,
  shedSeries: 0,
  priority: rule.priority,
  labelValues: new Map(),
  lastMatchMs: 0,
  sinceMs,
})

/** Bytes held by a rule's tracking (an estimate past the series table, which is exact). */
export const trackedBytes = (stats: RuleStats): number => {
  let bytes = stats.series.byteLength + stats.groups.size * GROUP_BYTES + stats.droppedGroups.size * 32
  for (const values of stats.labelValues.values()) {
    for (const v of values) bytes += VALUE_BYTES + 2 * v.length
  }
  return bytes
}

/** Estimated bytes of one group entry (key, map slot, counts object). */
const GROUP_BYTES = 96
/** Estimated bytes of one label value in a set, besides its characters. */
const VALUE_BYTES = 48

/** Whether a rule is dead at `nowMs`: nothing matched for `intervalMs` (since it came into force). */
export const isDead = (stats: RuleStats, intervalMs: number, nowMs: number): boolean =>
  intervalMs > 0 && nowMs - Math.max(stats.lastMatchMs, stats.sinceMs) >= intervalMs

/** What a rule counted in the window that is current at some instant (its `{rule}` gauges). */
export interface RuleUsage {
  readonly rule: string
  readonly cardinality: number
  readonly datapoints: number
  /** Bytes held by the rule's tracking (`trackedBytes`). */
  readonly memoryBytes: number
  /** Seconds since the rule last owned a datapoint; +Inf when it never did. */
  readonly lastMatchSeconds: number
  /** Whether it is dead (`dead_rule_interval`); false when dead rules are not reported. */
  readonly dead: boolean
}

/**
 * A rule's usage in the window that contains `nowMs`: its counts when its stats are for that window,
 * 0 when they are for a window that has ended (or, after a clock step back, one not yet begun). The
 * stats themselves roll over only when the next request arrives (see `rollWindow`); this read does
 * not modify them.
 */
export const currentUsage = (
  stats: RuleStats,
  windowMs: number,
  nowMs: number,
): { readonly cardinality: number; readonly datapoints: number } =>
  stats.windowStart === windowStartOf(nowMs, windowMs)
    ? { cardinality: stats.series.size, datapoints: stats.datapoints }
    : { cardinality: 0, datapoints: 0 }

/** `currentUsage` of every rule of a config version (file order, then `default`), at `nowMs`. */
export const currentUsages = (
  version: { readonly limits: CompiledLimits; readonly stats: StatsByRule },
  nowMs: number,
): ReadonlyArray<RuleUsage> => {
  const out: Array<RuleUsage> = []
  const interval = version.limits.deadRuleIntervalMs
  for (const [rule, s] of version.stats)
    out.push({
      rule,
      ...currentUsage(s, version.limits.windowMs, nowMs),
      memoryBytes: trackedBytes(s),
      lastMatchSeconds:
        s.lastMatchMs === 0 ? Number.POSITIVE_INFINITY : Math.max(0, nowMs - s.lastMatchMs) / 1000,
      dead: isDead(s, interval, nowMs),
    })
  return out
}

/** Every rule stats are kept for: the rules in file order, then `default` when it is set. */
export const accountedRules = (limits: CompiledLimits): ReadonlyArray<CompiledRule> =>
  limits.defaults === undefined ? limits.rules : [...limits.rules, limits.defaults]

const sameList = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean => {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Whether two `adaptive_priority` settings rank every group alike. */
export const samePriority = (a: CompiledRule["priority"], b: CompiledRule["priority"]): boolean => {
  if (a === b) return true
  if (a === undefined || b === undefined) return false
  if (a.label !== b.label || a.defaultRank !== b.defaultRank || a.rank.size !== b.rank.size) return false
  for (const [value, rank] of a.rank) if (b.rank.get(value) !== rank) return false
  return true
}

/** The label value sets of `prev` for the labels `rule` still limits (the others are dropped). */
const keptLabelValues = (prev: RuleStats, rule: CompiledRule): Map<string, Set<string>> => {
  const out = new Map<string, Set<string>>()
  for (const { name } of rule.labelLimits) {
    const values = prev.labelValues.get(name)
    if (values !== undefined) out.set(name, new Set(values))
  }
  return out
}

const sameLabelValues = (prev: RuleStats, rule: CompiledRule): boolean => {
  if (prev.labelValues.size === 0) return true
  for (const name of prev.labelValues.keys()) if (!rule.labelLimits.some((l) => l.name === name)) return false
  return true
}

/**
 * Carries rule stats across a reload (docs/limits.md, "Reload and stats"). Pure and total: the inputs are
 * not modified.
 *
 * - a rule in both keeps its stats object; its new limits apply from the next datapoint on;
 * - if its `group_by` or `adaptive_priority` changed, its per-group stats and dropped groups start
 *   empty, its totals are kept (with `shedDatapoints`/`shedSeries`, so usage that was shed stays out
 *   of the budget);
 * - the value sets of the labels it still limits (`label_limits`) are kept, the others are dropped;
 * - its last match time is kept; a new rule is in force from `nowMs` (dead-rule reporting);
 * - a rule only in the old rules is gone; a rule only in the new rules starts empty;
 * - a rename is a removal plus an addition.
 */
export const reconcile = (
  oldStats: StatsByRule,
  oldRules: ReadonlyArray<CompiledRule>,
  newRules: ReadonlyArray<CompiledRule>,
  nowMs = 0,
): StatsByRule => runToEnd(reconcileSteps(oldStats, oldRules, newRules, nowMs))

/** Whether `stats` holds the names of `rules` and no other (no allocation). */
const statsOfExactly = (stats: StatsByRule, rules: ReadonlyArray<CompiledRule>): boolean => {
  if (stats.size !== rules.length) return false
  for (let i = 0; i < rules.length; i++) if (!stats.has((rules[i] as CompiledRule).name)) return false
  return true
}

/**
 * Whether `rules` are the rules of `stats`, in its order, and each keeps its stats object as it is
 * (its groups, priority and limited labels unchanged).
 */
const keepsEvery = (stats: StatsByRule, rules: ReadonlyArray<CompiledRule>): boolean => {
  if (stats.size !== rules.length) return false
  let i = 0
  let keeps = true
  stats.forEach((prev, name) => {
    const rule = rules[i++] as CompiledRule
    if (keeps && (rule.name !== name || !keepsStats(prev, rule))) keeps = false
  })
  return keeps
}

/** Whether a rule in both the old and the new rules keeps its stats object as it is. */
const keepsStats = (prev: RuleStats, rule: CompiledRule): boolean =>
  sameList(prev.groupBy, rule.groupBy) &&
  samePriority(prev.priority, rule.priority) &&
  sameLabelValues(prev, rule)

/** `reconcile`, in steps of `ITEMS_PER_STEP` rules (see `threads/slices.ts`). */
export function* reconcileSteps(
  oldStats: StatsByRule,
  oldRules: ReadonlyArray<CompiledRule>,
  newRules: ReadonlyArray<CompiledRule>,
  nowMs = 0,
): Steps<StatsByRule> {
  // A rule's stats carry over when it was one of the old rules. When the old stats are exactly
  // those of the old rules (as every version's are), a lookup in them says so; otherwise the
  // old rules' names are gathered first.
  const exactly = statsOfExactly(oldStats, oldRules)
  // Every rule kept, in the same order, each with its stats as they are (a limit edited, say):
  // the old stats are the new ones.
  if (exactly && keepsEvery(oldStats, newRules)) return oldStats
  let oldNames: Set<string> | undefined
  if (!exactly) {
    oldNames = new Set<string>()
    for (let i = 0; i < oldRules.length; i++) {
      oldNames.add((oldRules[i] as CompiledRule).name)
      if (endsStep(i)) yield
    }
  }
  const out = new Map<string, RuleStats>()
  for (let i = 0; i < newRules.length; i++) {
    const rule = newRules[i] as CompiledRule
    if (endsStep(i)) yield
    const prev = oldNames === undefined || oldNames.has(rule.name) ? oldStats.get(rule.name) : undefined
    if (prev === undefined) out.set(rule.name, emptyStats(rule, 0, nowMs))
    else if (keepsStats(prev, rule)) out.set(rule.name, prev)
    else {
      const sameGroups = sameList(prev.groupBy, rule.groupBy) && samePriority(prev.priority, rule.priority)
      out.set(rule.name, {
        windowStart: prev.windowStart,
        datapoints: prev.datapoints,
        series: prev.series.clone(),
        groupBy: rule.groupBy,
        groups: sameGroups ? new Map([...prev.groups].map(([k, g]) => [k, { ...g }])) : new Map(),
        droppedGroups: sameGroups ? new Set(prev.droppedGroups) : new Set(),
        shedDatapoints: prev.shedDatapoints,
        shedSeries: prev.shedSeries,
        priority: rule.priority,
        labelValues: keptLabelValues(prev, rule),
        lastMatchMs: prev.lastMatchMs,
        sinceMs: prev.sinceMs,
      })
    }
  }
  return out
}
