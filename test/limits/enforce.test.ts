import { describe, expect, it } from "vitest"
import { enforce } from "../../src/limits/enforce.js"
import { fingerprint } from "../../src/limits/fingerprint.js"
import { seriesKey } from "../../src/limits/match.js"
import { OWNER_NONE } from "../../src/limits/match-cache.js"
import type { RuleStats } from "../../src/limits/stats.js"
import type { ConfigVersion } from "../../src/reload/version.js"
import { batchOf, cacheKeyOf, counts, run, s, versionOf } from "./engine.js"

const stats = (v: ConfigVersion, rule: string): RuleStats => {
  const st = v.stats.get(rule)
  if (st === undefined) expect.fail(`no stats for ${rule}`)
  return st
}

const T = 1_700_000_000_000 // a minute boundary: 1_700_000_000_000 / 60_000 = 28_333_333.33…
const W = Math.floor(T / 60_000) * 60_000

/** Whether `sample` keeps the violating datapoints of series `m{id}` at `rate`. */
const sampledIn = (id: string, rate: number): boolean => {
  const fp = new Uint32Array(2)
  fingerprint(seriesKey("m", ["id", id]), fp)
  return (fp[0] as number) / 2 ** 32 < rate
}

describe("enforce: drop", () => {
  const yaml = "rules:\n  - name: r\n    max_cardinality: 2\n    action: drop\n"

  it("drops every datapoint of a new series over max_cardinality; admitted series keep flowing", () => {
    const v = versionOf(yaml)
    const out = run(v, T, [s("a"), s("b"), s("c", 3), s("a", 2), s("c")])
    expect(out.pass).toEqual([1, 1, 0, 2, 0])
    expect(out.strip).toEqual([0, 0, 0, 0, 0])
    expect(out.rule).toEqual(["r", "r", "r", "r", "r"])
    expect(Object.values(out.counts)).toEqual([
      counts("r", "drop", { passed: 4, dropped: 4, cardinalityExceeded: 4 }),
    ])
    // The refused series is not admitted: it stays refused, the admitted ones keep passing.
    const next = run(v, T + 1, [s("c"), s("b", 5), s("d")])
    expect(next.pass).toEqual([0, 5, 0])
    expect(stats(v, "r").series.size).toBe(2)
    expect(stats(v, "r").datapoints).toBe(9)
  })

  it("max_datapoints_rate: the first datapoints of an entry fill the budget, the rest are dropped", () => {
    const v = versionOf("rules:\n  - name: r\n    max_datapoints_rate: 10\n    action: drop\n")
    const out = run(v, T, [s("a", 6), s("b", 10), s("a")])
    expect(out.pass).toEqual([6, 4, 0])
    expect(out.counts.r).toEqual(counts("r", "drop", { passed: 10, dropped: 7, datapointsExceeded: 7 }))
    expect(stats(v, "r").datapoints).toBe(10)
  })

  it("a datapoint over both limits counts in both exceeded counters, once in dropped", () => {
    const v = versionOf(
      "rules:\n  - name: r\n    max_cardinality: 1\n    max_datapoints_rate: 3\n    action: drop\n",
    )
    const out = run(v, T, [s("a", 3), s("b", 2), s("a", 1)])
    expect(out.pass).toEqual([3, 0, 0])
    expect(out.counts.r).toEqual(
      counts("r", "drop", { passed: 3, dropped: 3, cardinalityExceeded: 2, datapointsExceeded: 3 }),
    )
  })

  it("a series refused only for the rate is not admitted either", () => {
    const v = versionOf(
      "rules:\n  - name: r\n    max_cardinality: 5\n    max_datapoints_rate: 1\n    action: drop\n",
    )
    run(v, T, [s("a"), s("b")])
    expect(stats(v, "r").series.size).toBe(1)
  })
})

