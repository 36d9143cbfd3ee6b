import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import { parseEventLog } from "../../src/events/log.js"
import type { Trigger } from "../../src/reload/trigger.js"
import { tempDir } from "../support/governor.js"
import { hash, limitsText, replayLog, value, withPipeline, writeAtomic } from "./harness.js"

const dirs: Array<string> = []
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})
const fresh = () => {
  const d = tempDir("mg-pipeline-")
  dirs.push(d)
  return d
}

/** A fresh directory with a limits file of the first valid content, and where its event log goes. */
const freshFiles = () => {
  const dir = fresh()
  const file = path.join(dir, "limits.yaml")
  writeAtomic(file, VALID[0] as string)
  return { file, eventLog: path.join(dir, "events.jsonl") }
}

/** Contents a reload may find: valid ones (named by their rule sets) and invalid ones. */
const VALID = [
  limitsText(["a"]),
  limitsText(["a", "b"]),
  limitsText(["b", "c", "d"]),
  limitsText([]),
  limitsText(["a"], 20),
]
const INVALID = [
  "rules:\n  - name: a\n    max_card",
  "rules:\n  - name: a\n    colour: red\n",
  "rules: [\n",
  "",
]
const content = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...VALID) },
  { weight: 1, arbitrary: fc.constantFrom(...INVALID) },
)
const trigger = fc.constantFrom<Trigger>("sighup", "watch", "poll", "touch", "http")

