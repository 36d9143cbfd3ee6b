import type { RuleStats } from "./stats.js"

/**
 * Start of the tumbling window that contains `nowMs`. Windows are aligned to the wall clock (a 1m
 * window starts at :00), so replicas agree on them.
 */
export const windowStartOf = (nowMs: number, windowMs: number): number =>
  Math.floor(nowMs / windowMs) * windowMs

/**
 * Moves a rule's stats to the window starting at `windowStart` when they are for another one
 * (later, or earlier after a clock step back): every count, the series, the groups and the dropped
 * groups start empty. No-op when they are already for that window.
 */
export const rollWindow = (stats: RuleStats, windowStart: number): void => {
  if (stats.windowStart === windowStart) return
  stats.windowStart = windowStart
  stats.datapoints = 0
  stats.series.clear()
  stats.groups.clear()
  stats.droppedGroups.clear()
  stats.shedDatapoints = 0
  stats.shedSeries = 0
  if (stats.labelValues.size > 0) stats.labelValues.clear()
}
