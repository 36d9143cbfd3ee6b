import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as ConsoleService from "../../src/console/service.js"
import * as EventLog from "../../src/events/log.js"
import * as Reload from "../../src/reload/reloader.js"
import type { Trigger } from "../../src/reload/trigger.js"
import * as Log from "../../src/telemetry/log.js"
import { Telemetry } from "../../src/telemetry/metrics.js"
import { hash, type MemoryFiles, memoryDecoder } from "../reload/harness.js"
import { tempDir } from "../support/governor.js"

/**
 * The rollback law, on the real pipeline in this process (files held in memory, a real event log):
 * after a rollback to version N, the active rules are version N's, the event log records an
 * attempt with trigger `rollback`, the files on disk are reported as differing until the next
 * reload reads them, and that reload makes the files on disk active.
 */

const rulesText = (rules: ReadonlyArray<readonly [string, number]>): string =>
  rules.length === 0
    ? "rules: []\n"
    : `rules:\n${rules.map(([n, c]) => `  - name: ${n}\n    max_cardinality: ${c}\n    action: drop\n`).join("")}`

const limitsFile = fc
  .uniqueArray(fc.tuple(fc.constantFrom("a", "b", "c", "d"), fc.integer({ min: 1, max: 3 })), {
    selector: (r) => r[0],
    maxLength: 3,
  })
  .map(rulesText)

/** What a version's rules limit: name, limits and action, in order. */
const shape = (v: Reload.ReloaderService) =>
  v.current().limits.rules.map((r) => ({ name: r.name, card: r.maxCardinality, action: r.action }))

describe("rollback law", () => {
  it("after rollback to N the active rules are N's, the log says rollback, and the next SIGHUP applies the disk", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(limitsFile, { minLength: 1, maxLength: 4 }),
        fc.nat(),
        limitsFile,
        async (history, pick, diskAfter) => {
          const dir = tempDir("mg-rollback-")
          const log = path.join(dir, "events.jsonl")
          const files: MemoryFiles = { limits: history[0] as string, config: "limits:\n  dry_run: false\n" }
          try {
            await Effect.gen(function* () {
              const reloader = yield* Reload.Reloader
              const console = yield* ConsoleService.Console
              const shapes = new Map<number, ReturnType<typeof shape>>([[1, shape(reloader)]])
              for (const text of history.slice(1)) {
                files.limits = text
                const a = yield* reloader.request("sighup")
                if (a.status === "applied") shapes.set(a.version, shape(reloader))
              }
              const applied = [...shapes.keys()]
              const n = applied[pick % applied.length] as number
              const before = reloader.current()
              const target = (yield* console.files({ run: undefined, version: n })).limits?.content ?? ""
              files.limits = diskAfter
              const attempt = yield* console.rollback({ run: undefined, version: n })
              expect(attempt.trigger).toBe("rollback")
              const active = reloader.current()
              expect(shape(reloader)).toEqual(shapes.get(n))
              expect(active.limitsSha256).toBe(hash(target))
              if (hash(target) === before.limitsSha256) {
                expect(attempt.status).toBe("unchanged")
              } else {
                expect(attempt).toMatchObject({ status: "applied", version: before.version + 1 })
                expect(reloader.versions().at(-1)).toMatchObject({ trigger: "rollback", rollback_of: n })
              }
              // The rollback did not read the disk: the status compares against the last read.
              expect(reloader.lastRead().limits).toBe(hash(history.at(-1) as string))

              const events = yield* EventLog.EventLog
              yield* events.flush
              const logged = EventLog.parseEventLog(fs.readFileSync(log, "utf8")).events
              expect(logged.some((e) => e.type === "ReloadRequested" && e.trigger === "rollback")).toBe(true)
              if (attempt.status === "applied") {
                expect(logged.at(-1)).toMatchObject({
                  type: "ConfigApplied",
                  trigger: "rollback",
                  version: attempt.version,
                })
              }

              const next = yield* reloader.request("sighup")
              expect(next.status).not.toBe("rejected")
              expect(reloader.current().limitsSha256).toBe(hash(diskAfter))
              expect(reloader.lastRead().limits).toBe(hash(diskAfter))
            }).pipe(
              Effect.provide(
                ConsoleService.layer.pipe(
                  Layer.provideMerge(
                    Reload.layer({
                      paths: { limits: "limits.yaml", config: "config.yaml" },
                      dryRunFlag: undefined,
                      debounceMs: 0,
                    }),
                  ),
                  Layer.provideMerge(memoryDecoder(files)),
                  Layer.provideMerge(EventLog.layer(log)),
                  Layer.provideMerge(Telemetry.test),
                  Layer.provideMerge(Log.layer("error", () => {})),
                ),
              ),
              Effect.scoped,
              Effect.runPromise,
            )
          } finally {
            fs.rmSync(dir, { recursive: true, force: true })
          }
        },
      ),
      { numRuns: 40 },
    )
  })

  it("with an event log, the versions listed are the last ones applied, bounded, however many reloads", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mg-versions-"))
    const files: MemoryFiles = { limits: rulesText([["a", 1]]), config: undefined }
    const kept = 4
    try {
      await Effect.gen(function* () {
        const reloader = yield* Reload.Reloader
        for (let i = 2; i <= 3 * kept + 3; i++) {
          files.limits = rulesText([["a", i]])
          yield* reloader.request("sighup")
          const listed = reloader.versions().map((v) => v.version)
          const from = Math.max(1, i - kept + 1)
          expect(listed).toEqual(Array.from({ length: i - from + 1 }, (_, j) => from + j))
        }
      }).pipe(
        Effect.provide(
          Reload.layer({
            paths: { limits: "limits.yaml", config: undefined },
            dryRunFlag: undefined,
            debounceMs: 0,
            versionsKept: kept,
          }).pipe(
            Layer.provideMerge(memoryDecoder(files)),
            Layer.provideMerge(EventLog.layer(path.join(dir, "events.jsonl"))),
            Layer.provideMerge(Telemetry.test),
          ),
        ),
        Effect.provide(Log.layer("error", () => {})),
        Effect.scoped,
        Effect.runPromise,
      )
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("without an event log, versions and their content are kept in memory, bounded", async () => {
    const files: MemoryFiles = { limits: rulesText([["a", 1]]), config: undefined }
    await Effect.gen(function* () {
      const reloader = yield* Reload.Reloader
      const console = yield* ConsoleService.Console
      const total = Reload.MAX_VERSIONS_WITH_CONTENT + 5
      for (let i = 2; i <= total; i++) {
        files.limits = rulesText([["a", i]])
        yield* reloader.request("sighup")
      }
      const { versions } = yield* console.versions
      expect(versions.length).toBe(Reload.MAX_VERSIONS_WITH_CONTENT)
      expect(versions.at(-1)?.version).toBe(total)
      expect((yield* console.files({ run: undefined, version: total })).limits?.content).toBe(files.limits)
      const gone = yield* Effect.flip(console.files({ run: undefined, version: 1 }))
      expect(gone._tag).toBe("VersionNotFound")
    }).pipe(
      Effect.provide(
        ConsoleService.layer.pipe(
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
        ),
      ),
      Effect.scoped,
      Effect.runPromise,
    )
  })
})

