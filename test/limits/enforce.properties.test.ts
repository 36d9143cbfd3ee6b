import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { enforce } from "../../src/limits/enforce.js"
import type { RuleStats } from "../../src/limits/stats.js"
import type { ConfigVersion } from "../../src/reload/version.js"
import { batchOf, type Entry, run, versionOf } from "./engine.js"
import { type Action, type LimitsModelSpec, makeModel, type RuleSpec, yamlOf } from "./model.js"

const ACTIONS: ReadonlyArray<Action> = ["log", "drop", "adaptive", "sample", "strip_labels"]

const limitsArb = (actions: ReadonlyArray<Action>) =>
  fc
    .record({
      maxDatapointsRate: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 12 })),
      maxCardinality: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5 })),
      action: fc.constantFrom(...actions),
      groupBy: fc.constantFrom<ReadonlyArray<string>>([], ["svc"], ["svc", "env"]),
      sampleRate: fc.constantFrom(0.25, 0.5, 1),
    })
    .map((r) => ({ ...r, groupBy: r.action === "adaptive" && r.groupBy.length === 0 ? ["svc"] : r.groupBy }))

const ruleArb = (actions: ReadonlyArray<Action>) =>
  fc.record({
    metricName: fc.constantFrom(undefined, "m.*", "m", "n|o", "x"),
    labels: fc.constantFrom<Readonly<Record<string, string>>>(
      {},
      { env: "prod" },
      { env: "*" },
      { env: "" },
      { svc: "A" },
    ),
    limits: limitsArb(actions),
  })

const specArb = (actions: ReadonlyArray<Action> = ACTIONS): fc.Arbitrary<LimitsModelSpec> =>
  fc
    .record({
      windowMs: fc.constantFrom(1_000, 10_000, 60_000),
      rules: fc.array(ruleArb(actions), { maxLength: 3 }),
      defaults: fc.option(limitsArb(actions), { nil: undefined }),
    })
    .map(({ windowMs, rules, defaults }) => ({
      windowMs,
      defaults,
      rules: rules.map(
        (r, i): RuleSpec => ({ name: `r${i}`, metricName: r.metricName, labels: r.labels, ...r.limits }),
      ),
    }))

const entryArb: fc.Arbitrary<Entry> = fc
  .record({
    name: fc.constantFrom("m", "mm", "n", "o", "x"),
    id: fc.integer({ min: 0, max: 6 }),
    env: fc.constantFrom(undefined, "prod", "dev", ""),
    svc: fc.constantFrom(undefined, "A", "B", "C"),
    dps: fc.oneof(
      { weight: 1, arbitrary: fc.constant(0) },
      { weight: 6, arbitrary: fc.integer({ min: 1, max: 5 }) },
    ),
  })
  .map(({ name, id, env, svc, dps }) => {
    const labels: Record<string, string> = { id: String(id) }
    if (env !== undefined) labels.env = env
    if (svc !== undefined) labels.svc = svc
    return [name, labels, dps] as const
  })

/** Batches with the time they arrive at: steps of 0 to 70 s from a start inside some minute. */
const batchesArb = fc
  .tuple(
    fc.integer({ min: 0, max: 59_999 }),
    fc.array(
      fc.tuple(
        fc.constantFrom(0, 0, 250, 1_000, 9_000, 30_000, 70_000),
        fc.array(entryArb, { maxLength: 12 }),
      ),
      { minLength: 1, maxLength: 6 },
    ),
  )
  .map(([start, steps]) => {
    let t = 1_700_000_040_000 + start
    return steps.map(([dt, entries]) => {
      t += dt
      return { t, entries }
    })
  })

const engineSnapshot = (v: ConfigVersion) =>
  Object.fromEntries(
    [...v.stats].map(([name, st]: [string, RuleStats]) => [
      name,
      {
        windowStart: st.windowStart,
        datapoints: st.datapoints,
        series: st.series.size,
        groups: Object.fromEntries(
          [...st.groups].map(([k, g]) => [k, { datapoints: g.datapoints, series: g.series, rank: g.rank }]),
        ),
        dropped: [...st.droppedGroups].sort(),
        shedDatapoints: st.shedDatapoints,
        shedSeries: st.shedSeries,
      },
    ]),
  )

/** The model's initial snapshot has windowStart 0 for rules never rolled; so does the engine's. */
const params = { numRuns: 300 }

