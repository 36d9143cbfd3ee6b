import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Queue, Ref, Stream, TestClock } from "effect"
import * as fc from "effect/FastCheck"
import { sha256Hex } from "../../src/config/decode.js"
import * as EventLog from "../../src/events/log.js"
import * as Reload from "../../src/reload/reloader.js"
import { Reloader, type ReloaderService, STORM_GAP_MS } from "../../src/reload/reloader.js"
import { fold, type ReloadState, type StateEvent } from "../../src/reload/state.js"
import type { Trigger } from "../../src/reload/trigger.js"
import { pollTriggers, watchTriggers } from "../../src/reload/triggers.js"
import type { ConfigVersion } from "../../src/reload/version.js"
import * as Log from "../../src/telemetry/log.js"
import { type Instruments, Telemetry } from "../../src/telemetry/metrics.js"
import { limitsText, type MemoryFiles, memoryDecoder, value } from "./harness.js"

/**
 * Laws of the reload pipeline on the test clock: the files are held in memory (a decoder that
 * reads them from a cell takes no time), so when a reload starts, how long a trigger waits and
 * what each attempt folds are exact, with no wall-clock sleep anywhere.
 */

type Files = MemoryFiles

const PATHS = { limits: "limits.yaml", config: "config.yaml" }

interface Pipeline {
  readonly reloader: ReloaderService
  readonly telemetry: Instruments
}

/** A pipeline on the in-memory files, the test clock and an in-memory event log. */
const pipeline = (
  files: Files,
  options: { debounceMs?: number; dryRunFlag?: boolean; fault?: (load: number) => boolean } = {},
) =>
  Layer.build(
    Reload.layer({
      paths: { limits: PATHS.limits, config: files.config === undefined ? undefined : PATHS.config },
      dryRunFlag: options.dryRunFlag,
      debounceMs: options.debounceMs ?? 250,
      replayEvents: 100_000,
    }).pipe(
      Layer.provideMerge(memoryDecoder(files, options.fault)),
      Layer.provideMerge(EventLog.layer(undefined)),
      Layer.provideMerge(Telemetry.test),
      Layer.provideMerge(Log.layer("error", () => {})),
    ),
  ).pipe(
    Effect.map(
      (ctx): Pipeline => ({
        reloader: ctx.unsafeMap.get(Reloader.key) as ReloaderService,
        telemetry: ctx.unsafeMap.get(Telemetry.key) as Instruments,
      }),
    ),
  )

/** A request and its outcome, letting the test clock pass the storm gap if the pipeline waits for it. */
const requestNow = (reloader: ReloaderService, trigger: Trigger) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(reloader.request(trigger))
    yield* TestClock.adjust(STORM_GAP_MS)
    return yield* Fiber.join(fiber)
  })

/** The events the pipeline recorded so far (startup included), collected from its stream. */
const collect = (reloader: ReloaderService) =>
  Effect.gen(function* () {
    const seen: Array<StateEvent> = []
    yield* Effect.forkScoped(Stream.runForEach(reloader.events, (e) => Effect.sync(() => seen.push(e))))
    yield* Effect.yieldNow()
    return seen
  })

/** What two states must agree on: the active version's content, the counts, the run. */
const essence = (s: ReloadState) => ({
  runs: s.runs,
  running: s.running,
  applied: s.applied,
  unchanged: s.unchanged,
  rejected: s.rejected,
  restartRequired: s.restartRequired,
  active:
    s.active === undefined
      ? undefined
      : {
          version: s.active.version,
          limits: s.active.limitsSha256,
          config: s.active.configSha256,
          rules: s.active.limits.rules.map((r) => r.name),
          rulesCount: s.active.rulesCount,
          dryRun: s.active.dryRun,
          trigger: s.active.trigger,
          loadedAt: s.active.loadedAt,
          stats: [...s.active.stats.keys()],
        },
})

/** The rule stats by content, to compare two moments of one version. */
const statsOf = (v: ConfigVersion) =>
  [...v.stats].map(([rule, s]) => ({ rule, series: s.series.size, datapoints: s.datapoints }))

const VALID = [limitsText(["a"]), limitsText(["a", "b"]), limitsText(["b", "c", "d"]), limitsText([])]
const INVALID = ["rules:\n  - name: a\n    max_card", "rules:\n  - name: a\n    colour: red\n", ""]
const CONFIGS = ["limits:\n  dry_run: false\n", "limits:\n  dry_run: true\n", "memory:\n  limit_ratio: 0.5\n"]

const explicit = fc.constantFrom<Trigger>("sighup", "touch", "http")

