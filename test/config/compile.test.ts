import { describe, expect, it } from "vitest"
import type { LimitsSpec } from "../../src/config/limits-schema.js"
import { type CompileResult, compileLimits } from "../../src/limits/compile.js"
import type { CompiledLimits, CompiledRule } from "../../src/limits/rules.js"

const compiled = (spec: LimitsSpec): CompiledLimits => {
  const result: CompileResult = compileLimits(spec)
  if (result._tag === "Problems") {
    expect.fail(`expected the spec to compile: ${result.problems.map((p) => p.message).join("; ")}`)
  }
  return result.limits
}

const problems = (spec: LimitsSpec) => {
  const result = compileLimits(spec)
  if (result._tag === "Compiled") expect.fail("expected the spec to be rejected")
  return result.problems
}

const ruleFor = (metric_name: string): CompiledRule => {
  const rule = compiled({ rules: [{ name: "r", match: { metric_name } }] }).rules[0]
  if (rule === undefined) expect.fail("no rule compiled")
  return rule
}

/** Whether the compiled regex of the rule finds a match anywhere in `name` (so anchoring must be built in). */
const matchesName = (rule: CompiledRule, name: string): boolean => {
  if (rule.metricName === undefined) expect.fail("rule has no metric_name regex")
  return rule.metricName.test(name)
}

describe("compileLimits: metric_name regexes are anchored at both ends", () => {
  it("http_.* matches names that start with http_ and nothing else", () => {
    const rule = ruleFor("http_.*")
    expect(matchesName(rule, "http_requests_total")).toBe(true)
    expect(matchesName(rule, "http_")).toBe(true)
    expect(matchesName(rule, "xhttp_a")).toBe(false)
    expect(matchesName(rule, "grpc_http_requests")).toBe(false)
  })

  it("an alternation is anchored as a whole", () => {
    const rule = ruleFor("a|b")
    expect(matchesName(rule, "a")).toBe(true)
    expect(matchesName(rule, "b")).toBe(true)
    expect(matchesName(rule, "ab")).toBe(false)
    expect(matchesName(rule, "xa")).toBe(false)
    expect(matchesName(rule, "bx")).toBe(false)
  })

  it("a literal name matches only itself", () => {
    const rule = ruleFor("up")
    expect(matchesName(rule, "up")).toBe(true)
    expect(matchesName(rule, "upstream")).toBe(false)
    expect(matchesName(rule, "backup")).toBe(false)
  })

  it("keeps the source as written, without the anchoring", () => {
    expect(ruleFor("http_.*").metricNameSource).toBe("http_.*")
    expect(ruleFor("http_.*").metricNamePrefix).toBe("http_")
  })

  it("a rule without metric_name matches every name", () => {
    const rule = compiled({ rules: [{ name: "r" }] }).rules[0]
    expect(rule?.metricName).toBeUndefined()
    expect(rule?.metricNameSource).toBeUndefined()
  })

  it("rejects invalid and empty regexes at their path", () => {
    expect(problems({ rules: [{ name: "r", match: { metric_name: "http_(.*" } }] })).toEqual([
      {
        path: ["rules", 0, "match", "metric_name"],
        message: "invalid RE2 regex: error parsing regexp: missing closing ): `http_(.*`",
      },
    ])
    expect(problems({ rules: [{ name: "r", match: { metric_name: "" } }] })[0]?.path).toEqual([
      "rules",
      0,
      "match",
      "metric_name",
    ])
  })
})

describe("compileLimits: label conditions", () => {
  it('"*" means present with any value; other values are exact', () => {
    const rule = compiled({
      rules: [{ name: "r", match: { labels: { service: "*", env: "prod", empty: "" } } }],
    }).rules[0]
    expect(rule?.labels).toEqual([
      { name: "service", value: undefined },
      { name: "env", value: "prod" },
      { name: "empty", value: "" },
    ])
  })

  it("a rule without labels has no label conditions", () => {
    expect(compiled({ rules: [{ name: "r" }] }).rules[0]?.labels).toEqual([])
  })
})

describe("compileLimits: the defaults rule", () => {
  it("exists, named default, when defaults sets a cardinality limit", () => {
    const limits = compiled({ defaults: { max_cardinality: 10, action: "drop" } })
    expect(limits.defaults).toMatchObject({
      name: "default",
      maxCardinality: 10,
      maxDatapointsRate: 0,
      action: "drop",
      metricName: undefined,
      labels: [],
    })
  })

  it("exists, named default, when defaults sets a datapoints limit", () => {
    const limits = compiled({ defaults: { max_datapoints_rate: 5 } })
    expect(limits.defaults).toMatchObject({ name: "default", maxDatapointsRate: 5, action: "log" })
  })

  it("does not exist when defaults sets no limit", () => {
    expect(compiled({}).defaults).toBeUndefined()
    expect(compiled({ defaults: {} }).defaults).toBeUndefined()
    expect(compiled({ defaults: { action: "drop" } }).defaults).toBeUndefined()
    expect(compiled({ defaults: { max_cardinality: 0, max_datapoints_rate: 0 } }).defaults).toBeUndefined()
  })

  it("still checks the fields of a defaults block that sets no limit", () => {
    expect(problems({ defaults: { action: "sample" } })).toEqual([
      { path: ["defaults", "action"], message: "action sample needs sample_rate (a fraction in (0, 1])" },
    ])
  })
})

describe("compileLimits: window and rule fields", () => {
  it("the window defaults to one minute", () => {
    expect(compiled({}).windowMs).toBe(60_000)
    expect(compiled({ rules: [] }).windowMs).toBe(60_000)
  })

  it("keeps a window between 1s and 24h and rejects others", () => {
    expect(compiled({ window: 1_000 }).windowMs).toBe(1_000)
    expect(compiled({ window: 86_400_000 }).windowMs).toBe(86_400_000)
    expect(problems({ window: 999 })).toEqual([{ path: ["window"], message: "must be between 1s and 24h" }])
    expect(problems({ window: 86_400_001 })).toEqual([
      { path: ["window"], message: "must be between 1s and 24h" },
    ])
  })

  it("fills the fields a rule leaves out", () => {
    expect(compiled({ rules: [{ name: "r" }] }).rules[0]).toMatchObject({
      name: "r",
      maxDatapointsRate: 0,
      maxCardinality: 0,
      action: "log",
      groupBy: [],
      sampleRate: 1,
      stripLabels: [],
    })
  })

  it("keeps rules in file order", () => {
    const names = compiled({ rules: [{ name: "b" }, { name: "a" }, { name: "c" }] }).rules.map((r) => r.name)
    expect(names).toEqual(["b", "a", "c"])
  })

  it("reports duplicate, empty and reserved names", () => {
    expect(problems({ rules: [{ name: "a" }, { name: " " }, { name: "default" }, { name: "a" }] })).toEqual([
      { path: ["rules", 1, "name"], message: "rule name must not be empty" },
      { path: ["rules", 2, "name"], message: 'rule name "default" is reserved for the defaults block' },
      { path: ["rules", 3, "name"], message: 'duplicate rule name "a" (first used by rules[0])' },
    ])
  })

  it("is pure: the same spec compiles to the same rules", () => {
    const spec: LimitsSpec = {
      window: 30_000,
      rules: [{ name: "r", match: { metric_name: "x_.*", labels: { a: "*" } }, action: "drop" }],
    }
    const strip = (l: CompiledLimits) => ({
      ...l,
      rules: l.rules.map(({ metricName: _, ...rest }) => rest),
    })
    expect(strip(compiled(spec))).toEqual(strip(compiled(spec)))
  })
})