describe("enforce: log", () => {
  it("passes everything and counts exactly what drop would drop", () => {
    const yaml = (action: string) =>
      `rules:\n  - name: r\n    max_cardinality: 2\n    max_datapoints_rate: 5\n    action: ${action}\n`
    const entries = [s("a", 2), s("b"), s("c", 2), s("a", 3), s("c")]
    const logged = run(versionOf(yaml("log")), T, entries)
    const dropped = run(versionOf(yaml("drop")), T, entries)
    expect(logged.pass).toEqual([2, 1, 2, 3, 1])
    expect(dropped.pass).toEqual([2, 1, 0, 2, 0])
    // c is over the cardinality (3 datapoints); a's 3rd datapoint and c's last are over the rate.
    expect(logged.counts.r).toEqual(
      counts("r", "log", { passed: 9, cardinalityExceeded: 3, datapointsExceeded: 2 }),
    )
    expect(dropped.counts.r).toEqual(
      counts("r", "drop", { passed: 5, dropped: 4, cardinalityExceeded: 3, datapointsExceeded: 2 }),
    )
  })

  it("its usage stops at the limits, like drop's (the gauges show usage counted against the limit)", () => {
    const v = versionOf("rules:\n  - name: r\n    max_cardinality: 2\n    action: log\n")
    run(v, T, [s("a"), s("b"), s("c"), s("d")])
    expect(stats(v, "r").series.size).toBe(2)
    expect(stats(v, "r").datapoints).toBe(2)
  })
})

describe("enforce: strip_labels", () => {
  const yaml = (limit: string) =>
    `rules:\n  - name: r\n    ${limit}\n    action: strip_labels\n    strip_labels: [id]\n`

  it("violating datapoints pass with the labels stripped (strip = 1), for the whole window", () => {
    const v = versionOf(yaml("max_cardinality: 1"))
    const out = run(v, T, [s("a", 2), s("b", 3)])
    expect(out.pass).toEqual([2, 0])
    expect(out.strip).toEqual([0, 1])
    expect(out.counts.r).toEqual(counts("r", "strip_labels", { passed: 5, cardinalityExceeded: 3 }))
    // b is not admitted by its stripped datapoints: it is stripped again, not let through whole.
    expect(run(v, T + 1, [s("b")]).strip).toEqual([1])
  })

  it("the rate limit cuts an entry: its first datapoints unchanged, the rest stripped", () => {
    const v = versionOf(yaml("max_datapoints_rate: 3"))
    const out = run(v, T, [s("a", 5)])
    expect(out.pass).toEqual([3])
    expect(out.strip).toEqual([1])
    expect(out.counts.r).toEqual(counts("r", "strip_labels", { passed: 5, datapointsExceeded: 2 }))
  })
})

describe("enforce: sample", () => {
  const ids = Array.from({ length: 40 }, (_, i) => `s${i}`)
  const kept = ids.filter((id) => sampledIn(id, 0.5))
  const lost = ids.filter((id) => !sampledIn(id, 0.5))

  it("keeps the violating datapoints of a series by its hash, as a whole, batch after batch", () => {
    expect(kept.length).toBeGreaterThan(0)
    expect(lost.length).toBeGreaterThan(0)
    const v = versionOf(
      "rules:\n  - name: r\n    max_cardinality: 1\n    action: sample\n    sample_rate: 0.5\n",
    )
    const k = kept[0] as string
    const l = lost[0] as string
    const out = run(v, T, [s("admitted", 2), s(k, 3), s(l, 4)])
    expect(out.pass).toEqual([2, 3, 0])
    expect(out.counts.r).toEqual(counts("r", "sample", { passed: 5, dropped: 4, cardinalityExceeded: 7 }))
    expect(run(v, T + 1, [s(l), s(k, 2), s("admitted")]).pass).toEqual([0, 2, 1])
  })

  it("keeps about sample_rate of the violating series", () => {
    const v = versionOf(
      "rules:\n  - name: r\n    max_cardinality: 1\n    action: sample\n    sample_rate: 0.3\n",
    )
    const n = 20_000
    const out = enforce(v, T, batchOf(Array.from({ length: n }, (_, i) => s(`x${i}`))))
    const passed = out.counts[0]?.passed ?? 0
    expect(passed / n).toBeGreaterThan(0.28)
    expect(passed / n).toBeLessThan(0.32)
  })

  it("under a rate limit, an entry's datapoints within the budget pass whatever the hash", () => {
    const v = versionOf(
      "rules:\n  - name: r\n    max_datapoints_rate: 2\n    action: sample\n    sample_rate: 0.5\n",
    )
    expect(run(v, T, [s(lost[0] as string, 5), s(kept[0] as string, 5)]).pass).toEqual([2, 5])
  })
})

