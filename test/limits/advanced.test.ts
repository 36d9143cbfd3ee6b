import { describe, expect, it } from "vitest"
import { enforce } from "../../src/limits/enforce.js"
import { currentUsages, isDead, type RuleStats } from "../../src/limits/stats.js"
import type { ConfigVersion } from "../../src/reload/version.js"
import { batchOf, run, s, versionOf } from "./engine.js"

const T = 1_700_000_020_000
const stats = (v: ConfigVersion, rule = "r"): RuleStats => {
  const st = v.stats.get(rule)
  if (st === undefined) expect.fail(`no stats for ${rule}`)
  return st
}
const rule = (body: string) => `rules:\n  - name: r\n${body}`

describe("tiers", () => {
  it("a tier below 100% acts from the utilisation it names on (an 80% log tier fires before any violation)", () => {
    const v = versionOf(
      rule(
        "    max_datapoints_rate: 10\n    action: drop\n    tiers:\n      - {at_percent: 80, action: log}\n",
      ),
    )
    const out = run(
      v,
      T,
      Array.from({ length: 10 }, () => s("a")),
    )
    expect(out.pass).toEqual(Array(10).fill(1))
    // The 9th and 10th datapoints find 80% and 90% used.
    expect(out.counts.r?.tierDatapoints).toEqual([2])
    expect(out.counts.r?.dropped).toBe(0)
  })

  it("a drop tier at 50% drops what finds half the budget used; the rule's action applies over 100%", () => {
    const v = versionOf(
      rule(
        "    max_datapoints_rate: 4\n    action: drop\n    tiers:\n      - {at_percent: 50, action: drop}\n",
      ),
    )
    const out = run(
      v,
      T,
      Array.from({ length: 6 }, () => s("a")),
    )
    // Within the limits: 1st (0%), 2nd (25%) pass; 3rd, 4th find 50%, 75%: dropped by the tier.
    // 5th, 6th violate: the rule's action (drop).
    expect(out.pass).toEqual([1, 1, 0, 0, 0, 0])
    expect(out.counts.r).toMatchObject({ passed: 2, dropped: 4, datapointsExceeded: 2, tierDatapoints: [2] })
  })

  it("the tier at 100% replaces the rule's action for violating datapoints, stripping its own labels", () => {
    const v = versionOf(
      rule(
        "    max_cardinality: 1\n    action: drop\n    tiers:\n      - {at_percent: 100, action: strip_labels, strip_labels: [pod]}\n",
      ),
    )
    const { verdict, counts } = enforce(v, T, batchOf([s("a"), s("b", 1, { pod: "p1" })]))
    expect([...verdict.pass]).toEqual([1, 0])
    expect([...verdict.strip]).toEqual([0, 1])
    expect(verdict.stripLabels?.[1]).toEqual(["pod"])
    expect(counts[0]).toMatchObject({ passed: 2, dropped: 0, cardinalityExceeded: 1, tierDatapoints: [1] })
  })

  it("the highest tier reached wins", () => {
    const v = versionOf(
      rule(
        "    max_datapoints_rate: 10\n    tiers:\n      - {at_percent: 10, action: log}\n      - {at_percent: 30, action: drop}\n",
      ),
    )
    const out = run(v, T, [s("a", 1), s("a", 1), s("a", 1), s("a", 1)])
    // 0%: none; 10%, 20%: log; 30%: drop.
    expect(out.pass).toEqual([1, 1, 1, 0])
    expect(out.counts.r?.tierDatapoints).toEqual([2, 1])
  })

  it("in dry-run every datapoint passes unchanged and the tier's decisions are counted", () => {
    const yaml = rule(
      "    max_datapoints_rate: 4\n    action: drop\n    tiers:\n      - {at_percent: 50, action: drop}\n",
    )
    const dry = versionOf(yaml, { dryRun: true })
    const out = run(
      dry,
      T,
      Array.from({ length: 6 }, () => s("a")),
    )
    expect(out.pass).toEqual(Array(6).fill(1))
    expect(out.counts.r).toMatchObject({ passed: 6, dropped: 0, wouldDrop: 4, tierDatapoints: [2] })
    expect(stats(dry).datapoints).toBe(stats(versionOf(yaml)).datapoints + 4)
  })
})

describe("label_limits", () => {
  const yaml = (action = "strip") =>
    rule(`    label_limits: {user: 2, request: 0}\n    label_limit_action: ${action}\n`)

  it("strip: a value past the limit loses the label; known values keep it; a 0 limit always strips", () => {
    const v = versionOf(yaml())
    const { verdict, counts } = enforce(
      v,
      T,
      batchOf([
        s("a", 1, { user: "u1" }),
        s("b", 1, { user: "u2" }),
        s("c", 2, { user: "u3" }),
        s("d", 1, { user: "u1" }),
        s("e", 1, { request: "x" }),
      ]),
    )
    expect([...verdict.pass]).toEqual([1, 1, 0, 1, 0])
    expect([...verdict.strip]).toEqual([0, 0, 1, 0, 1])
    expect(verdict.stripLabels?.[2]).toEqual(["user"])
    expect(verdict.stripLabels?.[4]).toEqual(["request"])
    expect(counts[0]).toMatchObject({ passed: 6, dropped: 0, labelLimited: [2, 1] })
    expect([...(stats(v).labelValues.get("user") ?? [])]).toEqual(["u1", "u2"])
  })

  it("drop: the datapoint is dropped and not counted toward the rule's usage", () => {
    const v = versionOf(yaml("drop"))
    const out = run(v, T, [s("a", 1, { user: "u1" }), s("b", 1, { user: "u2" }), s("c", 3, { user: "u3" })])
    expect(out.pass).toEqual([1, 1, 0])
    expect(out.strip).toEqual([0, 0, 0])
    expect(out.counts.r).toMatchObject({ passed: 2, dropped: 3, labelLimited: [3, 0] })
    expect(stats(v).series.size).toBe(2)
    expect(stats(v).datapoints).toBe(2)
  })

  it("value sets are per window", () => {
    const v = versionOf(yaml())
    run(v, T, [s("a", 1, { user: "u1" }), s("b", 1, { user: "u2" })])
    const next = run(v, T + 60_000, [s("c", 1, { user: "u3" })])
    expect(next.pass).toEqual([1])
    expect([...(stats(v).labelValues.get("user") ?? [])]).toEqual(["u3"])
  })

  it("dry-run strips nothing and counts what would have been", () => {
    const v = versionOf(yaml(), { dryRun: true })
    const { verdict, counts } = enforce(
      v,
      T,
      batchOf([s("a", 1, { user: "u1" }), s("b", 1, { user: "u2" }), s("c", 1, { user: "u3" })]),
    )
    expect([...verdict.pass]).toEqual([1, 1, 1])
    expect([...verdict.strip]).toEqual([0, 0, 0])
    expect(verdict.stripLabels).toBeUndefined()
    expect(counts[0]).toMatchObject({ passed: 3, wouldDrop: 1, labelLimited: [1, 0] })
  })
})

