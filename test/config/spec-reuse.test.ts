import { Either, Schema } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeLimitsSpecReusing } from "../../src/config/decode.js"
import { LimitsSpec, type RuleSpec } from "../../src/config/limits-schema.js"
import { GenerationCache } from "../../src/limits/compile.js"

const full = Schema.decodeUnknownEither(LimitsSpec, { errors: "all", onExcessProperty: "error" })

/** Values as YAML gives them, near the schema: mostly valid rules, some wrong in one field. */
const scalar = fc.oneof(
  fc.constantFrom("drop", "log", "sample", "x", "", "*", "svc_.*", "env"),
  fc.constantFrom(0, 1, 5000, 0.5, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY),
  fc.boolean(),
  fc.constant(null),
)
/** A rule that may be wrong anywhere. */
const wildRule = fc.record(
  {
    name: fc.oneof(fc.constantFrom("a", "b", "c"), scalar),
    match: fc.oneof(
      fc.record(
        {
          metric_name: fc.oneof(fc.constantFrom("svc_.*", "x"), scalar),
          labels: fc.oneof(
            fc.dictionary(fc.constantFrom("env", "job"), fc.oneof(fc.constantFrom("*", "prod"), scalar)),
          ),
        },
        { requiredKeys: [] },
      ),
      scalar,
    ),
    max_cardinality: fc.oneof(fc.nat(5), scalar),
    action: fc.oneof(fc.constantFrom("drop", "log", "adaptive"), scalar),
    group_by: fc.oneof(fc.array(fc.constantFrom("env", "job", "")), scalar),
    sample_rate: fc.oneof(fc.constantFrom(0.5, 1), scalar),
    unknown_key: scalar,
  },
  { requiredKeys: ["name"] },
)
/** A rule the schema accepts. */
const validRule = fc.record(
  {
    name: fc.constantFrom("a", "b", "c", ""),
    match: fc.record(
      {
        metric_name: fc.constantFrom("svc_.*", "x", "("),
        labels: fc.dictionary(fc.constantFrom("env", "job", "a.b"), fc.constantFrom("*", "prod", "")),
      },
      { requiredKeys: [] },
    ),
    max_cardinality: fc.nat(5),
    max_datapoints_rate: fc.nat(5),
    action: fc.constantFrom("drop", "log", "adaptive", "sample", "strip_labels"),
    group_by: fc.array(fc.constantFrom("env", "job")),
    sample_rate: fc.constantFrom(0.5, 1),
    strip_labels: fc.array(fc.constantFrom("env", "job")),
  },
  { requiredKeys: ["name"] },
)
const rule = fc.oneof({ arbitrary: validRule, weight: 8 }, { arbitrary: wildRule, weight: 1 })
/** A document the schema accepts but for its rules. */
const validDocument = fc.record(
  {
    window: fc.constantFrom("1m", "30s", "0s"),
    defaults: fc.record({ max_cardinality: fc.nat(3), action: fc.constantFrom("drop", "log") }),
    rules: fc.array(rule, { maxLength: 6 }),
  },
  { requiredKeys: ["rules"] },
)
/** A document that may be wrong anywhere. */
const wildDocument = fc.record(
  {
    window: fc.oneof(fc.constantFrom("1m", "30s"), scalar),
    defaults: fc.oneof(fc.record({ action: fc.constantFrom("drop", "nope") }), scalar),
    rules: fc.oneof(fc.array(rule, { maxLength: 3 }), scalar),
    extra: scalar,
  },
  { requiredKeys: [] },
)
const document = fc.oneof({ arbitrary: validDocument, weight: 6 }, { arbitrary: wildDocument, weight: 1 })

describe("decoding limits.yaml with the rules' decodes reused", () => {
  it("law: gives what the schema gives for the whole document, or leaves the document to it", () => {
    let reusedCount = 0
    fc.assert(
      fc.property(
        fc.array(document, { minLength: 1, maxLength: 5 }),
        fc.constantFrom(1, 3, 1000),
        (docs, max) => {
          const cache = new GenerationCache<RuleSpec>(max)
          for (const doc of docs) {
            const whole = full(doc)
            const reused = decodeLimitsSpecReusing(doc, cache)
            if (reused !== undefined) {
              reusedCount++
              expect(Either.isRight(whole)).toBe(true)
              expect(reused).toEqual(Either.getOrThrow(whole))
            } else if (Either.isRight(whole)) {
              // Only documents without a list of rules are left to the whole decode when valid.
              expect(Array.isArray((doc as { rules?: unknown }).rules)).toBe(false)
            }
            // The shared cache, twice (the second time from the cache).
            for (let i = 0; i < 2; i++) {
              const shared = decodeLimitsSpecReusing(doc)
              if (shared !== undefined) expect(shared).toEqual(Either.getOrThrow(whole))
            }
          }
        },
      ),
      { numRuns: 400 },
    )
    // The law is about the reused path: most generated documents must take it.
    expect(reusedCount).toBeGreaterThan(200)
  })

  it("a rule's decode is reused when its text is unchanged", () => {
    const cache = new GenerationCache<RuleSpec>(100)
    const a = { name: "a", max_cardinality: 1 }
    const first = decodeLimitsSpecReusing({ rules: [a, { name: "b" }] }, cache)
    const second = decodeLimitsSpecReusing({ rules: [{ ...a }, { name: "b", max_cardinality: 2 }] }, cache)
    expect(second?.rules?.[0]).toBe(first?.rules?.[0])
    expect(second?.rules?.[1]).toEqual({ name: "b", max_cardinality: 2 })
    expect(cache.size).toBe(3)
  })
})