/**
 * A trigger as it enters: enqueued (`submit`), or, as SIGHUP does, decided at once when the
 * pipeline is idle (`submitNow`).
 */
const send = (reloader: ReloaderService, t: Trigger, now: boolean) =>
  now ? reloader.submitNow(t, Effect.void) : reloader.submit(t)

describe("explicit triggers (test clock)", () => {
  it.scoped.prop(
    "law: a trigger waits only for the storm gap after the previous start, never for the debounce; none is lost",
    {
      gaps: fc.array(fc.integer({ min: 0, max: 120 }), { minLength: 1, maxLength: 40 }),
      t: explicit,
      now: fc.boolean(),
    },
    ({ gaps, t, now }) =>
      Effect.gen(function* () {
        const files: Files = { limits: VALID[0] as string, config: undefined }
        const { reloader } = yield* pipeline(files)
        for (const gap of gaps) {
          yield* TestClock.adjust(gap)
          yield* send(reloader, t, now)
        }
        yield* TestClock.adjust(1_000)
        yield* reloader.idle
        const attempts = (yield* reloader.attempts).filter((a) => a.trigger !== "startup")
        expect(attempts.reduce((n, a) => n + a.coalesced, 0)).toBe(gaps.length)
        let previous = Number.NEGATIVE_INFINITY
        for (const a of attempts) {
          const start = Date.parse(a.at)
          const firstTrigger = start - a.duration_seconds * 1000
          // Starts at once, or as soon as the storm gap after the previous start has passed.
          expect(start).toBe(Math.max(firstTrigger, previous + STORM_GAP_MS))
          previous = start
        }
      }),
    { fastCheck: { numRuns: 60 } },
  )

  it.scoped("100 SIGHUPs in 100 ms make at most 5 reloads, and every one is in a reload", () =>
    Effect.gen(function* () {
      const files: Files = { limits: VALID[0] as string, config: undefined }
      const { reloader } = yield* pipeline(files)
      files.limits = VALID[1] as string
      for (let i = 0; i < 100; i++) {
        yield* reloader.submitNow("sighup", Effect.void)
        yield* TestClock.adjust(1)
      }
      yield* TestClock.adjust(1_000)
      yield* reloader.idle
      const attempts = (yield* reloader.attempts).filter((a) => a.trigger !== "startup")
      expect(attempts.length).toBeLessThanOrEqual(5)
      expect(attempts.reduce((n, a) => n + a.coalesced, 0)).toBe(100)
      expect(attempts.map((a) => a.status)).toEqual(["applied", ...attempts.slice(1).map(() => "unchanged")])
    }),
  )

  it.scoped("a SIGHUP 80 ms after the last starts its reload at once (default debounce)", () =>
    Effect.gen(function* () {
      const files: Files = { limits: VALID[0] as string, config: undefined }
      const { reloader } = yield* pipeline(files, { debounceMs: 250 })
      for (let i = 0; i < 5; i++) {
        files.limits = VALID[(i + 1) % 2] as string
        yield* TestClock.adjust(80)
        const fiber = yield* Effect.fork(reloader.request("sighup"))
        // No time passes: the reload has run when every fiber waits again.
        yield* TestClock.adjust(0)
        const done = yield* Fiber.poll(fiber)
        expect(Option.isSome(done)).toBe(true)
        const outcome = yield* Fiber.join(fiber)
        expect(outcome.status).toBe("applied")
        expect(outcome.duration_seconds).toBe(0)
      }
    }),
  )
})

describe("the watch and the poll (test clock)", () => {
  it.scoped.prop(
    "law: one watch trigger per quiet period of the debounce, none while events keep coming",
    { gaps: fc.array(fc.integer({ min: 0, max: 600 }), { minLength: 1, maxLength: 30 }) },
    ({ gaps }) =>
      Effect.gen(function* () {
        const debounce = 250
        const events = yield* Queue.unbounded<string>()
        const fired: Array<number> = []
        const fiber = yield* Effect.forkScoped(
          Stream.runForEach(watchTriggers(Stream.fromQueue(events), debounce, Effect.succeed(true)), () =>
            Effect.map(TestClock.currentTimeMillis, (now) => {
              fired.push(now)
            }),
          ),
        )
        // The model: an event starts or extends a quiet period; it ends `debounce` after the last event.
        const expected: Array<number> = []
        let now = 0
        let lastEvent: number | undefined
        for (const gap of gaps) {
          if (lastEvent !== undefined && gap >= debounce) expected.push(lastEvent + debounce)
          yield* TestClock.adjust(gap)
          now += gap
          yield* Queue.offer(events, "..data")
          lastEvent = now
        }
        expected.push((lastEvent as number) + debounce)
        yield* TestClock.adjust(debounce)
        expect(fired).toEqual(expected)
        yield* Fiber.interrupt(fiber)
      }),
    { fastCheck: { numRuns: 60 } },
  )

  it.scoped("the poll checks once per interval and fires only when the content changed", () =>
    Effect.gen(function* () {
      const checks = yield* Ref.make(0)
      const changed = (n: number) => n % 3 === 2
      const fired: Array<number> = []
      yield* Effect.forkScoped(
        Stream.runForEach(
          pollTriggers(
            1_000,
            Ref.modify(checks, (n) => [changed(n), n + 1]),
          ),
          () =>
            Effect.map(TestClock.currentTimeMillis, (now) => {
              fired.push(now)
            }),
        ),
      )
      yield* TestClock.adjust(9_500)
      // One check per interval: 9 in 9.5 s; the 3rd, 6th and 9th find a change.
      expect(yield* Ref.get(checks)).toBe(9)
      expect(fired).toEqual([3_000, 6_000, 9_000])
    }),
  )
})

