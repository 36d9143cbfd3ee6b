import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, TestClock } from "effect"
import * as ConsoleService from "../../src/console/service.js"
import * as EventLog from "../../src/events/log.js"
import * as Reload from "../../src/reload/reloader.js"
import * as Log from "../../src/telemetry/log.js"
import { Telemetry } from "../../src/telemetry/metrics.js"
import { type MemoryFiles, memoryDecoder } from "../reload/harness.js"

const files: MemoryFiles = {
  limits: "rules:\n  - name: r\n    max_cardinality: 10\n    action: drop\n    group_by: [service]\n",
  config: undefined,
}

const services = ConsoleService.layer.pipe(
  Layer.provideMerge(
    Reload.layer({
      paths: { limits: "limits.yaml", config: undefined },
      dryRunFlag: undefined,
      debounceMs: 0,
    }),
  ),
  Layer.provideMerge(memoryDecoder(files)),
  Layer.provideMerge(EventLog.layer(undefined)),
  Layer.provideMerge(Telemetry.test),
  Layer.provideMerge(Log.layer("error", () => {})),
)

/** Lets the sampler's counter reads (promises, no timers) finish: the event loop turns, the clock does not move. */
const settle = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve))).pipe(
  Effect.repeatN(3),
)

describe("console traffic samples (test clock)", () => {
  it.scoped(
    "one sample at start, one per interval, the last TRAFFIC_SAMPLES kept; totals are the counters",
    () =>
      Effect.gen(function* () {
        const console = yield* ConsoleService.Console
        const telemetry = yield* Telemetry
        yield* settle
        expect((yield* console.traffic).length).toBe(1)
        telemetry.datapointsReceived.inc({ protocol: "otlp" }, 7)
        telemetry.datapointsSent.inc({ protocol: "prw" }, 5)
        telemetry.limitDropped.inc({ rule: "r", action: "drop" }, 2)
        yield* TestClock.adjust(ConsoleService.TRAFFIC_EVERY_MS - 1)
        yield* settle
        expect((yield* console.traffic).length).toBe(1)
        yield* TestClock.adjust(1)
        yield* settle
        const two = yield* console.traffic
        expect(two.length).toBe(2)
        expect(two[1]).toMatchObject({ received: 7, sent: 5, dropped: 2, would_drop: 0 })
        expect(Date.parse(two[1]?.at ?? "") - Date.parse(two[0]?.at ?? "")).toBe(
          ConsoleService.TRAFFIC_EVERY_MS,
        )
        yield* TestClock.adjust(ConsoleService.TRAFFIC_EVERY_MS * (ConsoleService.TRAFFIC_SAMPLES + 10))
        expect((yield* console.traffic).length).toBe(ConsoleService.TRAFFIC_SAMPLES)

        const rules = yield* console.rules
        expect(rules.rules).toEqual([
          {
            name: "r",
            action: "drop",
            max_cardinality: 10,
            max_datapoints_rate: 0,
            group_by: ["service"],
            cardinality: 0,
            datapoints: 0,
            dropped: 2,
            would_drop: 0,
            top_groups: [],
            utilisation_percent: 0,
            tiers: [],
            label_limits: [],
          },
        ])
      }).pipe(Effect.provide(services)),
  )
})
