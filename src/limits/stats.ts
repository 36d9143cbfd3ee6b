import { runToEnd, type Steps } from "../threads/slices.js"
import type { CompiledLimits, CompiledRule } from "./rules.js"
import { SeriesSet } from "./series-set.js"
import { windowStartOf } from "./window.js"

/** Per-group accounting of a rule with `group_by`: what the group counted toward the rule's usage. */
export interface GroupStats {
  datapoints: number
  /** Series first counted in this window under this group. */
  series: number
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
  readonly series: SeriesSet
  /** The `group_by` the groups below were computed with. */
  readonly groupBy: ReadonlyArray<string>
  readonly groups: Map<string, GroupStats>
  /** `adaptive`: groups dropped for the rest of the window. */
  readonly droppedGroups: Set<string>
  /** `adaptive`: datapoints that dropped groups had counted when they were dropped. */
  shedDatapoints: number
  /** `adaptive`: series that dropped groups had counted when they were dropped. */
  shedSeries: number
}

export type StatsByRule = ReadonlyMap<string, RuleStats>

export const emptyStats = (rule: CompiledRule, windowStart = 0): RuleStats => ({
  windowStart,
  datapoints: 0,
  series: new SeriesSet(),
  groupBy: rule.groupBy,
  groups: new Map(),
  droppedGroups: new Set(),
  shedDatapoints: 0,
  shedSeries: 0,
})

/** What a rule counted in the window that is current at some instant (its `{rule}` gauges). */
export interface RuleUsage {
  readonly rule: string
  readonly cardinality: number
  readonly datapoints: number
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
  for (const [rule, s] of version.stats)
    out.push({ rule, ...currentUsage(s, version.limits.windowMs, nowMs) })
  return out
}

/** Every rule stats are kept for: the rules in file order, then `default` when it is set. */
export const accountedRules = (limits: CompiledLimits): ReadonlyArray<CompiledRule> =>
  limits.defaults === undefined ? limits.rules : [...limits.rules, limits.defaults]

const sameList = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i])

/**
 * Carries rule stats across a reload (LIMITS.md, "Reload and stats"). Pure and total: the inputs are
 * not modified.
 *
 * - a rule in both keeps its stats object; its new limits apply from the next datapoint on;
 * - if its `group_by` changed, its per-group stats and dropped groups start empty, its totals are kept
 *   (with `shedDatapoints`/`shedSeries`, so usage that was shed stays out of the budget);
 * - a rule only in the old rules is gone; a rule only in the new rules starts empty;
 * - a rename is a removal plus an addition.
 */
export const reconcile = (
  oldStats: StatsByRule,
  oldRules: ReadonlyArray<CompiledRule>,
  newRules: ReadonlyArray<CompiledRule>,
): StatsByRule => runToEnd(reconcileSteps(oldStats, oldRules, newRules))

/** `reconcile`, one rule per step (see `threads/slices.ts`). */
export function* reconcileSteps(
  oldStats: StatsByRule,
  oldRules: ReadonlyArray<CompiledRule>,
  newRules: ReadonlyArray<CompiledRule>,
): Steps<StatsByRule> {
  const oldNames = new Set<string>()
  for (const r of oldRules) {
    oldNames.add(r.name)
    yield
  }
  const out = new Map<string, RuleStats>()
  for (const rule of newRules) {
    yield
    const prev = oldNames.has(rule.name) ? oldStats.get(rule.name) : undefined
    if (prev === undefined) out.set(rule.name, emptyStats(rule))
    else if (sameList(prev.groupBy, rule.groupBy)) out.set(rule.name, prev)
    else
      out.set(rule.name, {
        windowStart: prev.windowStart,
        datapoints: prev.datapoints,
        series: prev.series.clone(),
        groupBy: rule.groupBy,
        groups: new Map(),
        droppedGroups: new Set(),
        shedDatapoints: prev.shedDatapoints,
        shedSeries: prev.shedSeries,
      })
  }
  return out
}
