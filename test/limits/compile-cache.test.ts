import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { LimitsSpec, RuleSpec } from "../../src/config/limits-schema.js"
import {
  type CompileResult,
  compileSteps,
  freshCompileSteps,
  RuleCache,
  ruleCache,
} from "../../src/limits/compile.js"
import { runToEnd } from "../../src/threads/slices.js"

const action = fc.constantFrom("log", "drop", "adaptive", "sample", "strip_labels")
const labelName = fc.constantFrom("env", "job", "instance", "", "service")
/** Some valid patterns, an invalid one and an empty one: problems must not be cached. */
const pattern = fc.constantFrom("svc_.*", "http_requests_total", "a|b", "(", "", "node_.+_bytes", "x{2,}")

const rule: fc.Arbitrary<RuleSpec> = fc.record(
  {
    name: fc.constantFrom("a", "b", "c", "d", "e", "default", " ", "f"),
    match: fc.record(
      {
        metric_name: pattern,
        labels: fc.dictionary(labelName, fc.constantFrom("*", "", "prod", "200")),
      },
      { requiredKeys: [] },
    ),
    max_datapoints_rate: fc.nat(3),
    max_cardinality: fc.nat(3),
    action,
    group_by: fc.array(labelName, { maxLength: 2 }),
    sample_rate: fc.constantFrom(0.5, 1),
    strip_labels: fc.array(fc.constantFrom("job", "__name__", "env"), { maxLength: 2 }),
  },
  { requiredKeys: ["name"] },
)

const spec: fc.Arbitrary<LimitsSpec> = fc.record(
  {
    window: fc.constantFrom(500, 60_000),
    defaults: fc.record({ max_cardinality: fc.nat(2), action }, { requiredKeys: [] }),
    rules: fc.array(rule, { maxLength: 8 }),
  },
  { requiredKeys: ["rules"] },
)

/** One edit of a spec: a rule changed, added, removed or moved; or nothing. */
const edit = (s: LimitsSpec): fc.Arbitrary<LimitsSpec> => {
  const rules = s.rules ?? []
  const at = fc.nat(Math.max(0, rules.length))
  return fc.oneof(
    fc.tuple(at, rule).map(([i, r]) => ({ ...s, rules: rules.map((x, j) => (j === i ? r : x)) })),
    fc.tuple(at, rule).map(([i, r]) => ({ ...s, rules: [...rules.slice(0, i), r, ...rules.slice(i)] })),
    at.map((i) => ({ ...s, rules: rules.filter((_, j) => j !== i) })),
    fc.tuple(at, at).map(([i, j]) => {
      const out = [...rules]
      const [moved] = out.splice(i, 1)
      if (moved !== undefined) out.splice(Math.min(j, out.length), 0, moved)
      return { ...s, rules: out }
    }),
    fc.constant(s),
  )
}

/** A spec and a chain of edits of it: the versions a process would compile one after the other. */
const history: fc.Arbitrary<ReadonlyArray<LimitsSpec>> = spec.chain((first) =>
  fc.array(fc.nat(), { minLength: 1, maxLength: 6 }).chain((seeds) => {
    let arb: fc.Arbitrary<Array<LimitsSpec>> = fc.constant([first])
    for (const _ of seeds) {
      arb = arb.chain((h) => edit(h[h.length - 1] as LimitsSpec).map((next) => [...h, next]))
    }
    return arb
  }),
)

/** A deep copy, so cached rules are never found through the very objects they were made from. */
const copy = (s: LimitsSpec): LimitsSpec => JSON.parse(JSON.stringify(s)) as LimitsSpec

describe("the compile cache", () => {
  it("law: compiling through the cache gives what a fresh compile gives, version after version", () => {
    fc.assert(
      fc.property(history, fc.constantFrom(1, 2, 4, 1000), (specs, max) => {
        // A small cache passes its bound often: eviction must not change anything either.
        const cache = new RuleCache(max)
        for (const s of specs) {
          const cached: CompileResult = runToEnd(compileSteps(copy(s), cache))
          const fresh: CompileResult = runToEnd(freshCompileSteps(copy(s)))
          expect(cached).toEqual(fresh)
          // The shared cache too.
          expect(runToEnd(compileSteps(copy(s)))).toEqual(fresh)
          // The very spec objects (the edits share their unchanged rules): found by the object.
          expect(runToEnd(compileSteps(s, cache))).toEqual(fresh)
        }
      }),
      { numRuns: 300 },
    )
  })

  it("finds a rule by its spec object, and by its text when the object is another", () => {
    const cache = new RuleCache(100)
    const a: RuleSpec = { name: "a", match: { metric_name: "x_.*" } }
    const r1 = runToEnd(compileSteps({ rules: [a] }, cache))
    const r2 = runToEnd(compileSteps({ rules: [a] }, cache))
    const r3 = runToEnd(compileSteps({ rules: [{ name: "a", match: { metric_name: "x_.*" } }] }, cache))
    if (r1._tag !== "Compiled" || r2._tag !== "Compiled" || r3._tag !== "Compiled")
      expect.fail("expected to compile")
    expect(r2.limits.rules[0]).toBe(r1.limits.rules[0])
    expect(r3.limits.rules[0]).toBe(r1.limits.rules[0])
  })

  it("reuses a rule whose text is unchanged, and only that rule", () => {
    const cache = new RuleCache(100)
    const v1: LimitsSpec = {
      rules: [
        { name: "a", match: { metric_name: "x_.*" }, max_cardinality: 1 },
        { name: "b", max_cardinality: 2 },
      ],
    }
    const v2: LimitsSpec = {
      rules: [
        { name: "a", match: { metric_name: "x_.*" }, max_cardinality: 1 },
        { name: "b", max_cardinality: 3 },
      ],
    }
    const r1 = runToEnd(compileSteps(v1, cache))
    const r2 = runToEnd(compileSteps(copy(v2), cache))
    if (r1._tag !== "Compiled" || r2._tag !== "Compiled") expect.fail("expected both to compile")
    expect(r2.limits.rules[0]).toBe(r1.limits.rules[0])
    expect(r2.limits.rules[1]).not.toBe(r1.limits.rules[1])
    expect(r2.limits.rules[1]?.maxCardinality).toBe(3)
  })

  it("a cached rule is frozen, so versions can share it", () => {
    const r = runToEnd(
      compileSteps({ rules: [{ name: "frozen", group_by: ["env"], match: { labels: { a: "*" } } }] }),
    )
    if (r._tag !== "Compiled") expect.fail("expected it to compile")
    const compiled = r.limits.rules[0]
    expect(Object.isFrozen(compiled)).toBe(true)
    expect(Object.isFrozen(compiled?.groupBy)).toBe(true)
    expect(Object.isFrozen(compiled?.labels)).toBe(true)
    expect(Object.isFrozen(compiled?.labels[0])).toBe(true)
    expect(ruleCache.size).toBeGreaterThan(0)
  })

  it("keeps no rule that has a problem: the problem is reported again, at its own position", () => {
    const cache = new RuleCache(100)
    const bad: RuleSpec = { name: "x", match: { metric_name: "(" } }
    const first = runToEnd(compileSteps({ rules: [bad] }, cache))
    const second = runToEnd(compileSteps({ rules: [{ name: "y" }, bad] }, cache))
    if (first._tag !== "Problems" || second._tag !== "Problems") expect.fail("expected problems")
    expect(first.problems[0]?.path).toEqual(["rules", 0, "match", "metric_name"])
    expect(second.problems[0]?.path).toEqual(["rules", 1, "match", "metric_name"])
    expect(cache.size).toBe(1)
  })
})