describe("versions kept in memory", () => {
  const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill)
  const version = (n: number, content: Reload.VersionContent | undefined): Reload.AppliedVersion => ({
    version: n,
    trigger: "sighup",
    limits_sha256: `l${n}`,
    config_sha256: "",
    rules_count: 0,
    dry_run: false,
    at: "",
    ...(content === undefined ? {} : { content }),
  })

  it("the oldest versions lose their content past the byte budget; shared bytes count once", () => {
    const big = bytes(40)
    const vs = [
      version(1, { limits: bytes(40), config: undefined }),
      version(2, { limits: big, config: undefined }),
      version(3, { limits: big, config: undefined }),
      version(4, { limits: bytes(50), config: undefined }),
    ]
    const kept = Reload.withinContentBudget(vs, 100)
    expect(kept.map((v) => v.version)).toEqual([1, 2, 3, 4])
    expect(kept.map((v) => v.content !== undefined)).toEqual([false, true, true, true])
    // A version whose files do not fit is skipped; older ones that fit keep theirs.
    expect(Reload.withinContentBudget(vs, 49).map((v) => v.content !== undefined)).toEqual([
      false,
      true,
      true,
      false,
    ])
  })
})

describe("a rollback is never coalesced", () => {
  const p = (trigger: Trigger, rollback = false): Reload.Pending => ({
    event: { trigger, at: 0, startedNs: 0n },
    reply: undefined,
    ...(rollback ? { content: { bytes: { limits: undefined, config: undefined }, of: 1 } } : {}),
  })

  it("a batch is one rollback alone, or the triggers up to the next rollback; the rest waits, in order", () => {
    const trigger = fc.constantFrom<Trigger>("sighup", "watch", "poll", "touch", "http")
    fc.assert(
      fc.property(fc.array(fc.tuple(trigger, fc.boolean()), { minLength: 1, maxLength: 12 }), (spec) => {
        let queue = spec.map(([t, r]) => p(t, r))
        const batches: Array<ReadonlyArray<Reload.Pending>> = []
        while (queue.length > 0) {
          const { batch, rest } = Reload.nextBatch(queue)
          expect(batch.length).toBeGreaterThan(0)
          const rollbacks = batch.filter((b) => b.content !== undefined).length
          expect(rollbacks === 0 || batch.length === 1).toBe(true)
          batches.push(batch)
          queue = [...rest]
        }
        // Nothing lost, nothing reordered.
        expect(batches.flat()).toEqual(spec.map(([t, r]) => p(t, r)))
      }),
    )
  })
})