describe("the state is the fold of the events", () => {
  const step = fc.record({
    limits: fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...VALID) },
      { weight: 1, arbitrary: fc.constantFrom(...INVALID) },
    ),
    config: fc.constantFrom(...CONFIGS),
    triggers: fc.array(explicit, { minLength: 1, maxLength: 3 }),
    wait: fc.integer({ min: 0, max: 60 }),
    settle: fc.boolean(),
    now: fc.boolean(),
  })

  it.scoped.prop(
    "law: the event stream folded from empty equals the live state, after any interleaving",
    { steps: fc.array(step, { minLength: 1, maxLength: 12 }), flag: fc.constantFrom(undefined, true, false) },
    ({ steps, flag }) =>
      Effect.gen(function* () {
        const files: Files = { limits: VALID[0] as string, config: CONFIGS[0] as string }
        const { reloader } = yield* pipeline(files, flag === undefined ? {} : { dryRunFlag: flag })
        const seen = yield* collect(reloader)
        for (const s of steps) {
          files.limits = s.limits
          files.config = s.config
          for (const t of s.triggers) yield* send(reloader, t, s.now)
          yield* TestClock.adjust(s.wait)
          if (s.settle) {
            yield* TestClock.adjust(STORM_GAP_MS)
            yield* reloader.idle
          }
        }
        yield* TestClock.adjust(1_000)
        yield* reloader.idle
        yield* Effect.yieldNow()
        expect(essence(fold(seen))).toEqual(essence(yield* reloader.state.get))
      }),
    { fastCheck: { numRuns: 40 } },
  )

  it.scoped.prop(
    "law: a rejected or unchanged attempt leaves the very same version, its stats unchanged",
    { steps: fc.array(step, { minLength: 1, maxLength: 12 }) },
    ({ steps }) =>
      Effect.gen(function* () {
        const files: Files = { limits: VALID[1] as string, config: CONFIGS[0] as string }
        const { reloader } = yield* pipeline(files)
        for (const s of steps) {
          const before = reloader.current()
          const statsBefore = statsOf(before)
          files.limits = s.limits
          files.config = s.config
          const outcome = yield* requestNow(reloader, s.triggers[0] as Trigger)
          if (outcome.status === "applied") {
            expect(reloader.current().version).toBe(before.version + 1)
          } else {
            expect(reloader.current()).toBe(before)
            expect(statsOf(reloader.current())).toEqual(statsBefore)
          }
          expect(outcome.status).toBe(
            INVALID.includes(s.limits)
              ? "rejected"
              : sha256Hex(s.limits) === before.limitsSha256 && sha256Hex(s.config) === before.configSha256
                ? "unchanged"
                : "applied",
          )
        }
      }),
    { fastCheck: { numRuns: 40 } },
  )

  it.scoped("a change to a key read at start is reported as restart_required until it is undone", () =>
    Effect.gen(function* () {
      const files: Files = { limits: VALID[0] as string, config: "limits:\n  dry_run: false\n" }
      const { reloader, telemetry } = yield* pipeline(files)
      files.config = "limits:\n  dry_run: true\nmemory:\n  limit_ratio: 0.5\n"
      const changed = yield* requestNow(reloader, "sighup")
      expect(changed).toMatchObject({
        status: "applied",
        restart_required: ["memory.limit_ratio"],
        dry_run: true,
      })
      expect((yield* reloader.state.get).restartRequired).toEqual(["memory.limit_ratio"])
      expect(yield* Effect.promise(() => value(telemetry.restartRequired))).toBe(1)
      // A change of a key that reloads only: the restart is still required for memory.limit_ratio.
      files.config = "limits:\n  dry_run: false\nmemory:\n  limit_ratio: 0.5\n"
      expect((yield* requestNow(reloader, "sighup")).restart_required).toEqual(["memory.limit_ratio"])
      // Keys of the sections that reload (exporters, buffer) never need a restart.
      files.config =
        "limits:\n  dry_run: false\nmemory:\n  limit_ratio: 0.5\nbuffer:\n  size: 7\nexporters:\n  prw:\n    endpoint: http://127.0.0.1:1/api/v1/write\n"
      expect((yield* requestNow(reloader, "sighup")).restart_required).toEqual(["memory.limit_ratio"])
      files.config = "limits:\n  dry_run: false\n"
      const undone = yield* requestNow(reloader, "sighup")
      expect(undone).toMatchObject({ status: "applied", restart_required: [] })
      expect(yield* Effect.promise(() => value(telemetry.restartRequired))).toBe(0)
    }),
  )
})