describe("adaptive_priority", () => {
  const yaml = rule(
    "    max_cardinality: 4\n    action: adaptive\n    group_by: [severity]\n    adaptive_priority: {label: severity, order: [critical, debug]}\n",
  )

  it("sheds the lowest priority first, even when a more important group is larger", () => {
    const v = versionOf(yaml)
    const out = run(v, T, [
      s("c1", 1, { severity: "critical" }),
      s("c2", 1, { severity: "critical" }),
      s("c3", 1, { severity: "critical" }),
      s("d1", 1, { severity: "debug" }),
      s("c4", 1, { severity: "critical" }),
    ])
    // The 5th series takes the rule over 4: the debug group goes, although critical is larger.
    expect(out.pass).toEqual([1, 1, 1, 1, 1])
    expect([...stats(v).droppedGroups]).toEqual(["debug"])
    expect(run(v, T + 1, [s("d2", 1, { severity: "debug" })]).pass).toEqual([0])
  })

  it("series without the label (or with an unlisted value) rank at default_priority: after the last by default", () => {
    const v = versionOf(yaml)
    run(v, T, [
      s("d1", 1, { severity: "debug" }),
      s("d2", 1, { severity: "debug" }),
      s("n1", 1, {}),
      s("c1", 1, { severity: "critical" }),
      s("c2", 1, { severity: "critical" }),
    ])
    expect([...stats(v).droppedGroups]).toEqual([""])
  })

  it("without adaptive_priority, the largest group goes first (as before)", () => {
    const v = versionOf(rule("    max_cardinality: 4\n    action: adaptive\n    group_by: [severity]\n"))
    run(v, T, [
      s("c1", 1, { severity: "critical" }),
      s("c2", 1, { severity: "critical" }),
      s("c3", 1, { severity: "critical" }),
      s("d1", 1, { severity: "debug" }),
      s("c4", 1, { severity: "critical" }),
    ])
    expect([...stats(v).droppedGroups]).toEqual(["critical"])
  })
})

describe("dead rules", () => {
  const yaml = "dead_rule_interval: 5m\nrules:\n  - name: r\n    match: {metric_name: m}\n  - name: other\n"

  it("a rule is dead once nothing matched it for dead_rule_interval, and alive again from its next match", () => {
    const v = versionOf(yaml) // in force from 0
    const at = (now: number) => currentUsages(v, now).find((u) => u.rule === "r")
    expect(at(299_999)?.dead).toBe(false)
    expect(at(300_000)?.dead).toBe(true)
    expect(at(300_000)?.lastMatchSeconds).toBe(Number.POSITIVE_INFINITY)
    run(v, 400_000, [s("a")])
    expect(at(400_000)).toMatchObject({ dead: false, lastMatchSeconds: 0 })
    expect(at(699_999)).toMatchObject({ dead: false, lastMatchSeconds: 299.999 })
    expect(at(700_000)?.dead).toBe(true)
    // The rule that matched nothing else stays dead.
    expect(currentUsages(v, 700_000).find((u) => u.rule === "other")?.dead).toBe(true)
  })

  it("a reload keeps a staying rule's last match; without dead_rule_interval nothing is dead", () => {
    const v = versionOf(yaml)
    run(v, 100_000, [s("a")])
    const next = versionOf("rules:\n  - name: r\n    match: {metric_name: m}\n    max_cardinality: 9\n", {
      previous: v,
    })
    expect(stats(next).lastMatchMs).toBe(100_000)
    expect(isDead(stats(next), next.limits.deadRuleIntervalMs, 10_000_000)).toBe(false)
    expect(isDead(stats(next), 300_000, 400_000)).toBe(true)
  })
})

describe("rules without the new keys", () => {
  it("are decided exactly as before: no tier or label-limit counts, no strip lists", () => {
    const v = versionOf(rule("    max_cardinality: 1\n    action: strip_labels\n    strip_labels: [id]\n"))
    const { verdict, counts } = enforce(v, T, batchOf([s("a"), s("b")]))
    expect([...verdict.strip]).toEqual([0, 1])
    expect(verdict.stripLabels).toBeUndefined()
    expect(counts[0]?.tierDatapoints).toBeUndefined()
    expect(counts[0]?.labelLimited).toBeUndefined()
  })
})
