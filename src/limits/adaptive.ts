import type { GroupStats, RuleStats } from "./stats.js"

/** The usage an `adaptive` rule sheds groups by. */
export type Dimension = "series" | "datapoints"

/** The rule's usage in `dimension` that still counts against its limit: what its live groups counted. */
export const activeUsage = (stats: RuleStats, dimension: Dimension): number =>
  dimension === "series" ? stats.series.size - stats.shedSeries : stats.datapoints - stats.shedDatapoints

/**
 * Marks groups of an `adaptive` rule dropped, the least important first (the highest rank, see
 * `adaptive_priority`; every group has rank 0 without it), and within one rank the largest in
 * `dimension` first (ties: the smaller group key), until the usage of the groups still flowing fits `max`. A dropped group's usage so far
 * is moved to `shedDatapoints` / `shedSeries`, and it stays dropped for the rest of the window.
 *
 * Stops early when no live group has any usage left in `dimension` (usage counted before a
 * `group_by` change belongs to no group and cannot be shed). Each mark scans the groups once.
 */
export const shedGroups = (stats: RuleStats, dimension: Dimension, max: number): void => {
  const bySeries = dimension === "series"
  while (activeUsage(stats, dimension) > max) {
    let bestKey = ""
    let best: GroupStats | undefined
    let bestUsage = 0
    let bestRank = -1
    for (const [key, g] of stats.groups) {
      const usage = bySeries ? g.series : g.datapoints
      if (usage === 0 || g.rank < bestRank) continue
      if (g.rank === bestRank && (usage < bestUsage || (usage === bestUsage && key > bestKey))) continue
      if (stats.droppedGroups.has(key)) continue
      best = g
      bestKey = key
      bestUsage = usage
      bestRank = g.rank
    }
    if (best === undefined) return
    stats.droppedGroups.add(bestKey)
    stats.shedDatapoints += best.datapoints
    stats.shedSeries += best.series
  }
}
