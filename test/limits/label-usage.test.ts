import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { LabelUsage, OTHER, promLabelName } from "../../src/limits/label-usage.js"
import { batchOf, type Entry } from "./engine.js"

const W = 60_000
const T = 1_700_000_040_000

describe("LabelUsage (-stats-labels)", () => {
  it("counts datapoints and distinct series per combination of values; a missing label is empty", () => {
    const u = new LabelUsage(["service", "env"], 100)
    u.observe(
      batchOf([
        ["m", { service: "a", env: "prod", id: "1" }, 2],
        ["m", { service: "a", env: "prod", id: "2" }, 1],
        ["m", { service: "a", env: "prod", id: "1" }, 3],
        ["n", { service: "b" }, 4],
      ]),
      T,
      W,
    )
    expect(u.read(T, W)).toEqual([
      { values: ["a", "prod"], datapoints: 6, series: 2 },
      { values: ["b", ""], datapoints: 4, series: 1 },
    ])
  })

  it("series are per window, datapoints since the start", () => {
    const u = new LabelUsage(["service"], 100)
    u.observe(batchOf([["m", { service: "a", id: "1" }, 1]]), T, W)
    expect(u.read(T + W, W)).toEqual([{ values: ["a"], datapoints: 1, series: 0 }])
    u.observe(batchOf([["m", { service: "a", id: "2" }, 1]]), T + W, W)
    expect(u.read(T + W, W)).toEqual([{ values: ["a"], datapoints: 2, series: 1 }])
  })

  it("law: never more than the bound of combinations; every datapoint is counted exactly once", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(
          fc.tuple(
            fc.constantFrom("a", "b", "c", "d", "e", "f", "g"),
            fc.nat(5),
            fc.integer({ min: 1, max: 4 }),
          ),
          {
            maxLength: 40,
          },
        ),
        (max, rows) => {
          const u = new LabelUsage(["service"], max)
          const entries: Array<Entry> = rows.map(([svc, id, d]) => ["m", { service: svc, id: String(id) }, d])
          u.observe(batchOf(entries), T, W)
          const out = u.read(T, W)
          expect(out.length).toBeLessThanOrEqual(max)
          expect(out.reduce((a, c) => a + c.datapoints, 0)).toBe(rows.reduce((a, [, , d]) => a + d, 0))
          const distinct = new Set(rows.map(([svc]) => svc)).size
          if (distinct <= max - 1) expect(out.some((c) => c.values[0] === OTHER)).toBe(false)
        },
      ),
    )
  })

  it("label names are exported as Prometheus accepts them", () => {
    expect(promLabelName("service.name")).toBe("service_name")
    expect(promLabelName("1x")).toBe("_1x")
  })
})
