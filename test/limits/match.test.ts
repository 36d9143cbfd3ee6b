import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { compileMetricRegex, literalPrefix } from "../../src/limits/compile.js"
import { enforce } from "../../src/limits/enforce.js"
import {
  groupKey,
  MATCH_CACHE_MAX,
  matchRule,
  ownerOf,
  ownerOfCode,
  seriesKey,
} from "../../src/limits/match.js"
import { OWNER_NONE } from "../../src/limits/match-cache.js"
import { batchOf, cacheKeyOf, versionOf } from "./engine.js"

describe("seriesKey", () => {
  it("is the name and every label, and tells label sets apart", () => {
    expect(seriesKey("up", [])).toBe("up")
    expect(seriesKey("up", ["a", "1", "b", "2"])).toBe("up\u0000a\u00001\u0000b\u00002")
    // Printable names and values never share a key.
    const printable = fc.string({ unit: fc.constantFrom(..."abc_=,{}\"' 0123") })
    fc.assert(
      fc.property(
        fc.tuple(printable, fc.uniqueArray(fc.tuple(printable, printable), { selector: ([k]) => k })),
        fc.tuple(printable, fc.uniqueArray(fc.tuple(printable, printable), { selector: ([k]) => k })),
        ([n1, l1], [n2, l2]) => {
          const flat = (l: Array<[string, string]>) =>
            [...l]
              .filter(([, v]) => v !== "")
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .flat()
          const a = flat(l1)
          const b = flat(l2)
          const same = n1 === n2 && JSON.stringify(a) === JSON.stringify(b)
          expect(seriesKey(n1, a) === seriesKey(n2, b)).toBe(same)
        },
      ),
    )
  })

  it("leaves out labels with an empty value", () => {
    expect(seriesKey("up", ["a", "", "b", "2", "c", ""])).toBe(seriesKey("up", ["b", "2"]))
    expect(seriesKey("up", ["a", ""])).toBe("up")
  })
})

describe("groupKey", () => {
  it("one label: its value; several: joined; missing: empty", () => {
    expect(groupKey(["svc"], "m", ["env", "p", "svc", "api"])).toBe("api")
    expect(groupKey(["svc"], "m", ["env", "p"])).toBe("")
    expect(groupKey(["env", "svc"], "m", ["env", "p"])).toBe("p\u0000")
    expect(groupKey(["__name__", "env"], "m", ["env", "p"])).toBe("m\u0000p")
  })
})

describe("matchRule", () => {
  const v = versionOf(
    [
      "rules:",
      "  - name: anchored",
      '    match: { metric_name: "up|down" }',
      "  - name: star",
      '    match: { labels: { job: "*" } }',
      "  - name: exact-and-empty",
      '    match: { labels: { env: prod, region: "" } }',
      "  - name: dotall",
      '    match: { metric_name: "a.b" }',
      "",
    ].join("\n"),
  )
  const owner = (name: string, labels: ReadonlyArray<string> = []) => matchRule(v.limits, name, labels)?.name

  it("regexes are anchored at both ends, alternations included", () => {
    expect(owner("up")).toBe("anchored")
    expect(owner("down")).toBe("anchored")
    expect(owner("upx")).toBeUndefined()
    expect(owner("xdown")).toBeUndefined()
  })

  it('"*" needs the label with a non-empty value', () => {
    expect(owner("m", ["job", "node"])).toBe("star")
    expect(owner("m", ["job", ""])).toBeUndefined()
    expect(owner("m", ["jobs", "node"])).toBeUndefined()
  })

  it('an exact value needs exactly it; "" needs the label absent or empty', () => {
    expect(owner("m", ["env", "prod"])).toBe("exact-and-empty")
    expect(owner("m", ["env", "prod", "region", ""])).toBe("exact-and-empty")
    expect(owner("m", ["env", "prod", "region", "eu"])).toBeUndefined()
    expect(owner("m", ["env", "production"])).toBeUndefined()
  })

  it(". matches a newline, as in Prometheus", () => {
    expect(owner("a\nb")).toBe("dotall")
  })
})

describe("ownerOf: the version's match cache", () => {
  it("runs the matching once per series, and stays bounded", () => {
    const v = versionOf('rules:\n  - name: r\n    match: { metric_name: "m.*" }\n')
    const cache = v.matchCache
    /** The owner code of one series named `name`, through the cache. */
    const owner = (key: [number, number], name: string) =>
      ownerOf(v.limits, cache, ...key, batchOf([[name, {}, 1]]), 0)
    expect(ownerOfCode(v.limits, owner(cacheKeyOf("m1", []), "m1"))?.name).toBe("r")
    expect(cache.get(...cacheKeyOf("m1", []))).toBe(0)
    // A cached owner is returned as is, whatever the series looks like now.
    cache.set(7, 7, OWNER_NONE)
    expect(owner([7, 7], "m-would-match")).toBe(OWNER_NONE)
    for (let i = 0; cache.size < MATCH_CACHE_MAX; i++) owner(cacheKeyOf(`m${i}`, []), `m${i}`)
    expect(cache.size).toBe(MATCH_CACHE_MAX)
    // Every entry is still found after the table grew.
    for (let i = 0; i < MATCH_CACHE_MAX; i += 997) expect(cache.get(...cacheKeyOf(`m${i}`, []))).toBe(0)
    owner(cacheKeyOf("one-more", []), "one-more")
    expect(cache.size).toBe(1)
  })

  it("enforce uses it: a cached owner wins over matching again", () => {
    const v = versionOf(
      'rules:\n  - name: r\n    match: { metric_name: "m" }\n    max_cardinality: 1\n    action: drop\n',
    )
    v.matchCache.set(...cacheKeyOf("other", []), 0)
    const out = enforce(v, 0, batchOf([["other", {}, 1]]))
    expect(out.verdict.rule[0]?.name).toBe("r")
  })
})

describe("literalPrefix: the literal a pattern's matches start with", () => {
  const piece = fc.constantFrom(
    "a",
    "b",
    "x",
    "_",
    ".",
    ".*",
    "a+",
    "b?",
    "x*",
    "(a|b)",
    "[ab]",
    "a{2}",
    "b{0}",
    "\\.",
    "|",
    "(?i)a",
    "^",
    "$",
  )
  const pattern = fc.array(piece, { minLength: 1, maxLength: 6 }).map((p) => p.join(""))
  const name = fc
    .array(fc.constantFrom("a", "b", "x", "_", ".", "A", "B"), { maxLength: 8 })
    .map((n) => n.join(""))

  it("law: every name the anchored regex matches starts with the prefix", () => {
    fc.assert(
      fc.property(pattern, fc.array(name, { minLength: 1, maxLength: 20 }), (source, names) => {
        const re = compileMetricRegex(source)
        const prefix = literalPrefix(source)
        for (const n of names)
          if (re.testExact(n)) expect(n.startsWith(prefix), `${source} ~ ${n}`).toBe(true)
      }),
      { numRuns: 2_000 },
    )
  })

  it.each([
    ["svc12_.*", "svc12_"],
    ["http_requests_total", "http_requests_total"],
    ["ab*", "a"],
    ["ab?c", "a"],
    ["ab{0}", "a"],
    ["ab+", "ab"],
    ["a|b", ""],
    ["(?i)up", ""],
    [".*_bucket", ""],
    ["node\\.x", "node"],
  ])("%s → %s", (source, prefix) => {
    expect(literalPrefix(source)).toBe(prefix)
  })
})