describe("a defect inside an attempt", () => {
  it.scoped("is reported as an error attempt, and the pipeline serves the next trigger", () =>
    Effect.gen(function* () {
      const files: Files = { limits: VALID[0] as string, config: undefined }
      // Load 0 is startup; load 1 dies.
      const { reloader, telemetry } = yield* pipeline(files, { fault: (n) => n === 1 })
      files.limits = VALID[1] as string
      const failed = yield* requestNow(reloader, "http")
      expect(failed.status).toBe("error")
      expect(failed.error?.message).toContain("injected decoder defect")
      expect(failed.version).toBe(1)
      expect(reloader.current().version).toBe(1)
      expect(yield* Effect.promise(() => value(telemetry.reloadFailures))).toBe(1)
      const errors = (yield* Effect.promise(() => telemetry.reloadAttempts.get())).values.find(
        (v) => v.labels.trigger === "http" && v.labels.result === "error",
      )
      expect(errors?.value).toBe(1)
      // The pipeline goes on: the next triggers are served.
      expect((yield* requestNow(reloader, "sighup")).status).toBe("applied")
      expect(reloader.current().version).toBe(2)
      files.limits = VALID[2] as string
      expect((yield* requestNow(reloader, "sighup")).status).toBe("applied")
      expect((yield* reloader.attempts).map((a) => a.status)).toEqual([
        "applied",
        "error",
        "applied",
        "applied",
      ])
      expect(reloader.current().rulesCount).toBe(3)
    }),
  )

  it.scoped(
    "in an attempt decided at once (submitNow), is reported the same way, after its announcement",
    () =>
      Effect.gen(function* () {
        const files: Files = { limits: VALID[0] as string, config: undefined }
        const { reloader, telemetry } = yield* pipeline(files, { fault: (n) => n === 1 })
        const said: Array<string> = []
        const announce = Effect.sync(() => void said.push("received"))
        files.limits = VALID[1] as string
        yield* reloader.submitNow("sighup", announce)
        expect(reloader.current().version).toBe(1)
        yield* reloader.idle
        expect(said).toEqual(["received"])
        const [, failed] = yield* reloader.attempts
        expect(failed?.status).toBe("error")
        expect(failed?.error?.message).toContain("injected decoder defect")
        expect(yield* Effect.promise(() => value(telemetry.reloadFailures))).toBe(1)
        // Past the storm gap after the failed attempt, the next one is decided at once again.
        yield* TestClock.adjust(STORM_GAP_MS)
        yield* reloader.submitNow("sighup", announce)
        expect(reloader.current().version).toBe(2)
        yield* reloader.idle
        expect((yield* reloader.attempts).map((a) => a.status)).toEqual(["applied", "error", "applied"])
      }),
  )
})

/**
 * A loopback HTTP server answering every request with `onRequest` then "ok", and one client socket
 * connected to it, both closed with the scope; `answered` resolves at the first answer's bytes.
 */
const connectedServer = (onRequest: () => void) =>
  Effect.gen(function* () {
    const server = http.createServer((_req, res) => {
      onRequest()
      res.end("ok")
    })
    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
      () => Effect.async<void>((resume) => void server.close(() => resume(Effect.void))),
    )
    const accepted = new Promise<void>((resolve) => server.once("connection", () => resolve()))
    const socket = net.connect((server.address() as AddressInfo).port, "127.0.0.1")
    yield* Effect.addFinalizer(() => Effect.sync(() => socket.destroy()))
    yield* Effect.promise(() => accepted)
    const answered = new Promise<void>((resolve) => socket.once("data", () => resolve()))
    return { socket, answered }
  })

