/**
 * What `config.yaml` configures beyond the limits (exporters, buffer, queue, TLS) is in force
 * before a version that changes it is visible: the reloader runs its appliers first.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Fiber, Option, type Scope } from "effect"
import fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import { tempDir } from "../support/governor.js"
import { type InProcess, limitsText, withPipeline, writeAtomic } from "./harness.js"

const dirs: Array<string> = []
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

const LIMITS = [limitsText(["a"]), limitsText(["a", "b"]), limitsText(["c"], 20)]
const CONFIGS = [
  "buffer:\n  size: 100\n",
  "buffer:\n  size: 200\nshutdown_timeout: 3s\n",
  "exporters:\n  prw:\n    endpoint: http://127.0.0.1:1/api/v1/write\n",
]

/** One step: which file changes (to which content, or to something invalid), and how it is reloaded. */
type Step = {
  readonly file: "limits" | "config"
  readonly content: number
  readonly invalid: boolean
  readonly how: "signal" | "request" | "queued"
}
const step: fc.Arbitrary<Step> = fc.record({
  file: fc.constantFrom("limits" as const, "config" as const),
  content: fc.nat({ max: 2 }),
  invalid: fc.nat({ max: 9 }).map((n) => n < 3),
  how: fc.constantFrom("signal" as const, "request" as const, "queued" as const),
})

/**
 * Runs `body` against a real pipeline over fresh files (the first limits and config contents), in a
 * scope of its own (appliers are registered for its life).
 */
const withFiles = <A>(
  body: (
    p: InProcess & { readonly limits: string; readonly config: string },
  ) => Effect.Effect<A, unknown, Scope.Scope>,
  logLine?: (line: string) => void,
): Promise<A> => {
  const dir = tempDir("mg-config-applied-")
  dirs.push(dir)
  const limits = path.join(dir, "limits.yaml")
  const config = path.join(dir, "config.yaml")
  writeAtomic(limits, LIMITS[0] as string)
  writeAtomic(config, CONFIGS[0] as string)
  return withPipeline(
    { paths: { limits, config }, dryRunFlag: undefined, debounceMs: 0 },
    (p) => Effect.scoped(body({ ...p, limits, config })),
    undefined,
    logLine,
  )
}