describe("the reload pipeline", () => {
  it("reports each reload's duration to the microsecond, not in whole milliseconds", async () => {
    const { file } = freshFiles()
    await withPipeline(
      { paths: { limits: file, config: undefined }, dryRunFlag: undefined, debounceMs: 0 },
      ({ reloader }) =>
        Effect.gen(function* () {
          const durations: Array<number> = []
          for (let i = 0; i < 6; i++) {
            writeAtomic(file, VALID[(i % 4) + 1] as string)
            const outcome = yield* reloader.request("http")
            expect(outcome.status).toBe("applied")
            durations.push(outcome.duration_seconds)
          }
          // And decided at once, in the signal's callback (`submitNow`).
          for (let i = 0; i < 6; i++) {
            writeAtomic(file, VALID[(i % 4) + 1] as string)
            yield* reloader.submitNow("sighup", Effect.void)
            yield* reloader.idle
          }
          const sighups = (yield* reloader.attempts).filter((a) => a.trigger === "sighup")
          expect(sighups.map((a) => a.status)).toEqual(Array(6).fill("applied"))
          // Timed by a clock of whole milliseconds, a reload of a few rules (well under one) would
          // report 0 or 0.001.
          const wholeMs = (s: number) => Number.isInteger(Math.round(s * 1e9) / 1e6)
          for (const ds of [durations, sighups.map((a) => a.duration_seconds)]) {
            expect(ds.filter((d) => !wholeMs(d)).length).toBeGreaterThan(0)
            for (const d of ds) expect(d).toBeGreaterThanOrEqual(0)
          }
        }),
    )
  })

  it("law (sequential): each settled reload applies a new valid content once, keeps the version on invalid or same content", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(content, trigger), { maxLength: 12 }), async (steps) => {
        const dir = fresh()
        const file = path.join(dir, "limits.yaml")
        writeAtomic(file, VALID[0] as string)
        const eventLog = path.join(dir, "events.jsonl")
        await withPipeline(
          { paths: { limits: file, config: undefined }, dryRunFlag: undefined, debounceMs: 0 },
          ({ reloader, telemetry }) =>
            Effect.gen(function* () {
              // The model: what the active content must be, and how many of each outcome.
              let active = VALID[0] as string
              let version = 1
              let rejected = 0
              let unchanged = 0
              for (const [text, t] of steps) {
                writeAtomic(file, text)
                const outcome = yield* reloader.request(t)
                if (INVALID.includes(text)) {
                  rejected++
                  expect(outcome.status).toBe("rejected")
                } else if (text === active) {
                  unchanged++
                  expect(outcome.status).toBe("unchanged")
                } else {
                  active = text
                  version++
                  expect(outcome.status).toBe("applied")
                }
                const v = yield* reloader.active
                expect(v.version).toBe(version)
                expect(v.limitsSha256).toBe(hash(active))
              }
              expect(yield* Effect.promise(() => value(telemetry.reloadFailures))).toBe(rejected)
              expect(yield* Effect.promise(() => value(telemetry.reloadsTotal))).toBe(steps.length - rejected)
              expect(yield* Effect.promise(() => value(telemetry.configVersion))).toBe(version)
              const state = yield* reloader.attempts
              expect(state.filter((a) => a.status === "unchanged")).toHaveLength(unchanged)
            }),
          eventLog,
        )
        // Folding the event log gives the state the live pipeline reported.
        const { state: folded, divergences } = await replayLog(eventLog)
        expect(divergences).toEqual([])
        const last = [...steps].reverse().find(([t]) => !INVALID.includes(t))?.[0] ?? (VALID[0] as string)
        expect(folded.active?.limitsSha256).toBe(hash(last))
        expect(folded.rejected).toBe(steps.filter(([t]) => INVALID.includes(t)).length)
        expect(folded.running).toBe(false)
      }),
      { numRuns: 25 },
    )
  })

  it("law (any interleaving): once idle, the active version holds the last valid content read, and the log agrees", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            text: content,
            triggers: fc.array(trigger, { minLength: 1, maxLength: 4 }),
            settle: fc.boolean(),
          }),
          { minLength: 1, maxLength: 10 },
        ),
        async (steps) => {
          const { file, eventLog } = freshFiles()
          const live = await withPipeline(
            { paths: { limits: file, config: undefined }, dryRunFlag: undefined, debounceMs: 3 },
            ({ reloader, telemetry }) =>
              Effect.gen(function* () {
                for (const s of steps) {
                  writeAtomic(file, s.text)
                  for (const t of s.triggers) yield* reloader.submit(t)
                  if (s.settle) yield* reloader.idle
                }
                yield* reloader.idle
                const v = yield* reloader.active
                return {
                  version: v.version,
                  sha: v.limitsSha256,
                  failures: yield* Effect.promise(() => value(telemetry.reloadFailures)),
                  attempts: yield* reloader.attempts,
                }
              }),
            eventLog,
          )
          const final = (steps[steps.length - 1] as { text: string }).text
          // The last trigger came after the last write, so the last reload read the final content.
          if (!INVALID.includes(final)) expect(live.sha).toBe(hash(final))
          else expect(VALID.map(hash)).toContain(live.sha)
          const { events } = parseEventLog(fs.readFileSync(eventLog, "utf8"))
          const applied = events.filter((e) => e.type === "ConfigApplied")
          // The version rose exactly once per applied change: 1, 2, 3…, each with new content.
          expect(applied.map((e) => e.version)).toEqual(applied.map((_, i) => i + 1))
          for (let i = 1; i < applied.length; i++) {
            expect(applied[i]?.limits_sha256).not.toBe(applied[i - 1]?.limits_sha256)
          }
          expect(live.version).toBe(applied.length)
          const rejectedEvents = events.filter((e) => e.type === "ReloadRejected").length
          expect(live.failures).toBe(rejectedEvents)
          expect(live.attempts.filter((a) => a.status === "rejected")).toHaveLength(rejectedEvents)
          // No trigger was lost: every submitted trigger is in exactly one reload.
          const coalesced = events.flatMap((e) =>
            e.type === "ReloadRequested" && e.trigger !== "startup" ? [e.coalesced] : [],
          )
          expect(coalesced.reduce((a, b) => a + b, 0)).toBe(steps.reduce((n, s) => n + s.triggers.length, 0))
          const { state: folded, divergences } = await replayLog(eventLog)
          expect(divergences).toEqual([])
          expect(folded.active?.version).toBe(live.version)
          expect(folded.active?.limitsSha256).toBe(live.sha)
        },
      ),
      { numRuns: 25 },
    )
  })

  it("never runs two reloads at once, and a trigger during a reload causes exactly one more", async () => {
    const dir = fresh()
    const file = path.join(dir, "limits.yaml")
    writeAtomic(file, VALID[0] as string)
    const attempts = await withPipeline(
      { paths: { limits: file, config: undefined }, dryRunFlag: undefined, debounceMs: 50 },
      ({ reloader }) =>
        Effect.gen(function* () {
          const first = yield* Effect.fork(reloader.request("http"))
          // These arrive while the first reload runs or waits for its window: one more reload, not ten.
          for (let i = 0; i < 10; i++) yield* reloader.submit("sighup")
          yield* first
          yield* reloader.idle
          return yield* reloader.attempts
        }),
    )
    const reloads = attempts.filter((a) => a.trigger !== "startup")
    expect(reloads.map((a) => a.coalesced).reduce((a, b) => a + b, 0)).toBe(11)
    expect(reloads.length).toBeLessThanOrEqual(2)
    for (let i = 1; i < reloads.length; i++) {
      const prev = reloads[i - 1] as { at: string; duration_seconds: number }
      expect(Date.parse((reloads[i] as { at: string }).at)).toBeGreaterThanOrEqual(Date.parse(prev.at))
    }
  })

  it("law: readers beside 1,000 swaps never observe a mixed version", async () => {
    const dir = fresh()
    const file = path.join(dir, "limits.yaml")
    const A = limitsText(["a", "b"])
    const B = limitsText(["c", "d", "e"], 20)
    const expected = new Map([
      [hash(A), { rules: ["a", "b"], cardinality: 10 }],
      [hash(B), { rules: ["c", "d", "e"], cardinality: 20 }],
    ])
    writeAtomic(file, A)
    const { reads, swaps } = await withPipeline(
      { paths: { limits: file, config: undefined }, dryRunFlag: undefined, debounceMs: 0 },
      ({ reloader }) =>
        Effect.gen(function* () {
          let reads = 0
          let done = false
          const reader = Effect.gen(function* () {
            let lastVersion = 0
            while (!done) {
              const v = yield* reloader.active
              const want = expected.get(v.limitsSha256)
              expect(want).toBeDefined()
              expect(v.limits.rules.map((r) => r.name)).toEqual(want?.rules)
              expect(v.limits.rules.every((r) => r.maxCardinality === want?.cardinality)).toBe(true)
              expect([...v.stats.keys()]).toEqual(want?.rules)
              expect(v.rulesCount).toBe(want?.rules.length)
              expect(v.version).toBeGreaterThanOrEqual(lastVersion)
              lastVersion = v.version
              reads++
              yield* Effect.sleep(0)
            }
          })
          const readers = yield* Effect.forkAll([reader, reader, reader, reader])
          let swaps = 0
          for (let i = 0; i < 1000; i++) {
            writeAtomic(file, i % 2 === 0 ? B : A)
            const outcome = yield* reloader.request("sighup")
            if (outcome.status === "applied") swaps++
            // A reload of small files runs without a pause; let the readers in between reloads too.
            if (i % 2 === 0) yield* Effect.sleep(0)
          }
          done = true
          yield* readers.await
          return { reads, swaps }
        }),
    )
    expect(swaps).toBe(1000)
    expect(reads).toBeGreaterThan(1000)
  })
})