describe("enforce: properties", () => {
  it("agrees with the reference model, datapoint by datapoint (verdicts, counts, stats), real and dry-run", () => {
    fc.assert(
      fc.property(specArb(), batchesArb, fc.boolean(), (spec, batches, dryRun) => {
        const v = versionOf(yamlOf(spec), { dryRun })
        const model = makeModel(spec, dryRun)
        for (const { t, entries } of batches) {
          expect(run(v, t, entries)).toEqual(model.run(t, entries))
          expect(engineSnapshot(v)).toEqual(model.snapshot())
        }
      }),
      params,
    )
  })

  it("dry-run never drops or strips, accounts exactly as the real run, and wouldDrop = dropped + stripped", () => {
    fc.assert(
      fc.property(specArb(), batchesArb, (spec, batches) => {
        const real = versionOf(yamlOf(spec))
        const dry = versionOf(yamlOf(spec), { dryRun: true })
        for (const { t, entries } of batches) {
          const r = enforce(real, t, batchOf(entries))
          const d = enforce(dry, t, batchOf(entries))
          entries.forEach(([, , dps], i) => {
            expect(d.verdict.pass[i]).toBe(dps)
            expect(d.verdict.strip[i]).toBe(0)
          })
          expect(d.counts.map((c) => c.rule)).toEqual(r.counts.map((c) => c.rule))
          r.counts.forEach((rc, k) => {
            const dc = d.counts[k]
            let stripped = 0
            entries.forEach(([, , dps], i) => {
              if (r.verdict.rule[i]?.name === rc.rule && r.verdict.strip[i] === 1) {
                stripped += dps - (r.verdict.pass[i] as number)
              }
            })
            expect(dc?.dropped).toBe(0)
            expect(dc?.wouldDrop).toBe(rc.dropped + stripped)
            expect(dc?.passed).toBe(rc.passed + rc.dropped)
            expect(dc?.cardinalityExceeded).toBe(rc.cardinalityExceeded)
            expect(dc?.datapointsExceeded).toBe(rc.datapointsExceeded)
          })
          expect(engineSnapshot(dry)).toEqual(engineSnapshot(real))
        }
      }),
      params,
    )
  })

  it("drop: per rule and window, admitted series <= max_cardinality and admitted datapoints <= max_datapoints_rate", () => {
    fc.assert(
      fc.property(specArb(["drop"]), batchesArb, (spec, batches) => {
        const v = versionOf(yamlOf(spec))
        const { keyOf } = makeModel(spec, false)
        const limits = new Map(
          [...v.limits.rules, ...(v.limits.defaults ? [v.limits.defaults] : [])].map((r) => [r.name, r]),
        )
        const admitted = new Map<string, { window: number; series: Set<string>; datapoints: number }>()
        for (const { t, entries } of batches) {
          const window = Math.floor(t / v.limits.windowMs)
          const out = enforce(v, t, batchOf(entries))
          entries.forEach((e, i) => {
            const rule = out.verdict.rule[i]
            const passed = out.verdict.pass[i] as number
            if (rule === undefined || passed === 0) return
            let a = admitted.get(rule.name)
            if (a === undefined || a.window !== window) {
              a = { window, series: new Set(), datapoints: 0 }
              admitted.set(rule.name, a)
            }
            a.series.add(keyOf(e))
            a.datapoints += passed
            const r = limits.get(rule.name)
            if (r === undefined) expect.fail("unknown rule")
            if (r.maxCardinality > 0) expect(a.series.size).toBeLessThanOrEqual(r.maxCardinality)
            if (r.maxDatapointsRate > 0) expect(a.datapoints).toBeLessThanOrEqual(r.maxDatapointsRate)
          })
        }
      }),
      params,
    )
  })

  it("a series admitted earlier in a window keeps passing in full under a pure cardinality limit", () => {
    const noRate = specArb(["log", "drop", "sample", "strip_labels"]).map((spec) => ({
      ...spec,
      rules: spec.rules.map((r) => ({ ...r, maxDatapointsRate: 0 })),
      defaults: spec.defaults && { ...spec.defaults, maxDatapointsRate: 0 },
    }))
    fc.assert(
      fc.property(noRate, batchesArb, (spec, batches) => {
        const v = versionOf(yamlOf(spec))
        const { keyOf } = makeModel(spec, false)
        let window = -1
        const seen = new Set<string>()
        for (const { t, entries } of batches) {
          if (Math.floor(t / spec.windowMs) !== window) seen.clear()
          window = Math.floor(t / spec.windowMs)
          const out = enforce(v, t, batchOf(entries))
          entries.forEach((e, i) => {
            const k = keyOf(e)
            if (seen.has(k)) {
              expect(out.verdict.pass[i]).toBe(e[2])
              expect(out.verdict.strip[i]).toBe(0)
            }
            if (
              out.verdict.rule[i] !== undefined &&
              e[2] > 0 &&
              out.verdict.pass[i] === e[2] &&
              out.verdict.strip[i] === 0
            ) {
              // Passed unchanged in full: admitted, unless log/sample let a violating series through.
              const action = out.verdict.rule[i]?.action
              if (action === "drop" || action === "strip_labels") seen.add(k)
            }
          })
        }
      }),
      params,
    )
  })

  it("drop and sample: once a series loses a datapoint in a window, it loses all its later ones there", () => {
    fc.assert(
      fc.property(specArb(["drop", "sample"]), batchesArb, (spec, batches) => {
        const v = versionOf(yamlOf(spec))
        const { keyOf } = makeModel(spec, false)
        let window = -1
        const cut = new Set<string>()
        for (const { t, entries } of batches) {
          if (Math.floor(t / spec.windowMs) !== window) cut.clear()
          window = Math.floor(t / spec.windowMs)
          const out = enforce(v, t, batchOf(entries))
          entries.forEach((e, i) => {
            const k = keyOf(e)
            if (cut.has(k)) expect(out.verdict.pass[i]).toBe(0)
            if ((out.verdict.pass[i] as number) < e[2]) cut.add(k)
          })
        }
      }),
      params,
    )
  })

  it("sample keeps or drops a series as a whole, deterministically; sample_rate 1 keeps everything", () => {
    // Under a pure cardinality limit a series is admitted (all pass) or refused for the whole window,
    // and then its hash keeps all or none of it: never a partial entry, never both in one window.
    const noRate = specArb(["sample"]).map((spec) => ({
      ...spec,
      rules: spec.rules.map((r) => ({ ...r, maxDatapointsRate: 0 })),
      defaults: spec.defaults && { ...spec.defaults, maxDatapointsRate: 0 },
    }))
    fc.assert(
      fc.property(noRate, batchesArb, (spec, batches) => {
        const a = versionOf(yamlOf(spec))
        const b = versionOf(yamlOf(spec))
        const { keyOf } = makeModel(spec, false)
        let window = -1
        const fate = new Map<string, boolean>()
        for (const { t, entries } of batches) {
          if (Math.floor(t / spec.windowMs) !== window) fate.clear()
          window = Math.floor(t / spec.windowMs)
          const out = enforce(a, t, batchOf(entries))
          expect(enforce(b, t, batchOf(entries))).toEqual(out)
          entries.forEach((e, i) => {
            const rule = out.verdict.rule[i]
            const passed = out.verdict.pass[i] as number
            if (rule === undefined || e[2] === 0) return
            if (rule.sampleRate === 1) expect(passed).toBe(e[2])
            expect(passed === 0 || passed === e[2]).toBe(true)
            const k = keyOf(e)
            const kept = passed === e[2]
            expect(fate.get(k) ?? kept).toBe(kept)
            fate.set(k, kept)
          })
        }
      }),
      params,
    )
  })

  it("log and strip_labels never drop; only strip_labels strips; pass[i] <= datapoints[i] always", () => {
    fc.assert(
      fc.property(specArb(), batchesArb, (spec, batches) => {
        const v = versionOf(yamlOf(spec))
        for (const { t, entries } of batches) {
          const out = enforce(v, t, batchOf(entries))
          entries.forEach(([, , dps], i) => {
            const pass = out.verdict.pass[i] as number
            const strip = out.verdict.strip[i]
            const action = out.verdict.rule[i]?.action
            expect(pass).toBeLessThanOrEqual(dps)
            if (strip === 1) {
              expect(action).toBe("strip_labels")
              expect(pass).toBeLessThan(dps)
            }
            if (action === "log" || action === undefined) expect(pass).toBe(dps)
            if (action === "strip_labels") expect(pass === dps || strip === 1).toBe(true)
          })
          for (const c of out.counts) {
            if (c.action === "log" || c.action === "strip_labels") expect(c.dropped).toBe(0)
            let total = 0
            entries.forEach(([, , dps], i) => {
              if (out.verdict.rule[i]?.name === c.rule) total += dps
            })
            expect(c.passed + c.dropped).toBe(total)
          }
        }
      }),
      params,
    )
  })

  it("enforce is deterministic: the same batches on fresh equal versions give the same results", () => {
    fc.assert(
      fc.property(specArb(), batchesArb, fc.boolean(), (spec, batches, dryRun) => {
        const a = versionOf(yamlOf(spec), { dryRun })
        const b = versionOf(yamlOf(spec), { dryRun })
        for (const { t, entries } of batches) expect(run(a, t, entries)).toEqual(run(b, t, entries))
        expect(engineSnapshot(a)).toEqual(engineSnapshot(b))
      }),
      params,
    )
  })

  it("adaptive: the groups still flowing fit the limits after every batch; a dropped group stays dropped", () => {
    fc.assert(
      fc.property(specArb(["adaptive"]), batchesArb, (spec, batches) => {
        const v = versionOf(yamlOf(spec))
        let window = -1
        const droppedBefore = new Map<string, ReadonlyArray<string>>()
        for (const { t, entries } of batches) {
          if (Math.floor(t / spec.windowMs) !== window) droppedBefore.clear()
          window = Math.floor(t / spec.windowMs)
          enforce(v, t, batchOf(entries))
          for (const rule of [...v.limits.rules, ...(v.limits.defaults ? [v.limits.defaults] : [])]) {
            const st = v.stats.get(rule.name) as RuleStats
            if (rule.maxCardinality > 0)
              expect(st.series.size - st.shedSeries).toBeLessThanOrEqual(rule.maxCardinality)
            if (rule.maxDatapointsRate > 0) {
              expect(st.datapoints - st.shedDatapoints).toBeLessThanOrEqual(rule.maxDatapointsRate)
            }
            for (const g of droppedBefore.get(rule.name) ?? []) expect(st.droppedGroups.has(g)).toBe(true)
            droppedBefore.set(rule.name, [...st.droppedGroups])
          }
        }
      }),
      params,
    )
  })
})
