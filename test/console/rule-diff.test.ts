import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { LimitsSpec, RuleSpec } from "../../src/config/limits-schema.js"
import { isEmptyDiff, ruleDiff } from "../../src/console/rule-diff.js"

const rule: fc.Arbitrary<RuleSpec> = fc.record(
  {
    name: fc.constantFrom("a", "b", "c", "payments", "checkout"),
    match: fc.record(
      {
        metric_name: fc.constantFrom("http_.*", "rpc_.*"),
        labels: fc.dictionary(fc.constantFrom("env", "team"), fc.constantFrom("prod", "*")),
      },
      { requiredKeys: [] },
    ),
    max_cardinality: fc.nat(5000),
    max_datapoints_rate: fc.nat(5000),
    action: fc.constantFrom("drop", "log", "adaptive"),
    group_by: fc.array(fc.constantFrom("service", "pod"), { maxLength: 2 }),
  },
  { requiredKeys: ["name"] },
)
const spec: fc.Arbitrary<LimitsSpec> = fc.record(
  {
    window: fc.constantFrom(60_000, 10_000),
    defaults: fc.record({ max_cardinality: fc.nat(100) }, { requiredKeys: [] }),
    rules: fc.uniqueArray(rule, { selector: (r) => r.name, maxLength: 5 }),
  },
  { requiredKeys: [] },
)

describe("rule diff", () => {
  it("of identical files is empty", () => {
    fc.assert(fc.property(spec, (s) => isEmptyDiff(ruleDiff(s, structuredClone(s)))))
  })

  it("names every added, removed and changed rule, and nothing else", () => {
    fc.assert(
      fc.property(spec, spec, (a, b) => {
        const d = ruleDiff(a, b)
        const an = new Set((a.rules ?? []).map((r) => r.name))
        const bn = new Set((b.rules ?? []).map((r) => r.name))
        expect(new Set(d.added)).toEqual(new Set([...bn].filter((n) => !an.has(n))))
        expect(new Set(d.removed)).toEqual(new Set([...an].filter((n) => !bn.has(n))))
        for (const r of b.rules ?? []) {
          const old = (a.rules ?? []).find((o) => o.name === r.name)
          const changed = d.changed.some((c) => c.rule === r.name)
          if (old !== undefined) expect(changed).toBe(JSON.stringify(old) !== JSON.stringify(r))
        }
        // Swapping the sides swaps added and removed.
        const back = ruleDiff(b, a)
        expect(back.added).toEqual(d.removed)
        expect(back.removed).toEqual(d.added)
      }),
    )
  })

  it("reports each changed key with its old and new value", () => {
    const d = ruleDiff(
      {
        rules: [
          { name: "payments", max_cardinality: 2000, match: { labels: { env: "prod" } } },
          { name: "gone", max_cardinality: 1 },
        ],
      },
      {
        defaults: { max_cardinality: 5 },
        rules: [
          { name: "payments", max_cardinality: 1000, match: { labels: { env: "staging" } }, action: "drop" },
          { name: "new", max_cardinality: 1 },
        ],
      },
    )
    expect(d).toEqual({
      added: ["new"],
      removed: ["gone"],
      changed: [
        {
          rule: "payments",
          changes: [
            { key: "max_cardinality", old: 2000, new: 1000 },
            { key: "match.labels.env", old: "prod", new: "staging" },
            { key: "action", old: null, new: "drop" },
          ],
        },
      ],
      settings: [{ key: "defaults.max_cardinality", old: null, new: 5 }],
    })
  })
})
