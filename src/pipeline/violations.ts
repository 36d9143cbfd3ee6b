import { Effect, Schedule } from "effect"
import type { RuleCounts } from "../limits/batch.js"
import { logWarn } from "../telemetry/log.js"

interface Totals {
  action: string
  cardinalityExceeded: number
  datapointsExceeded: number
  dropped: number
  wouldDrop: number
}

/**
 * Violations aggregated per rule and logged once per interval (one line per rule that had any),
 * so a flood of violating datapoints costs one log line per rule per interval, not one per datapoint.
 */
export class ViolationLog {
  private totals = new Map<string, Totals>()

  add(counts: ReadonlyArray<RuleCounts>): void {
    for (const c of counts) {
      if (c.cardinalityExceeded === 0 && c.datapointsExceeded === 0 && c.dropped === 0 && c.wouldDrop === 0)
        continue
      let t = this.totals.get(c.rule)
      if (t === undefined) {
        t = { action: c.action, cardinalityExceeded: 0, datapointsExceeded: 0, dropped: 0, wouldDrop: 0 }
        this.totals.set(c.rule, t)
      }
      t.action = c.action
      t.cardinalityExceeded += c.cardinalityExceeded
      t.datapointsExceeded += c.datapointsExceeded
      t.dropped += c.dropped
      t.wouldDrop += c.wouldDrop
    }
  }

  /** Takes what accumulated since the last call. */
  drain(): Map<string, Totals> {
    const out = this.totals
    this.totals = new Map()
    return out
  }

  /** Logs the accumulated violations every `intervalMs` until interrupted (and once more at the end). */
  run(intervalMs: number) {
    const flush = Effect.suspend(() =>
      Effect.forEach(this.drain(), ([rule, t]) =>
        logWarn("limit exceeded", {
          rule,
          action: t.action,
          cardinality_exceeded: t.cardinalityExceeded,
          datapoints_exceeded: t.datapointsExceeded,
          dropped: t.dropped,
          would_drop: t.wouldDrop,
          interval_seconds: intervalMs / 1000,
        }),
      ),
    )
    return flush.pipe(Effect.repeat(Schedule.spaced(intervalMs)), Effect.ensuring(flush), Effect.asVoid)
  }
}
