import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { type CompiledRule, NO_ADVANCED_KEYS } from "../../src/limits/rules.js"
import { SeriesSet } from "../../src/limits/series-set.js"
import { emptyStats, type RuleStats, reconcile, type StatsByRule } from "../../src/limits/stats.js"

const seriesOf = (keys: ReadonlyArray<string>): SeriesSet => {
  const s = new SeriesSet()
  for (const k of keys) s.add(k)
  return s
}

/** The series keys each generated stats object was built from, to check membership after reconcile. */
const keysOf = new WeakMap<RuleStats, ReadonlyArray<string>>()

const rule = (
  name: string,
  groupBy: ReadonlyArray<string> = [],
  priority: CompiledRule["priority"] = undefined,
  limited: ReadonlyArray<string> = [],
): CompiledRule => ({
  name,
  metricName: undefined,
  metricNameSource: undefined,
  metricNamePrefix: "",
  labels: [],
  maxDatapointsRate: 0,
  maxCardinality: 10,
  action: "drop",
  groupBy,
  sampleRate: 1,
  stripLabels: [],
  ...NO_ADVANCED_KEYS,
  priority,
  labelLimits: limited.map((l) => ({ name: l, max: 3 })),
})

const NAMES = ["a", "b", "c", "d", "e", "f"]
const GROUP_BYS: ReadonlyArray<ReadonlyArray<string>> = [[], ["service"], ["service", "env"], ["env"]]
/** `adaptive_priority` settings: none, and three that rank groups differently (compiled alike twice). */
const PRIORITIES: ReadonlyArray<CompiledRule["priority"]> = [
  undefined,
  { label: "env", rank: new Map([["prod", 0]]), defaultRank: 1 },
  { label: "env", rank: new Map([["prod", 0]]), defaultRank: 1 },
  { label: "env", rank: new Map([["prod", 1]]), defaultRank: 0 },
  {
    label: "env",
    rank: new Map([
      ["prod", 0],
      ["dev", 1],
    ]),
    defaultRank: 2,
  },
]
const LIMITED: ReadonlyArray<ReadonlyArray<string>> = [[], ["user"], ["user", "pod"], ["pod"]]
const priorityKey = (p: CompiledRule["priority"]) =>
  p === undefined ? "" : JSON.stringify([p.label, [...p.rank], p.defaultRank])

const rulesArb = fc
  .uniqueArray(fc.constantFrom(...NAMES), { maxLength: NAMES.length })
  .chain((names) =>
    fc
      .tuple(
        ...names.map((n) =>
          fc
            .tuple(fc.constantFrom(...GROUP_BYS), fc.constantFrom(...PRIORITIES), fc.constantFrom(...LIMITED))
            .map(([g, p, l]) => rule(n, g, p, l)),
        ),
      )
      .map((rs) => rs as Array<CompiledRule>),
  )

const statsFor = (r: CompiledRule): fc.Arbitrary<RuleStats> =>
  fc
    .record({
      windowStart: fc.nat(),
      datapoints: fc.nat(),
      series: fc.uniqueArray(fc.string(), { maxLength: 5 }),
      groups: fc.array(fc.tuple(fc.string(), fc.nat(), fc.nat()), { maxLength: 3 }),
      dropped: fc.uniqueArray(fc.string(), { maxLength: 3 }),
      shed: fc.tuple(fc.nat(), fc.nat()),
      ranks: fc.array(fc.nat(3), { maxLength: 3 }),
      values: fc.array(
        fc.tuple(fc.constantFrom("user", "pod"), fc.uniqueArray(fc.string(), { maxLength: 3 })),
        {
          maxLength: 2,
        },
      ),
      times: fc.tuple(fc.nat(), fc.nat()),
    })
    .map((s) => {
      const stats: RuleStats = {
        windowStart: s.windowStart,
        datapoints: s.datapoints,
        series: seriesOf(s.series),
        groupBy: r.groupBy,
        groups: new Map(
          s.groups.map(([k, d, n], i) => [k, { datapoints: d, series: n, rank: s.ranks[i] ?? 0 }]),
        ),
        droppedGroups: new Set(s.dropped),
        shedDatapoints: s.shed[0],
        shedSeries: s.shed[1],
        priority: r.priority,
        labelValues: new Map(
          s.values.filter(([l]) => r.labelLimits.some((x) => x.name === l)).map(([l, v]) => [l, new Set(v)]),
        ),
        lastMatchMs: s.times[0],
        sinceMs: s.times[1],
      }
      keysOf.set(stats, s.series)
      return stats
    })

