import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { ConfigVersion } from "../../src/reload/version.js"
import { type Entry, run, versionOf } from "./engine.js"
import {
  type Action,
  type LimitsModelSpec,
  makeModel,
  type RuleSpec,
  type TierSpec,
  yamlOf,
} from "./model.js"

/**
 * The engine held to the reference model on rules with the original's advanced keys: tiers,
 * label limits (strip or drop) and adaptive priorities, on random rule files and random traffic,
 * in real and dry-run mode, with reloads of the same file between batches (the reconciled version
 * must carry every piece of state on).
 */

const TIER_ACTIONS: ReadonlyArray<TierSpec["action"]> = ["log", "drop", "sample", "strip_labels"]

const tiersArb: fc.Arbitrary<ReadonlyArray<TierSpec>> = fc
  .uniqueArray(fc.integer({ min: 1, max: 100 }), { maxLength: 3 })
  .chain((ats) =>
    fc.tuple(
      ...[...ats]
        .sort((a, b) => a - b)
        .map((atPercent) =>
          fc.record({
            atPercent: fc.constant(atPercent),
            action: fc.constantFrom(...TIER_ACTIONS),
            sampleRate: fc.constantFrom(0.25, 0.5),
          }),
        ),
    ),
  )

const SEVERITIES = ["critical", "warning", "info", "debug"]

const advancedRuleArb = (name: string): fc.Arbitrary<RuleSpec> =>
  fc
    .record({
      metricName: fc.constantFrom(undefined, "m.*", "m"),
      maxDatapointsRate: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 12 })),
      maxCardinality: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 6 })),
      action: fc.constantFrom<Action>("log", "drop", "sample", "strip_labels", "adaptive"),
      sampleRate: fc.constantFrom(0.25, 0.5, 1),
      tiers: tiersArb,
      userLimit: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
      teamLimit: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
      labelLimitAction: fc.constantFrom<"strip" | "drop">("strip", "drop"),
      order: fc.subarray(SEVERITIES, { minLength: 1 }),
      defaultPriority: fc.nat(4),
      withPriority: fc.boolean(),
    })
    .map((r): RuleSpec => {
      const labelLimits = [
        ...(r.userLimit === undefined ? [] : [{ name: "user", max: r.userLimit }]),
        ...(r.teamLimit === undefined ? [] : [{ name: "team", max: r.teamLimit }]),
      ]
      const adaptive = r.action === "adaptive"
      return {
        name,
        metricName: r.metricName,
        labels: {},
        // Tiers are shares of the limits: a rule has at least one.
        maxDatapointsRate: r.maxDatapointsRate === 0 && r.maxCardinality === 0 ? 5 : r.maxDatapointsRate,
        maxCardinality: r.maxCardinality,
        action: r.action,
        groupBy: adaptive ? ["svc", "sev"] : [],
        sampleRate: r.sampleRate,
        tiers: r.tiers,
        labelLimits,
        labelLimitAction: r.labelLimitAction,
        ...(adaptive && r.withPriority
          ? {
              priority: {
                label: "sev",
                order: r.order,
                defaultPriority: Math.min(r.defaultPriority, r.order.length),
              },
            }
          : {}),
      }
    })

const specArb: fc.Arbitrary<LimitsModelSpec> = fc
  .record({
    windowMs: fc.constantFrom(10_000, 60_000),
    first: advancedRuleArb("a0"),
    second: fc.option(advancedRuleArb("a1"), { nil: undefined }),
  })
  .map(({ windowMs, first, second }) => ({
    windowMs,
    defaults: undefined,
    rules: second === undefined ? [first] : [first, second],
  }))

/** Single data points (as OTLP sends them, and as the model decides shaped rules). */
const entryArb: fc.Arbitrary<Entry> = fc
  .record({
    name: fc.constantFrom("m", "mm", "x"),
    id: fc.integer({ min: 0, max: 6 }),
    user: fc.constantFrom(undefined, "u0", "u1", "u2", "u3", "u4"),
    team: fc.constantFrom(undefined, "t0", "t1", "t2"),
    pod: fc.constantFrom(undefined, "p0", "p1"),
    svc: fc.constantFrom("A", "B", "C"),
    sev: fc.constantFrom(undefined, ...SEVERITIES),
    dps: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 8, arbitrary: fc.constant(1) }),
  })
  .map(({ name, id, dps, ...rest }) => {
    const labels: Record<string, string> = { id: String(id) }
    for (const [k, v] of Object.entries(rest)) if (v !== undefined) labels[k] = v
    return [name, labels, dps] as const
  })

const batchesArb = fc
  .tuple(
    fc.integer({ min: 0, max: 59_999 }),
    fc.array(
      fc.tuple(
        fc.constantFrom(0, 0, 500, 5_000, 70_000),
        fc.boolean(),
        fc.array(entryArb, { maxLength: 25 }),
      ),
      { minLength: 1, maxLength: 6 },
    ),
  )
  .map(([start, steps]) => {
    let t = 1_700_000_040_000 + start
    return steps.map(([dt, reload, entries]) => {
      t += dt
      return { t, reload, entries }
    })
  })

describe("enforce with tiers, label limits and adaptive priorities: the reference model", () => {
  it("agrees with the model datapoint by datapoint (verdicts, stripped labels, per-tier and per-label counts), real and dry-run, across reloads of the same file", () => {
    fc.assert(
      fc.property(specArb, batchesArb, fc.boolean(), (spec, batches, dryRun) => {
        const yaml = yamlOf(spec)
        let v: ConfigVersion = versionOf(yaml, { dryRun })
        const model = makeModel(spec, dryRun)
        for (const { t, reload, entries } of batches) {
          if (reload) v = versionOf(yaml, { dryRun, previous: v })
          expect(run(v, t, entries)).toEqual(model.run(t, entries))
        }
      }),
      { numRuns: 400 },
    )
  })

  it("the generated files load: every key of the model is a key of limits.yaml", () => {
    fc.assert(
      fc.property(specArb, (spec) => {
        const v = versionOf(yamlOf(spec))
        expect(v.rulesCount).toBe(spec.rules.length)
      }),
      { numRuns: 50 },
    )
  })
})