describe("enforce: adaptive", () => {
  const rate =
    "rules:\n  - name: r\n    max_datapoints_rate: 10\n    action: adaptive\n    group_by: [service]\n"
  const svc = (service: string, id: string, dps: number) => s(id, dps, { service })

  it("the worked example of docs/limits.md: the largest groups go first, the rest keep flowing", () => {
    const v = versionOf(rate)
    const first = run(v, T, [svc("A", "a1", 6), svc("B", "b1", 3), svc("C", "c1", 1)])
    expect(first.pass).toEqual([6, 3, 1])
    const out = run(v, T + 1, [
      svc("C", "c1", 1), // usage 11 > 10: A (6) is dropped; usage 5, this one passes
      svc("A", "a1", 2), // A is dropped for the rest of the window
      svc("B", "b1", 2), // 7
      svc("C", "c1", 3), // 10
      svc("B", "b2", 1), // 11 > 10: B (6) is dropped before C (5): this one goes too
      svc("C", "c2", 1), // usage 5 + 1
    ])
    expect(out.pass).toEqual([1, 0, 2, 3, 0, 1])
    expect(out.counts.r).toEqual(counts("r", "adaptive", { passed: 7, dropped: 3, datapointsExceeded: 2 }))
    const st = stats(v, "r")
    expect([...st.droppedGroups].sort()).toEqual(["A", "B"])
    expect(st.datapoints - st.shedDatapoints).toBe(6)
    // A new window forgets the dropped groups.
    expect(run(v, T + 60_000, [svc("A", "a1", 2)]).pass).toEqual([2])
    expect(st.droppedGroups.size).toBe(0)
  })

  it("sheds within an entry: the datapoint that goes over counts, and passes when another group goes", () => {
    const v = versionOf(
      "rules:\n  - name: r\n    max_datapoints_rate: 5\n    action: adaptive\n    group_by: [service]\n",
    )
    // A counts 3; B's 3rd datapoint makes 6: A and B tie at 3, A goes (smaller key), B goes on.
    expect(run(v, T, [svc("A", "a", 3), svc("B", "b", 4)]).pass).toEqual([3, 4])
    const w = versionOf(
      "rules:\n  - name: r\n    max_datapoints_rate: 5\n    action: adaptive\n    group_by: [service]\n",
    )
    // B's 4th datapoint makes 6 with B the largest (4): B goes, from that datapoint on.
    const out = run(w, T, [svc("A", "a", 2), svc("B", "b", 5)])
    expect(out.pass).toEqual([2, 3])
    expect(out.counts.r).toEqual(counts("r", "adaptive", { passed: 5, dropped: 2, datapointsExceeded: 1 }))
  })

  it("max_cardinality: sheds the groups with the most series", () => {
    const v = versionOf(
      "rules:\n  - name: r\n    max_cardinality: 3\n    action: adaptive\n    group_by: [team]\n",
    )
    const t = (team: string, id: string) => s(id, 1, { team })
    const out = run(v, T, [
      t("x", "x1"),
      t("x", "x2"),
      t("y", "y1"),
      t("y", "y2"),
      t("x", "x1"),
      t("y", "y3"),
    ])
    // y2 makes 4 series: x and y tie at 2, x goes; y3 makes 3 live series: fits.
    expect(out.pass).toEqual([1, 1, 1, 1, 0, 1])
    expect(out.counts.r).toEqual(counts("r", "adaptive", { passed: 5, dropped: 1, cardinalityExceeded: 1 }))
    expect(stats(v, "r").series.size - stats(v, "r").shedSeries).toBe(3)
  })

  it("group_by over several labels: a missing label counts as empty", () => {
    const v = versionOf(
      "rules:\n  - name: r\n    max_datapoints_rate: 2\n    action: adaptive\n    group_by: [a, b]\n",
    )
    const out = run(v, T, [s("1", 2, { a: "x" }), s("2", 1, { a: "x", b: "" }), s("3", 1, { a: "y" })])
    // The first two entries are one group (x, ""): 3 > 2 drops it; y passes.
    expect(out.pass).toEqual([2, 0, 1])
    expect([...stats(v, "r").droppedGroups]).toEqual(["x\u0000"])
  })

  it("dry-run accounts and sheds the same, and forwards everything", () => {
    const entries = [svc("A", "a1", 6), svc("B", "b1", 3), svc("C", "c1", 2), svc("A", "a1", 2)]
    const real = run(versionOf(rate), T, entries)
    const dv = versionOf(rate, { dryRun: true })
    const dry = run(dv, T, entries)
    expect(real.pass).toEqual([6, 3, 2, 0])
    expect(dry.pass).toEqual([6, 3, 2, 2])
    expect(dry.counts.r).toEqual(counts("r", "adaptive", { passed: 13, wouldDrop: 2, datapointsExceeded: 1 }))
    expect([...stats(dv, "r").droppedGroups]).toEqual(["A"])
  })
})