describe("a SIGHUP decided at once, then shutdown", () => {
  it("the version it made active is in the event log before Stopped, whenever shutdown comes", async () => {
    for (let i = 0; i < 20; i++) {
      const { file, eventLog } = freshFiles()
      const served = await withPipeline(
        { paths: { limits: file, config: undefined }, dryRunFlag: undefined, debounceMs: 0 },
        ({ reloader }) =>
          Effect.gen(function* () {
            writeAtomic(file, VALID[1] as string)
            yield* reloader.submitNow("sighup", Effect.void)
            // Active at once; the scope closes now, within the millisecond before the books: before
            // the pipeline took the attempt, or (every other time) while it waits to record it.
            if (i % 2 === 1) yield* Effect.sleep(0)
            return reloader.current().version
          }),
        eventLog,
      )
      expect(served).toBe(2)
      const { events } = parseEventLog(fs.readFileSync(eventLog, "utf8"))
      expect(events.map((e) => e.type).slice(-3)).toEqual(["ReloadRequested", "ConfigApplied", "Stopped"])
      const { state, divergences } = await replayLog(eventLog)
      expect(divergences).toEqual([])
      expect(state.active?.version).toBe(served)
      expect(state.active?.limitsSha256).toBe(hash(VALID[1] as string))
    }
  })
})

describe("per-rule gauges across a reload", () => {
  it("a rule removed by a reload leaves the {rule} gauges; a new one appears", async () => {
    const dir = fresh()
    const file = path.join(dir, "limits.yaml")
    writeAtomic(file, limitsText(["kept", "removed"]))
    const [before, after] = await withPipeline(
      { paths: { limits: file, config: undefined }, dryRunFlag: undefined, debounceMs: 0 },
      ({ reloader, telemetry }) =>
        Effect.gen(function* () {
          const scrape = () => Effect.promise(() => telemetry.registry.metrics())
          const before = yield* scrape()
          writeAtomic(file, limitsText(["kept", "added"]))
          expect((yield* reloader.request("sighup")).status).toBe("applied")
          return [before, yield* scrape()] as const
        }),
    )
    for (const g of [
      "metrics_governor_rule_current_cardinality",
      "metrics_governor_rule_current_datapoints",
    ]) {
      expect(before).toContain(`${g}{rule="kept"} 0`)
      expect(before).toContain(`${g}{rule="removed"} 0`)
      expect(after).toContain(`${g}{rule="kept"} 0`)
      expect(after).toContain(`${g}{rule="added"} 0`)
      expect(after).not.toContain(`rule="removed"`)
    }
  })
})
