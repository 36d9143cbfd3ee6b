import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { enforce, matchOnly } from "../../src/limits/enforce.js"
import { type ShardKeySpec, shardPosition } from "../../src/pipeline/route.js"
import { batchOf, type Entry, versionOf } from "../limits/engine.js"

const LIMITS = `rules:
  - name: api
    match: {metric_name: "api_.*"}
    group_by: [service]
    max_cardinality: 1000000
    action: drop
  - name: jobs
    match: {metric_name: "job_.*"}
    max_cardinality: 1000000
    action: drop
`

const names = fc.constantFrom("api_requests", "api_latency", "job_runs", "other_metric")
const entry: fc.Arbitrary<Entry> = fc
  .record({
    name: names,
    service: fc.constantFrom("a", "b", "c", "d"),
    pod: fc.integer({ min: 0, max: 50 }),
  })
  .map(({ name, service, pod }) => [name, { service, pod: String(pod) }, 1] as const)

const spec = (key: ShardKeySpec["key"], labels: ReadonlyArray<string> = []): ShardKeySpec => ({ key, labels })

/** The shard position of every entry under `key`, as a router (matching only) computes it. */
const positions = (entries: ReadonlyArray<Entry>, key: ShardKeySpec) => {
  const batch = batchOf(entries)
  const { verdict } = matchOnly(versionOf(LIMITS), 0, batch)
  return entries.map((_, i) => shardPosition(key, batch, verdict, i))
}

/** Entries `i` and `j` share a position whenever `same(i, j)`. */
const together = (
  entries: ReadonlyArray<Entry>,
  key: ShardKeySpec,
  same: (a: Entry, b: Entry) => boolean,
) => {
  const at = positions(entries, key)
  for (let i = 0; i < entries.length; i++)
    for (let j = 0; j < entries.length; j++)
      if (same(entries[i] as Entry, entries[j] as Entry)) expect(at[i]).toBe(at[j])
}

const ruleOf = (e: Entry) => (e[0].startsWith("api_") ? "api" : e[0].startsWith("job_") ? "jobs" : undefined)

describe("shard keys", () => {
  const batches = fc.array(entry, { minLength: 1, maxLength: 40 })

  it("law: series — the same series always has the same position", () => {
    fc.assert(
      fc.property(batches, (es) =>
        together(
          es,
          spec("series"),
          (a, b) => a[0] === b[0] && a[1].service === b[1].service && a[1].pod === b[1].pod,
        ),
      ),
    )
  })

  it("law: labels — series with the same values of the listed labels are together, whatever else differs", () => {
    fc.assert(
      fc.property(batches, (es) =>
        together(es, spec("labels", ["service"]), (a, b) => a[1].service === b[1].service),
      ),
    )
  })

  it("law: rule — every series a rule owns is in one place; series no rule owns go by their identity", () => {
    fc.assert(
      fc.property(batches, (es) =>
        together(es, spec("rule"), (a, b) => {
          const ra = ruleOf(a)
          return ra !== undefined
            ? ra === ruleOf(b)
            : a[0] === b[0] && a[1].pod === b[1].pod && a[1].service === b[1].service
        }),
      ),
    )
  })

  it("law: rule_group — a rule's group is in one place; a rule without group_by is whole", () => {
    fc.assert(
      fc.property(batches, (es) =>
        together(
          es,
          spec("rule_group"),
          (a, b) =>
            ruleOf(a) !== undefined &&
            ruleOf(a) === ruleOf(b) &&
            (ruleOf(a) === "jobs" || a[1].service === b[1].service),
        ),
      ),
    )
  })

  it("rule_group spreads a grouped rule's groups; rule keeps them in one place", () => {
    const es: Array<Entry> = ["a", "b", "c", "d"].map((service) => ["api_requests", { service }, 1] as const)
    expect(new Set(positions(es, spec("rule_group"))).size).toBe(4)
    expect(new Set(positions(es, spec("rule"))).size).toBe(1)
  })

  it("a router and an enforcing governor see the same owner, so both route alike", () => {
    fc.assert(
      fc.property(batches, (es) => {
        const batch = batchOf(es)
        const routed = matchOnly(versionOf(LIMITS), 0, batch)
        const enforced = enforce(versionOf(LIMITS), 0, batch)
        expect(routed.verdict.rule.map((r) => r?.name)).toEqual(enforced.verdict.rule.map((r) => r?.name))
        expect(routed.counts).toEqual([])
        expect([...routed.verdict.pass]).toEqual(es.map((e) => e[2]))
      }),
    )
  })
})