/** Old rules with stats for each, and any new rules. */
const scenario = fc.tuple(rulesArb, rulesArb).chain(([oldRules, newRules]) =>
  fc.tuple(...oldRules.map(statsFor)).map((stats) => ({
    oldRules,
    newRules,
    oldStats: new Map(oldRules.map((r, i) => [r.name, stats[i] as RuleStats])) as StatsByRule,
  })),
)

const snapshot = (stats: StatsByRule) =>
  [...stats].map(([k, s]) => [
    k,
    s.windowStart,
    s.datapoints,
    s.series.clone(),
    [...s.groupBy],
    [...s.groups].map(([g, v]) => [g, { ...v }]),
    [...s.droppedGroups],
    s.shedDatapoints,
    s.shedSeries,
    [...s.labelValues].map(([l, v]) => [l, [...v]]),
    s.lastMatchMs,
    s.sinceMs,
  ])

describe("reconcile (docs/limits.md: Reload and stats)", () => {
  it("law: the result's keys are exactly the new rule names", () => {
    fc.assert(
      fc.property(scenario, ({ oldStats, oldRules, newRules }) => {
        expect([...reconcile(oldStats, oldRules, newRules).keys()]).toEqual(newRules.map((r) => r.name))
      }),
    )
  })

  it("law: unchanged rules give back the very same stats", () => {
    fc.assert(
      fc.property(scenario, ({ oldStats, oldRules }) => {
        const out = reconcile(oldStats, oldRules, oldRules)
        for (const r of oldRules) expect(out.get(r.name)).toBe(oldStats.get(r.name))
      }),
    )
  })

  it("law: a retained rule keeps its stats; a changed shaping key resets only the state it shapes", () => {
    fc.assert(
      fc.property(scenario, ({ oldStats, oldRules, newRules }) => {
        const out = reconcile(oldStats, oldRules, newRules)
        for (const r of newRules) {
          const before = oldRules.find((o) => o.name === r.name)
          const prev = oldStats.get(r.name)
          const now = out.get(r.name) as RuleStats
          if (before === undefined || prev === undefined) continue
          const sameGroups =
            before.groupBy.join("\u0000") === r.groupBy.join("\u0000") &&
            priorityKey(before.priority) === priorityKey(r.priority)
          const limited = new Set(r.labelLimits.map((l) => l.name))
          const sameValues = [...prev.labelValues.keys()].every((l) => limited.has(l))
          if (sameGroups && sameValues) {
            expect(now).toBe(prev)
            continue
          }
          // The totals, the series and the last match stay.
          expect(now.windowStart).toBe(prev.windowStart)
          expect(now.datapoints).toBe(prev.datapoints)
          expect(now.shedDatapoints).toBe(prev.shedDatapoints)
          expect(now.shedSeries).toBe(prev.shedSeries)
          expect(now.lastMatchMs).toBe(prev.lastMatchMs)
          expect(now.sinceMs).toBe(prev.sinceMs)
          expect(now.series).not.toBe(prev.series)
          expect(now.series.size).toBe(prev.series.size)
          expect(now.series.equals(prev.series)).toBe(true)
          expect(now.series).toBeInstanceOf(SeriesSet)
          for (const k of keysOf.get(prev) ?? []) expect((now.series as SeriesSet).has(k)).toBe(true)
          expect(now.groupBy).toEqual(r.groupBy)
          expect(now.priority).toBe(r.priority)
          // Groups (with their ranks) stay only when group_by and adaptive_priority are the same.
          if (sameGroups) {
            expect([...now.groups]).toEqual([...prev.groups])
            expect(now.groups).not.toBe(prev.groups)
            expect([...now.droppedGroups]).toEqual([...prev.droppedGroups])
          } else {
            expect(now.groups.size).toBe(0)
            expect(now.droppedGroups.size).toBe(0)
          }
          // Value sets stay for the labels still limited, and only for them.
          for (const [l, values] of prev.labelValues) {
            if (limited.has(l)) expect([...(now.labelValues.get(l) ?? [])]).toEqual([...values])
            else expect(now.labelValues.has(l)).toBe(false)
          }
          for (const l of now.labelValues.keys()) expect(limited.has(l)).toBe(true)
        }
      }),
    )
  })

  it("law: nothing of a removed rule survives, and a new rule starts empty", () => {
    fc.assert(
      fc.property(scenario, ({ oldStats, oldRules, newRules }) => {
        const out = reconcile(oldStats, oldRules, newRules)
        const newNames = new Set(newRules.map((r) => r.name))
        const kept = new Set(out.values())
        for (const r of oldRules) {
          if (newNames.has(r.name)) continue
          expect(out.has(r.name)).toBe(false)
          const s = oldStats.get(r.name) as RuleStats
          expect(kept.has(s)).toBe(false)
          for (const o of out.values()) {
            expect(o.series).not.toBe(s.series)
            expect(o.groups).not.toBe(s.groups)
            expect(o.droppedGroups).not.toBe(s.droppedGroups)
            expect(o.labelValues).not.toBe(s.labelValues)
          }
        }
        for (const r of newRules) {
          if (oldRules.some((o) => o.name === r.name)) continue
          expect(out.get(r.name)).toEqual(emptyStats(r))
          expect(reconcile(oldStats, oldRules, newRules, 1234).get(r.name)?.sinceMs).toBe(1234)
        }
      }),
    )
  })

  it("law: reconcile never modifies its inputs", () => {
    fc.assert(
      fc.property(scenario, ({ oldStats, oldRules, newRules }) => {
        const before = snapshot(oldStats)
        const rulesBefore = JSON.stringify([oldRules, newRules])
        reconcile(oldStats, oldRules, newRules)
        expect(snapshot(oldStats)).toEqual(before)
        expect(JSON.stringify([oldRules, newRules])).toBe(rulesBefore)
      }),
    )
  })

  it("rules kept in the same order with their stats as they are give back the very stats; a new order a new map in it", () => {
    const [a, b] = [rule("a"), rule("b")]
    const stats = new Map([
      ["a", { ...emptyStats(a), datapoints: 3 }],
      ["b", { ...emptyStats(b), datapoints: 4 }],
    ])
    // A limit edited: the same names, groups and labels.
    expect(reconcile(stats, [a, b], [{ ...a, maxCardinality: 99 }, b])).toBe(stats)
    const reordered = reconcile(stats, [a, b], [b, a])
    expect(reordered).not.toBe(stats)
    expect([...reordered.keys()]).toEqual(["b", "a"])
    expect(reordered.get("a")).toBe(stats.get("a"))
  })

  it("a rename is a removal plus an addition", () => {
    const old = rule("old-name")
    const stats = new Map([["old-name", { ...emptyStats(old), datapoints: 7, series: seriesOf(["s"]) }]])
    const out = reconcile(stats, [old], [rule("new-name")])
    expect([...out.keys()]).toEqual(["new-name"])
    expect(out.get("new-name")?.datapoints).toBe(0)
    expect(out.get("new-name")?.series.size).toBe(0)
  })
})