describe("enforce: group_by on other actions", () => {
  it("counts datapoints and new series per group", () => {
    const v = versionOf(
      "rules:\n  - name: r\n    max_cardinality: 3\n    action: drop\n    group_by: [service]\n",
    )
    run(v, T, [
      s(1, 2, { service: "A" }),
      s(2, 1, { service: "A" }),
      s(1, 1, { service: "A" }),
      s(3, 1),
      s(4, 1),
    ])
    expect(Object.fromEntries(stats(v, "r").groups)).toEqual({
      A: { datapoints: 4, series: 2, rank: 0 },
      "": { datapoints: 1, series: 1, rank: 0 },
    })
  })
})

describe("enforce: matching", () => {
  const yaml = [
    "defaults:",
    "  max_cardinality: 1",
    "  action: drop",
    "rules:",
    "  - name: http",
    "    match:",
    '      metric_name: "http_.*"',
    "    max_cardinality: 100",
    "  - name: prod",
    "    match:",
    "      labels:",
    "        env: prod",
    '        service: "*"',
    "    max_cardinality: 100",
    "  - name: no-team",
    "    match:",
    '      labels: { team: "" }',
    "    max_cardinality: 100",
    "",
  ].join("\n")

  it("first matching rule in file order; anchored regexes; * and empty label conditions; default", () => {
    const v = versionOf(yaml)
    const out = run(v, T, [
      ["http_requests_total", { env: "prod", service: "api" }, 1], // http wins: file order
      ["xhttp_requests", { team: "t" }, 1], // not http (anchored), has a team: default
      ["grpc_calls", { env: "prod", service: "api", team: "t" }, 1], // prod
      ["grpc_calls", { env: "prod", service: "", team: "t" }, 1], // empty service is absent: default
      ["grpc_calls", { env: "dev", team: "t" }, 1], // default (its first series: admitted)
      ["grpc_calls", { env: "dev" }, 1], // no team: no-team
      ["grpc_calls", { env: "dev", team: "" }, 1], // empty team is absent: no-team
    ])
    expect(out.rule).toEqual(["http", "default", "prod", "default", "default", "no-team", "no-team"])
    expect(out.pass).toEqual([1, 1, 1, 0, 0, 1, 1])
    expect(out.order).toEqual(["http", "prod", "no-team", "default"])
    expect(out.counts.default).toEqual(
      counts("default", "drop", { passed: 1, dropped: 2, cardinalityExceeded: 2 }),
    )
  })

  it("a label with an empty value is the same series as one without it", () => {
    const v = versionOf("rules:\n  - name: r\n    max_cardinality: 1\n    action: drop\n")
    expect(run(v, T, [s("a", 1, { env: "" }), s("a"), s("a", 1, { z: "" })]).pass).toEqual([1, 1, 1])
    expect(stats(v, "r").series.size).toBe(1)
  })

  it("__name__ conditions and groups see the metric name", () => {
    const v = versionOf(
      "rules:\n  - name: r\n    match:\n      labels: { __name__: up }\n    max_datapoints_rate: 1\n    action: adaptive\n    group_by: [__name__]\n",
    )
    const out = run(v, T, [
      ["up", {}, 1],
      ["down", {}, 1],
      ["up", {}, 1],
    ])
    expect(out.rule).toEqual(["r", undefined, "r"])
    expect(out.pass).toEqual([1, 1, 0])
    expect([...stats(v, "r").droppedGroups]).toEqual(["up"])
  })

  it("untracked series (no rule matches, no defaults) pass uncounted", () => {
    const v = versionOf(
      'rules:\n  - name: r\n    match: { metric_name: "a" }\n    max_cardinality: 1\n    action: drop\n',
    )
    const out = run(v, T, [
      ["b", {}, 3],
      ["c", {}, 2],
    ])
    expect(out.pass).toEqual([3, 2])
    expect(out.rule).toEqual([undefined, undefined])
    expect(out.counts).toEqual({})
  })

  it("no rules at all: everything passes", () => {
    const out = run(versionOf("rules: []\n"), T, [["b", {}, 3]])
    expect(out).toMatchObject({ pass: [3], strip: [0], rule: [undefined], counts: {} })
  })

  it("entries without datapoints get their rule but count nothing", () => {
    const v = versionOf("rules:\n  - name: r\n    max_cardinality: 1\n    action: drop\n")
    const out = run(v, T, [s("a", 0), s("b")])
    expect(out.rule).toEqual(["r", "r"])
    expect(out.pass).toEqual([0, 1])
    expect(stats(v, "r").series.size).toBe(1)
  })
})