describe("a reload that changes config.yaml", () => {
  it("runs the appliers before its version is visible; a limits-only change is still decided at once", async () => {
    const seen = await withFiles(({ reloader, limits, config }) =>
      Effect.gen(function* () {
        const calls: Array<{ size: number | undefined; visible: number | undefined }> = []
        yield* reloader.onConfigApplied((spec) =>
          Effect.gen(function* () {
            // An applier may take its time (a DNS answer, a queue directory): the version waits.
            yield* Effect.sleep(20)
            calls.push({ size: spec.buffer?.size, visible: reloader.now().active?.version })
          }),
        )
        writeAtomic(config, CONFIGS[1] as string)
        yield* reloader.submitNow("sighup", Effect.void)
        const rightAfterSignal = reloader.now().active?.version
        yield* reloader.idle
        const afterConfig = reloader.now().active?.version
        writeAtomic(limits, LIMITS[1] as string)
        yield* reloader.submitNow("sighup", Effect.void)
        const rightAfterLimitsSignal = reloader.now().active?.version
        yield* reloader.idle
        return { calls, rightAfterSignal, afterConfig, rightAfterLimitsSignal }
      }),
    )
    // The config change waited for its applier, which ran while version 1 was still the visible one.
    expect(seen.rightAfterSignal).toBe(1)
    expect(seen.afterConfig).toBe(2)
    expect(seen.calls).toEqual([{ size: 200, visible: 1 }])
    // The limits change did not touch config.yaml: active at once, no applier run.
    expect(seen.rightAfterLimitsSignal).toBe(3)
  })

  it("an applier that dies is logged at error and the version still applies", async () => {
    const lines: Array<string> = []
    const seen = await withFiles(
      ({ reloader, config }) =>
        Effect.gen(function* () {
          yield* reloader.onConfigApplied(() => Effect.die(new Error("outlet exploded")))
          writeAtomic(config, CONFIGS[1] as string)
          const outcome = yield* reloader.request("http")
          return { status: outcome.status, version: reloader.current().version }
        }),
      (line) => lines.push(line),
    )
    expect(seen).toEqual({ status: "applied", version: 2 })
    const logged = lines.map(
      (l) => JSON.parse(l) as { level: string; message: string; fields: { error: string } },
    )
    expect(logged).toEqual([
      expect.objectContaining({
        level: "error",
        message: "config.yaml settings from the reload did not apply",
        fields: { error: expect.stringContaining("outlet exploded") },
      }),
    ])
  })

  it("a version that keeps config.yaml keeps its very spec; a new config.yaml gives a new one", async () => {
    const seen = await withFiles(({ reloader, limits, config }) =>
      Effect.gen(function* () {
        const first = reloader.current().main
        writeAtomic(limits, LIMITS[1] as string)
        yield* reloader.request("http")
        const afterLimits = reloader.current()
        writeAtomic(config, CONFIGS[1] as string)
        yield* reloader.request("http")
        const afterConfig = reloader.current()
        return {
          versions: [afterLimits.version, afterConfig.version],
          keptOnLimits: afterLimits.main === first,
          newOnConfig: afterConfig.main !== first && afterConfig.main.buffer?.size === 200,
        }
      }),
    )
    expect(seen).toEqual({ versions: [2, 3], keptOnLimits: true, newOnConfig: true })
  })

  it("an applier is registered for the life of its scope", async () => {
    const seen = await withFiles(({ reloader, config }) =>
      Effect.gen(function* () {
        let calls = 0
        yield* Effect.scoped(reloader.onConfigApplied(() => Effect.sync(() => void calls++)))
        writeAtomic(config, CONFIGS[1] as string)
        yield* reloader.submitNow("sighup", Effect.void)
        // Nothing applies config.yaml any more: decided at once again.
        const rightAfterSignal = reloader.now().active?.version
        yield* reloader.idle
        return { calls, rightAfterSignal }
      }),
    )
    expect(seen).toEqual({ calls: 0, rightAfterSignal: 2 })
  })

  it("what an applier forks stays interruptible, though the reload that runs it is not", async () => {
    const { outcomes, hung } = await withFiles(({ reloader, config }) =>
      Effect.gen(function* () {
        // As the receivers' secret watcher: each change interrupts the previous watcher, forks anew.
        let watcher: Fiber.RuntimeFiber<void> | undefined
        let hung = 0
        yield* reloader.onConfigApplied(() =>
          Effect.gen(function* () {
            if (watcher !== undefined) {
              const stopped = yield* Effect.timeoutOption(Fiber.interrupt(watcher), 2_000)
              if (Option.isNone(stopped)) hung++
            }
            watcher = yield* Effect.forkDaemon(Effect.never)
          }),
        )
        const outcomes: Array<string> = []
        for (const text of [CONFIGS[1], CONFIGS[2], CONFIGS[0]]) {
          writeAtomic(config, text as string)
          outcomes.push((yield* reloader.request("http")).status)
        }
        return { outcomes, hung }
      }),
    )
    expect(outcomes).toEqual(["applied", "applied", "applied"])
    expect(hung).toBe(0)
  }, 10_000)

  it("law: whatever the order of changes and triggers, the visible version's config.yaml spec has been applied", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        const problems = await withFiles(({ reloader, limits, config }) =>
          Effect.gen(function* () {
            const applied = new Set<string>([JSON.stringify(reloader.current().main)])
            const problems: Array<string> = []
            const check = (where: string) => {
              const active = reloader.now().active
              if (active !== undefined && !applied.has(JSON.stringify(active.main))) {
                problems.push(`${where}: version ${active.version} visible before its config.yaml applied`)
              }
            }
            yield* reloader.onConfigApplied((spec) =>
              Effect.gen(function* () {
                yield* Effect.sleep(1)
                applied.add(JSON.stringify(spec))
              }),
            )
            let done = false
            // A reader beside the reloads, as a request on the data path would be.
            const reader = yield* Effect.fork(
              Effect.gen(function* () {
                while (!done) {
                  check("reader")
                  yield* Effect.sleep(0)
                }
              }),
            )
            for (const [i, s] of steps.entries()) {
              const text = s.file === "limits" ? LIMITS[s.content] : CONFIGS[s.content]
              writeAtomic(s.file === "limits" ? limits : config, s.invalid ? "buffer: [\n" : (text as string))
              if (s.how === "signal") yield* reloader.submitNow("sighup", Effect.void)
              else if (s.how === "request") yield* reloader.request("http")
              else yield* reloader.submit("watch")
              check(`after step ${i}`)
            }
            yield* reloader.idle
            check("at the end")
            done = true
            yield* Fiber.join(reader)
            return problems
          }),
        )
        expect(problems).toEqual([])
      }),
      { numRuns: 40 },
    )
  }, 60_000)
})
