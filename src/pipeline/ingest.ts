import type { Outlet } from "../export/outlet.js"
import type { RuleCounts, SeriesBatch } from "../limits/batch.js"
import { type EnforceResult, enforce } from "../limits/enforce.js"
import type { LabelUsage } from "../limits/label-usage.js"
import type { ProtocolAdapter } from "../protocols/protocol.js"
import type { ConfigVersion } from "../reload/version.js"
import type { Instruments } from "../telemetry/metrics.js"
import type { ViolationLog } from "./violations.js"

export type IngestOutcome =
  | {
      readonly _tag: "Accepted"
      readonly received: number
      readonly forwarded: number
      /** Datapoints dropped by the limits (the OTLP partial-success count). */
      readonly dropped: number
    }
  | { readonly _tag: "Overloaded"; readonly retryAfterMs: number }

const RETRY_AFTER_MS = 1_000

const countRules = (telemetry: Instruments, counts: ReadonlyArray<RuleCounts>) => {
  for (const c of counts) {
    const labels = { rule: c.rule, action: c.action }
    if (c.passed > 0) telemetry.limitPassed.inc(labels, c.passed)
    if (c.dropped > 0) telemetry.limitDropped.inc(labels, c.dropped)
    if (c.wouldDrop > 0) telemetry.limitWouldDrop.inc(labels, c.wouldDrop)
    if (c.cardinalityExceeded > 0) telemetry.limitCardinalityExceeded.inc(labels, c.cardinalityExceeded)
    if (c.datapointsExceeded > 0) telemetry.limitDatapointsExceeded.inc(labels, c.datapointsExceeded)
    const rule = c.compiled
    if (rule === undefined) continue
    const tiers = c.tierDatapoints
    if (tiers !== undefined) {
      for (let t = 0; t < tiers.length; t++) {
        const n = tiers[t] as number
        const tier = rule.tiers[t]
        if (n > 0 && tier !== undefined)
          telemetry.limitTierDatapoints.inc(
            { rule: c.rule, tier: String(tier.atPercent), action: tier.action },
            n,
          )
      }
    }
    const limited = c.labelLimited
    if (limited !== undefined) {
      for (let k = 0; k < limited.length; k++) {
        const n = limited[k] as number
        const limit = rule.labelLimits[k]
        if (n > 0 && limit !== undefined)
          telemetry.limitLabelLimited.inc(
            { rule: c.rule, label: limit.name, action: rule.labelLimitAction },
            n,
          )
      }
    }
  }
}

/** How a batch is decided: `enforce` (the limits), or `matchOnly` for a router. */
export type Decide = (version: ConfigVersion, nowMs: number, batch: SeriesBatch) => EnforceResult

/**
 * The data path of one request, synchronous from decision to buffer: check that the outlet can take
 * it (else push back, before anything is counted, so the sender's retry is not counted twice), read
 * the active config version once, enforce the limits on the whole batch, rebuild the request from the
 * verdict and buffer it for the exporter of each endpoint it goes to.
 */
export const makeIngest =
  <Req>(
    adapter: ProtocolAdapter<Req, Uint8Array>,
    outlet: Outlet,
    telemetry: Instruments,
    currentVersion: () => ConfigVersion,
    violations: ViolationLog,
    now: () => number = Date.now,
    /** `-stats-labels`: usage by label of every request taken, governed or not. */
    labelUsage?: LabelUsage,
    decide: Decide = enforce,
  ) =>
  (req: Req, bytes: number): IngestOutcome => {
    const batch = adapter.toSeriesBatch(req)
    let total = 0
    for (let i = 0; i < batch.length; i++) total += batch.datapoints[i] as number
    const out = outlet
    if (!out.canTake(total, bytes)) {
      telemetry.receiverRefused.inc({ protocol: adapter.protocol, reason: "buffer_full" })
      return { _tag: "Overloaded", retryAfterMs: RETRY_AFTER_MS }
    }
    const at = now()
    const version = currentVersion()
    labelUsage?.observe(batch, at, version.limits.windowMs)
    const { verdict, counts } = decide(version, at, batch)
    const datapoints = out.deliver(adapter, req, batch, verdict, at, bytes, total)
    telemetry.datapointsReceived.inc({ protocol: adapter.protocol }, total)
    countRules(telemetry, counts)
    violations.add(counts)
    let dropped = 0
    for (const c of counts) dropped += c.dropped
    return { _tag: "Accepted", received: total, forwarded: datapoints, dropped }
  }
