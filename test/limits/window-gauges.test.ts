import * as fs from "node:fs"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer, TestClock } from "effect"
import * as Decoder from "../../src/config/decoder.js"
import * as EventLog from "../../src/events/log.js"
import { currentUsage, currentUsages } from "../../src/limits/stats.js"
import * as Reload from "../../src/reload/reloader.js"
import { Reloader } from "../../src/reload/reloader.js"
import * as Log from "../../src/telemetry/log.js"
import { Telemetry } from "../../src/telemetry/metrics.js"
import { tempDir } from "../support/governor.js"
import { run, versionOf } from "./engine.js"

/** 10s windows; T is 3s into one of them. */
const WINDOW = 10_000
const T = 1_700_000_003_000
const YAML = "window: 10s\nrules:\n  - name: r\n    max_cardinality: 100\n    action: drop\n"

const CARD = "metrics_governor_rule_current_cardinality"
const DPS = "metrics_governor_rule_current_datapoints"

/** The value of `name{rule="r"}` in the registry's text, or undefined when it is not exposed. */
const gauge = (text: string, name: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{rule="r"} `))
  return line === undefined ? undefined : Number(line.split(" ")[1])
}

const scrape = Effect.flatMap(Telemetry, (t) => Effect.promise(() => t.registry.metrics()))

describe("currentUsage", () => {
  it("counts of the window that contains now; 0 for an ended window and after a step back", () => {
    const v = versionOf(YAML)
    run(v, T, [
      ["m", { id: "a" }, 2],
      ["m", { id: "b" }, 1],
    ])
    const s = v.stats.get("r")
    if (s === undefined) expect.fail("no stats for r")
    const start = Math.floor(T / WINDOW) * WINDOW
    expect(currentUsage(s, WINDOW, T)).toEqual({ cardinality: 2, datapoints: 3 })
    expect(currentUsage(s, WINDOW, start)).toEqual({ cardinality: 2, datapoints: 3 })
    expect(currentUsage(s, WINDOW, start + WINDOW - 1)).toEqual({ cardinality: 2, datapoints: 3 })
    expect(currentUsage(s, WINDOW, start + WINDOW)).toEqual({ cardinality: 0, datapoints: 0 })
    expect(currentUsage(s, WINDOW, start - 1)).toEqual({ cardinality: 0, datapoints: 0 })
    // Reading does not roll the stats over: only the next request does.
    expect(s.series.size).toBe(2)
    expect(currentUsages(v, start + WINDOW)).toMatchObject([{ rule: "r", cardinality: 0, datapoints: 0 }])
  })
})

describe("the {rule} gauges read the clock at scrape time", () => {
  it.effect("show the current window's counts, and 0 once it ended with no new data", () =>
    Effect.gen(function* () {
      const telemetry = yield* Telemetry
      const v = versionOf(YAML)
      telemetry.setRuleSource((now) => currentUsages(v, now))
      yield* TestClock.adjust(T)
      run(v, yield* Clock.currentTimeMillis, [
        ["m", { id: "a" }, 2],
        ["m", { id: "b" }, 1],
      ])
      let text = yield* scrape
      expect([gauge(text, CARD), gauge(text, DPS)]).toEqual([2, 3])
      // 6.999s later: still the same window.
      yield* TestClock.adjust(6_999)
      text = yield* scrape
      expect([gauge(text, CARD), gauge(text, DPS)]).toEqual([2, 3])
      // The window ends; no request came: the gauges read 0, the rule stays exposed.
      yield* TestClock.adjust(1)
      text = yield* scrape
      expect([gauge(text, CARD), gauge(text, DPS)]).toEqual([0, 0])
      // New data in the new window counts from 0.
      run(v, yield* Clock.currentTimeMillis, [["m", { id: "c" }, 4]])
      text = yield* scrape
      expect([gauge(text, CARD), gauge(text, DPS)]).toEqual([1, 4])
      // Several windows without data: still 0.
      yield* TestClock.adjust(5 * WINDOW)
      text = yield* scrape
      expect([gauge(text, CARD), gauge(text, DPS)]).toEqual([0, 0])
    }).pipe(Effect.provide(Telemetry.test)),
  )

  it.scoped("the reload pipeline points the gauges at the active version's current window", () =>
    Effect.gen(function* () {
      const dir = tempDir("mg-gauges-")
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const file = path.join(dir, "limits.yaml")
      fs.writeFileSync(file, YAML)
      yield* TestClock.adjust(T)
      const layer = Reload.layer({
        paths: { limits: file, config: undefined },
        dryRunFlag: undefined,
        debounceMs: 0,
      }).pipe(
        Layer.provideMerge(Decoder.inline),
        Layer.provideMerge(EventLog.layer(undefined)),
        Layer.provideMerge(Telemetry.test),
        Layer.provideMerge(NodeContext.layer),
      )
      yield* Effect.gen(function* () {
        const reloader = yield* Reloader
        const v = yield* reloader.active
        run(v, yield* Clock.currentTimeMillis, [
          ["m", { id: "a" }, 1],
          ["m", { id: "b" }, 1],
        ])
        let text = yield* scrape
        expect([gauge(text, CARD), gauge(text, DPS)]).toEqual([2, 2])
        yield* TestClock.adjust(WINDOW)
        text = yield* scrape
        expect([gauge(text, CARD), gauge(text, DPS)]).toEqual([0, 0])
      }).pipe(Effect.provide(layer), Effect.provide(Log.layer("error", () => {})))
    }),
  )
})
