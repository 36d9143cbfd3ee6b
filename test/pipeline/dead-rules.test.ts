import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, TestClock } from "effect"
import { currentUsages } from "../../src/limits/stats.js"
import { deadTransitions, watchDeadRules } from "../../src/pipeline/dead-rules.js"
import * as Log from "../../src/telemetry/log.js"
import { run, s, versionOf } from "../limits/engine.js"

const usage = (rule: string, dead: boolean) => ({
  rule,
  cardinality: 0,
  datapoints: 0,
  memoryBytes: 0,
  lastMatchSeconds: 1,
  dead,
})

describe("deadTransitions", () => {
  it("a rule dies once, comes back once; a rule that leaves the config does neither", () => {
    const first = deadTransitions(new Set(), [usage("a", true), usage("b", false)])
    expect(first.died.map((u) => u.rule)).toEqual(["a"])
    expect(first.revived).toEqual([])
    const again = deadTransitions(first.dead, [usage("a", true), usage("b", false)])
    expect(again.died).toEqual([])
    const back = deadTransitions(again.dead, [usage("a", false)])
    expect(back.revived.map((u) => u.rule)).toEqual(["a"])
    const gone = deadTransitions(new Set(["x"]), [usage("a", false)])
    expect(gone.revived).toEqual([])
    expect([...gone.dead]).toEqual([])
  })
})

describe("watchDeadRules", () => {
  it.effect("logs once when a rule dies and once when it matches again, on the test clock", () =>
    Effect.gen(function* () {
      const lines: Array<{ message: string; fields: Record<string, unknown> }> = []
      const v = versionOf("dead_rule_interval: 1m\nrules:\n  - name: r\n")
      const fiber = yield* watchDeadRules((now) => currentUsages(v, now), 10_000).pipe(
        Effect.provide(Log.layer("info", (l) => lines.push(JSON.parse(l)))),
        Effect.fork,
      )
      const messages = () => lines.map((l) => `${l.message} ${String(l.fields.rule)}`)
      yield* TestClock.adjust(Duration.seconds(50))
      expect(messages()).toEqual([])
      yield* TestClock.adjust(Duration.seconds(20)) // 70 s: dead since 60 s
      expect(messages()).toEqual(["limits rule is dead: it matched nothing for dead_rule_interval r"])
      yield* TestClock.adjust(Duration.minutes(5))
      expect(lines.length).toBe(1)
      run(v, 400_000, [s("a")])
      yield* TestClock.adjust(Duration.seconds(30))
      expect(messages().slice(1)).toEqual(["limits rule matches again r"])
      yield* Fiber.interrupt(fiber)
    }),
  )
})