describe("enforce: the match cache", () => {
  const yaml =
    'rules:\n  - name: r\n    match: { metric_name: "a.*" }\n    max_cardinality: 2\n    action: drop\n'
  const entries = [
    ["ab", { x: "1" }, 1],
    ["b", { x: "1" }, 1],
    ["ac", {}, 2],
    ["ab", { x: "1" }, 1],
  ] as const

  it("holds the owner of each series (null: untracked); cold and hot runs decide alike", () => {
    const cold = versionOf(yaml)
    const first = run(cold, T, entries)
    expect(cold.matchCache.size).toBe(3)
    expect(cold.matchCache.get(...cacheKeyOf("b", ["x", "1"]))).toBe(OWNER_NONE)
    expect(cold.matchCache.get(...cacheKeyOf("ab", ["x", "1"]))).toBe(0) // rules[0], "r"
    // Hot: the same batch in a new window decides the same way.
    const hot = run(cold, T + 60_000, entries)
    expect(hot).toEqual(first)
  })

  it("a new version whose rules match as before keeps the cache; a retained rule keeps its window stats", () => {
    const v1 = versionOf(yaml)
    run(v1, T, [
      ["a1", {}, 1],
      ["a2", {}, 1],
    ])
    const v2 = versionOf(yaml.replace("max_cardinality: 2", "max_cardinality: 3"), { previous: v1 })
    expect(v2.matchCache).toBe(v1.matchCache)
    expect(v2.matchCache.size).toBe(2)
    expect(v2.stats.get("r")).toBe(v1.stats.get("r"))
    // The new limit applies from the next datapoint on: one more series fits, a1 is still known.
    expect(
      run(v2, T + 1, [
        ["a3", {}, 1],
        ["a4", {}, 1],
        ["a1", {}, 1],
      ]).pass,
    ).toEqual([1, 0, 1])
    expect(v2.matchCache.size).toBe(4)
  })

  it("a new version whose patterns, label conditions, order or defaults differ starts with an empty cache", () => {
    const v1 = versionOf(yaml)
    run(v1, T, [["a1", {}, 1]])
    for (const changed of [
      yaml.replace('"a.*"', '"a1.*"'),
      yaml.replace('metric_name: "a.*" }', 'metric_name: "a.*", labels: { x: "*" } }'),
      `${yaml}  - name: s\n    match: { metric_name: "b" }\n`,
      `defaults:\n  max_cardinality: 5\n${yaml}`,
    ]) {
      const v2 = versionOf(changed, { previous: v1 })
      expect(v2.matchCache).not.toBe(v1.matchCache)
      expect(v2.matchCache.size).toBe(0)
    }
  })
})

describe("enforce: windows", () => {
  const yaml = "rules:\n  - name: r\n    max_cardinality: 1\n    max_datapoints_rate: 2\n    action: drop\n"

  it("tumbling windows aligned to the wall clock: crossing a boundary resets every count", () => {
    const v = versionOf(yaml)
    expect(run(v, W + 59_999, [s("a", 3), s("b")]).pass).toEqual([2, 0])
    expect(stats(v, "r").windowStart).toBe(W)
    expect(run(v, W + 60_000, [s("b", 3), s("a")]).pass).toEqual([2, 0])
    expect(stats(v, "r").windowStart).toBe(W + 60_000)
    expect(run(v, W + 119_999, [s("b")]).pass).toEqual([0])
  })

  it("the window length comes from the file", () => {
    const v = versionOf(`window: 10s\n${yaml}`)
    run(v, W + 9_999, [s("a", 2)])
    expect(run(v, W + 10_000, [s("a", 2)]).pass).toEqual([2])
    expect(stats(v, "r").windowStart).toBe(W + 10_000)
  })

  it("a batch rolls the window of every rule, so idle rules' gauges drop to zero", () => {
    const v = versionOf(
      yaml.replace(
        "rules:\n",
        "rules:\n  - name: other\n    match: { metric_name: x }\n    max_cardinality: 1\n",
      ),
    )
    run(v, W, [["x", {}, 1]])
    expect(stats(v, "other").series.size).toBe(1)
    run(v, W + 60_000, [s("a")])
    expect(stats(v, "other").series.size).toBe(0)
    expect(stats(v, "other").datapoints).toBe(0)
  })
})

