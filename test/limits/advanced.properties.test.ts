import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { enforce } from "../../src/limits/enforce.js"
import { batchOf, type Entry, versionOf } from "./engine.js"

const T = 1_700_000_040_000

/** A rule with tiers and label limits, as YAML, from generated parts. */
const ruleArb = fc
  .record({
    maxDp: fc.integer({ min: 1, max: 30 }),
    maxCard: fc.integer({ min: 0, max: 8 }),
    action: fc.constantFrom("log", "drop", "strip_labels", "sample"),
    tiers: fc.uniqueArray(fc.integer({ min: 1, max: 100 }), { maxLength: 3 }),
    tierActions: fc.array(fc.constantFrom("log", "drop", "sample", "strip_labels"), {
      minLength: 3,
      maxLength: 3,
    }),
    userLimit: fc.integer({ min: 0, max: 3 }),
    labelAction: fc.constantFrom("strip", "drop"),
  })
  .map((r) => {
    const fields = (a: string) =>
      a === "sample" ? ", sample_rate: 0.5" : a === "strip_labels" ? ", strip_labels: [pod]" : ""
    const tiers = [...r.tiers].sort((a, b) => a - b)
    const rule =
      `rules:\n  - name: r\n    max_datapoints_rate: ${r.maxDp}\n    max_cardinality: ${r.maxCard}\n` +
      `    action: ${r.action}\n` +
      (r.action === "sample" ? "    sample_rate: 0.5\n" : "") +
      (r.action === "strip_labels" ? "    strip_labels: [pod]\n" : "") +
      (tiers.length > 0
        ? `    tiers:\n${tiers.map((t, i) => `      - {at_percent: ${t}, action: ${r.tierActions[i]}${fields(r.tierActions[i] as string)}}\n`).join("")}`
        : "") +
      `    label_limits: {user: ${r.userLimit}}\n    label_limit_action: ${r.labelAction}\n`
    return { yaml: rule, userLimit: r.userLimit, labelAction: r.labelAction }
  })

const entriesArb = fc.array(
  fc
    .tuple(
      fc.nat(6),
      fc.constantFrom("u0", "u1", "u2", "u3", "u4"),
      fc.constantFrom("p0", "p1"),
      fc.constant(1),
    )
    .map(([id, user, pod, d]): Entry => ["m", { id: String(id), user, pod }, d]),
  { maxLength: 40 },
)

describe("enforce with tiers and label limits: properties", () => {
  it("law: dry-run forwards everything unchanged, accounts exactly as the real run, and would drop what it drops", () => {
    fc.assert(
      fc.property(ruleArb, entriesArb, ({ yaml }, entries) => {
        const real = versionOf(yaml)
        const dry = versionOf(yaml, { dryRun: true })
        const r = enforce(real, T, batchOf(entries))
        const d = enforce(dry, T, batchOf(entries))
        expect([...d.verdict.pass]).toEqual(entries.map(([, , n]) => n))
        expect([...d.verdict.strip].every((x) => x === 0)).toBe(true)
        const rs = real.stats.get("r")
        const ds = dry.stats.get("r")
        expect(ds?.datapoints).toBe(rs?.datapoints)
        expect(ds?.series.size).toBe(rs?.series.size)
        expect([...(ds?.labelValues.get("user") ?? [])]).toEqual([...(rs?.labelValues.get("user") ?? [])])
        const rc = r.counts[0]
        const dc = d.counts[0]
        if (rc === undefined || dc === undefined) return
        expect(dc.wouldDrop).toBeGreaterThanOrEqual(rc.dropped)
        expect(dc.tierDatapoints).toEqual(rc.tierDatapoints)
        expect(dc.labelLimited).toEqual(rc.labelLimited)
      }),
    )
  })

  it("law: every datapoint is passed or dropped once; a label keeps at most its limit of values unstripped", () => {
    fc.assert(
      fc.property(ruleArb, entriesArb, ({ yaml, userLimit, labelAction }, entries) => {
        const v = versionOf(yaml)
        const { verdict, counts } = enforce(v, T, batchOf(entries))
        const c = counts[0]
        const total = entries.reduce((a, [, , n]) => a + n, 0)
        if (c !== undefined) expect(c.passed + c.dropped).toBe(total)
        const users = new Set<string>()
        entries.forEach(([, labels], i) => {
          const unchanged = (verdict.pass[i] as number) > 0
          const stripped = verdict.strip[i] === 1
          const keepsUser = unchanged || (stripped && !(verdict.stripLabels?.[i] ?? []).includes("user"))
          if (keepsUser) users.add(labels.user as string)
        })
        expect(users.size).toBeLessThanOrEqual(userLimit)
        if (labelAction === "drop")
          expect(verdict.stripLabels?.some((l) => l?.includes("user")) ?? false).toBe(false)
      }),
    )
  })
})