describe("an explicit trigger decided at once (submitNow)", () => {
  it.scopedLive(
    "its books wait for the requests that arrived while it was decided, however long that took (a real socket)",
    () =>
      Effect.gen(function* () {
        const files: Files = { limits: VALID[0] as string, config: undefined }
        const { reloader } = yield* pipeline(files)
        const order: Array<string> = []
        const { socket, answered } = yield* connectedServer(() => void order.push("answered"))
        const busy = (ms: number) => {
          const until = performance.now() + ms
          while (performance.now() < until) {
            // the main thread held, as by a long decision
          }
        }
        files.limits = VALID[2] as string
        // A status request on its way (on loopback it is in the server's socket at once), then the
        // trigger, decided in this turn, which goes on for 3 ms more: long past a 1 ms timer.
        socket.write("GET /api/v1/status/config HTTP/1.1\r\nHost: governor\r\n\r\n")
        busy(2)
        yield* reloader.submitNow(
          "sighup",
          Effect.sync(() => void order.push("books")),
        )
        expect(reloader.current().version).toBe(2)
        busy(3)
        yield* Effect.promise(() => answered)
        yield* reloader.idle
        expect(order).toEqual(["answered", "books"])
      }),
  )

  it.scopedLive("its books give way to a request that arrives while they are written (a real socket)", () =>
    Effect.gen(function* () {
      const files: Files = { limits: VALID[0] as string, config: undefined }
      const { reloader } = yield* pipeline(files)
      let booksDoneWhenAnswered: boolean | undefined
      const { socket, answered } = yield* connectedServer(() => {
        booksDoneWhenAnswered = Effect.runSync(reloader.attempts).some((a) => a.trigger === "sighup")
      })
      files.limits = VALID[2] as string
      // The request arrives with the books' first step (the announcement): it is answered before
      // their last (the attempt remembered), not after all of them.
      yield* reloader.submitNow(
        "sighup",
        Effect.sync(() => void socket.write("GET /api/v1/status/config HTTP/1.1\r\nHost: governor\r\n\r\n")),
      )
      yield* Effect.promise(() => answered)
      yield* reloader.idle
      expect(booksDoneWhenAnswered).toBe(false)
      expect((yield* reloader.attempts).at(-1)?.trigger).toBe("sighup")
    }),
  )

  it.scoped("on an idle pipeline: the new version is active when it returns; its events and log follow", () =>
    Effect.gen(function* () {
      const files: Files = { limits: VALID[0] as string, config: undefined }
      const { reloader } = yield* pipeline(files)
      const seen = yield* collect(reloader)
      const sighupEvents = () => seen.filter((e) => "trigger" in e && e.trigger === "sighup")
      const said: Array<string> = []
      files.limits = VALID[2] as string
      yield* reloader.submitNow(
        "sighup",
        Effect.sync(() => void said.push(`announced with ${sighupEvents().length} events recorded`)),
      )
      // Active at once: nothing recorded yet, nothing announced.
      expect(reloader.current().version).toBe(2)
      expect(reloader.current().rulesCount).toBe(3)
      expect(said).toEqual([])
      expect(sighupEvents()).toEqual([])
      yield* reloader.idle
      yield* Effect.yieldNow()
      // Then the books: the announcement first, then the events, as a queued reload records them.
      expect(said).toEqual(["announced with 0 events recorded"])
      expect(sighupEvents().map((e) => e._tag)).toEqual(["ReloadRequested", "ConfigApplied"])
      expect(essence(fold(seen))).toEqual(essence(yield* reloader.state.get))
      const last = (yield* reloader.attempts).at(-1)
      expect(last?.status).toBe("applied")
      expect(last?.duration_seconds).toBe(0)
    }),
  )

  it.scoped("while another trigger waits: announced at once and enqueued, decided by the pipeline", () =>
    Effect.gen(function* () {
      const files: Files = { limits: VALID[0] as string, config: undefined }
      const { reloader } = yield* pipeline(files)
      const said: Array<string> = []
      files.limits = VALID[1] as string
      yield* reloader.submit("http")
      yield* reloader.submitNow(
        "sighup",
        Effect.sync(() => void said.push("received")),
      )
      expect(said).toEqual(["received"])
      yield* TestClock.adjust(STORM_GAP_MS)
      yield* reloader.idle
      const attempts = (yield* reloader.attempts).filter((a) => a.trigger !== "startup")
      expect(attempts.map((a) => [a.trigger, a.coalesced, a.status])).toEqual([["http", 2, "applied"]])
    }),
  )
})