describe("enforce: dry-run", () => {
  it("forwards everything unchanged and counts in wouldDrop what the real run drops or strips", () => {
    const yaml = (action: string, extra = "") =>
      `rules:\n  - name: r\n    max_cardinality: 1\n    action: ${action}\n${extra}`
    const entries = [s("a", 2), s("b", 3), s("a")]
    for (const [action, extra, wouldDrop] of [
      ["drop", "", 3],
      ["log", "", 0],
      ["strip_labels", "    strip_labels: [id]\n", 3],
    ] as const) {
      const v = versionOf(yaml(action, extra), { dryRun: true })
      const out = run(v, T, entries)
      expect(out.pass).toEqual([2, 3, 1])
      expect(out.strip).toEqual([0, 0, 0])
      expect(out.counts.r).toEqual(counts("r", action, { passed: 6, wouldDrop, cardinalityExceeded: 3 }))
      // Accounted as the real run would: b was not admitted.
      expect(stats(v, "r").series.size).toBe(1)
    }
  })
})

describe("enforce: across a reload", () => {
  const adaptive = (groupBy: string) =>
    `rules:\n  - name: r\n    max_datapoints_rate: 10\n    action: adaptive\n    group_by: [${groupBy}]\n`
  const e = (service: string, team: string, dps: number) => s(`${service}${team}`, dps, { service, team })

  it("a changed group_by resets the groups; usage already shed stays out of the budget", () => {
    const v1 = versionOf(adaptive("service"))
    expect(run(v1, T, [e("A", "x", 6), e("B", "y", 3), e("C", "y", 2)]).pass).toEqual([6, 3, 2])
    expect([...stats(v1, "r").droppedGroups]).toEqual(["A"])
    const v2 = versionOf(adaptive("team"), { previous: v1 })
    const st = stats(v2, "r")
    expect(st.groups.size).toBe(0)
    expect(st.droppedGroups.size).toBe(0)
    expect(st.datapoints - st.shedDatapoints).toBe(5)
    // A flows again (its team x is not dropped); x reaches 6 and, over the limit, is the largest.
    expect(run(v2, T + 1, [e("A", "x", 5), e("A", "x", 1), e("B", "y", 1)]).pass).toEqual([5, 0, 1])
    expect([...st.droppedGroups]).toEqual(["x"])
  })

  it("a rule that turns adaptive starts from the usage it has", () => {
    const v1 = versionOf(
      "rules:\n  - name: r\n    max_datapoints_rate: 10\n    action: drop\n    group_by: [service]\n",
    )
    run(v1, T, [e("A", "x", 8), e("B", "y", 2)])
    const v2 = versionOf(adaptive("service"), { previous: v1 })
    // 11 > 10: A (8) is dropped, B goes on.
    expect(run(v2, T + 1, [e("B", "y", 1), e("A", "x", 1)]).pass).toEqual([1, 0])
  })
})

describe("docs/limits.md examples", () => {
  const traffic = [s("a"), s("b"), s("c", 3), s("a", 2), s("c")]
  const yaml = (action: string) => `rules:\n  - name: r\n    max_cardinality: 2\n    action: ${action}\n`

  it("log: everything passes; counted as drop would count", () => {
    const v = versionOf(yaml("log"))
    const out = run(v, T, traffic)
    expect(out.pass).toEqual([1, 1, 3, 2, 1])
    expect(out.counts.r).toEqual(counts("r", "log", { passed: 8, cardinalityExceeded: 4 }))
    expect([stats(v, "r").series.size, stats(v, "r").datapoints]).toEqual([2, 4])
  })

  it("drop in dry-run: everything passes, would_drop 4, c still not counted", () => {
    const v = versionOf(yaml("drop"), { dryRun: true })
    const out = run(v, T, traffic)
    expect(out.pass).toEqual([1, 1, 3, 2, 1])
    expect(out.counts.r).toEqual(counts("r", "drop", { passed: 8, wouldDrop: 4, cardinalityExceeded: 4 }))
    expect(stats(v, "r").series.size).toBe(2)
  })
})
