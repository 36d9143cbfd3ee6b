import { Clock, Context, Deferred, Effect, Either, Layer, Queue, Ref, Stream, SubscriptionRef } from "effect"
import { ConfigDecoder } from "../config/decoder.js"
import { formatIssue } from "../config/errors.js"
import { type ConfigPaths, hashOfRead, MISSING_HASH } from "../config/load.js"
import { EventLog } from "../events/log.js"
import { currentUsages } from "../limits/stats.js"
import { logError, logInfo } from "../telemetry/log.js"
import { Telemetry } from "../telemetry/metrics.js"
import { runSliced } from "../threads/slices.js"
import { type Decision, decideSteps } from "./decide.js"
import type { Trigger, TriggerEvent } from "./trigger.js"
import type { ConfigVersion } from "./version.js"

/** What the reload pipeline needs to know, fixed at start. */
export interface ReloadSettings {
  readonly paths: ConfigPaths
  /** `-limits-dry-run` when given: re-applied after every reload and wins over `limits.dry_run`. */
  readonly dryRunFlag: boolean | undefined
  /** Triggers closer than this are coalesced: a reload starts at most once per debounce window. */
  readonly debounceMs: number
  /** `-config-max-bytes`: the watcher and the poller read the files with the reload's bound. */
  readonly maxBytes?: number
}

export type ReloadResult = "applied" | "unchanged" | "rejected"

/** One reload attempt as `/api/v1/status/reloads`, `POST /-/reload` and the logs report it. */
export interface ReloadAttempt {
  readonly status: ReloadResult
  readonly trigger: Trigger
  /** Triggers coalesced into this attempt. */
  readonly coalesced: number
  readonly at: string
  /** The active version after the attempt (0 when startup failed). */
  readonly version: number
  readonly limits_sha256: string
  readonly config_sha256: string
  readonly rules_count: number
  readonly dry_run: boolean
  readonly duration_seconds: number
  readonly error?: { readonly message: string; readonly issues: ReadonlyArray<unknown> }
}

/** Content hashes as last read by a reload; what the watcher and the poller compare against. */
export interface FileHashes {
  readonly limits: string
  readonly config: string
}

/** Startup found the configuration invalid: the process exits 1 with the same report as `validate`. */
export class StartupRejected extends Error {
  readonly _tag = "StartupRejected"
  constructor(readonly lines: ReadonlyArray<string>) {
    super(lines.join("\n"))
  }
}

export interface ReloaderService {
  /** The active version; every unit of work reads it once. */
  readonly active: SubscriptionRef.SubscriptionRef<ConfigVersion>
  /** Enqueues a trigger; returns at once. */
  readonly submit: (trigger: Trigger) => Effect.Effect<void>
  /** Enqueues a trigger and waits for the outcome of the reload that includes it. */
  readonly request: (trigger: Trigger) => Effect.Effect<ReloadAttempt>
  /** Recent attempts, newest last (bounded). */
  readonly attempts: Effect.Effect<ReadonlyArray<ReloadAttempt>>
  readonly lastAttempted: Effect.Effect<FileHashes>
  /** Completes once no trigger is queued and no reload is running. */
  readonly idle: Effect.Effect<void>
  readonly settings: ReloadSettings
}

export class Reloader extends Context.Tag("metrics-governor/Reloader")<Reloader, ReloaderService>() {}

interface Pending {
  readonly event: TriggerEvent
  readonly reply: Deferred.Deferred<ReloadAttempt> | undefined
}

const MAX_ATTEMPTS_KEPT = 100
/** The hash recorded for a configured file that cannot be read; the watcher and poller use it too. */
export const MISSING = MISSING_HASH

const issuesJson = (d: Extract<Decision, { _tag: "Rejected" }>) => ({
  message: d.error.message,
  issues: d.error.issues.map((i) => ({ ...i })),
})

/**
 * The reload pipeline: one worker takes triggers from one queue, coalesces those that arrive within
 * the debounce window (and while a reload runs) into a single reload, reads and validates both files,
 * decides, swaps the active version in one step, appends the event, and publishes metrics and logs.
 * Two reloads never run at once and no trigger is lost.
 */
export const make = (settings: ReloadSettings) =>
  Effect.gen(function* () {
    const telemetry = yield* Telemetry
    const events = yield* EventLog
    const decoder = yield* ConfigDecoder
    const attemptsRef = yield* Ref.make<ReadonlyArray<ReloadAttempt>>([])
    const lastAttemptedRef = yield* Ref.make<FileHashes>({ limits: "", config: "" })
    const outstanding = yield* SubscriptionRef.make(0)
    const queue = yield* Queue.unbounded<Pending>()
    const limitsPath = settings.paths.limits ?? settings.paths.config ?? ""

    /** Reads, validates and decides; appends the events. Does not swap. */
    const attempt = (current: ConfigVersion | undefined, batch: ReadonlyArray<Pending>) =>
      Effect.gen(function* () {
        const first = (batch[0] as Pending).event
        yield* events.append({ type: "ReloadRequested", trigger: first.trigger, coalesced: batch.length })
        const { read, decoded } = yield* decoder.load(settings.paths)
        const hashes = { limits: hashOfRead(read.limits), config: hashOfRead(read.main) }
        yield* Ref.set(lastAttemptedRef, hashes)
        if (read.limits !== undefined && Either.isRight(read.limits)) {
          yield* events.storeSnapshot(hashes.limits, read.limits.right.bytes)
        }
        if (read.main !== undefined && Either.isRight(read.main)) {
          yield* events.storeSnapshot(hashes.config, read.main.right.bytes)
        }
        const now = yield* Clock.currentTimeMillis
        // In slices: a version of tens of thousands of rules is built while requests go on.
        const decision = yield* runSliced(
          decideSteps(current, decoded, { trigger: first.trigger, now, dryRunFlag: settings.dryRunFlag }),
        )
        const active = decision.version
        const paths = {
          limits_path: settings.paths.limits ?? null,
          config_path: settings.paths.config ?? null,
        }
        switch (decision._tag) {
          case "Applied":
            yield* events.append({
              type: "ConfigApplied",
              trigger: first.trigger,
              version: decision.version.version,
              limits_sha256: decision.version.limitsSha256,
              config_sha256: decision.version.configSha256,
              ...paths,
              rules_count: decision.version.rulesCount,
              dry_run: decision.version.dryRun,
            })
            break
          case "Unchanged":
            yield* events.append({
              type: "ConfigUnchanged",
              trigger: first.trigger,
              version: decision.version.version,
              limits_sha256: decision.version.limitsSha256,
              config_sha256: decision.version.configSha256,
            })
            break
          case "Rejected":
            yield* events.append({
              type: "ReloadRejected",
              trigger: first.trigger,
              version: current?.version ?? 0,
              limits_sha256: hashes.limits === MISSING ? "" : hashes.limits,
              config_sha256: hashes.config === MISSING ? "" : hashes.config,
              ...paths,
              error: issuesJson(decision),
            })
        }
        // Trigger to decision: after the files were read, decoded, validated and decided on.
        const decidedAt = yield* Clock.currentTimeMillis
        const result: ReloadResult =
          decision._tag === "Applied" ? "applied" : decision._tag === "Unchanged" ? "unchanged" : "rejected"
        const record: ReloadAttempt = {
          status: result,
          trigger: first.trigger,
          coalesced: batch.length,
          at: new Date(now).toISOString(),
          version: active?.version ?? 0,
          limits_sha256: active?.limitsSha256 ?? "",
          config_sha256: active?.configSha256 ?? "",
          rules_count: active?.rulesCount ?? 0,
          dry_run: active?.dryRun ?? false,
          duration_seconds: Math.max(0, decidedAt - first.at) / 1000,
          ...(decision._tag === "Rejected" ? { error: issuesJson(decision) } : {}),
        }
        return { decision, record }
      })

    /** Metrics and the contract's log lines for one attempt. */
    const publish = (decision: Decision, record: ReloadAttempt) =>
      Effect.gen(function* () {
        const t = telemetry
        t.reloadAttempts.inc({ trigger: record.trigger, result: record.status })
        t.reloadDuration.observe(record.duration_seconds)
        const isStartup = record.trigger === "startup"
        if (decision._tag === "Rejected") {
          t.reloadFailures.inc()
          t.lastReloadSuccessful.set(0)
          yield* logError("limits config reload failed, keeping current config", {
            error: decision.error.message,
            path: decision.error.path || limitsPath,
            trigger: record.trigger,
            version: record.version,
          })
        } else {
          t.lastReloadSuccessful.set(1)
          if (!isStartup) {
            t.reloadsTotal.inc()
            t.reloadLastSuccess.set(Date.parse(record.at) / 1000)
          }
          yield* logInfo("limits config reloaded successfully", {
            rules_count: record.rules_count,
            result: record.status,
            trigger: record.trigger,
            version: record.version,
            limits_sha256: record.limits_sha256,
            config_sha256: record.config_sha256,
          })
        }
        if (decision._tag === "Applied") {
          const v = decision.version
          t.configVersion.set(v.version)
          t.configInfo.reset()
          t.configInfo.set({ limits_sha256: v.limitsSha256, config_sha256: v.configSha256 }, 1)
          t.limitsRules.set(v.rulesCount)
          t.limitsDryRun.set(v.dryRun ? 1 : 0)
          const was = decision.previous?.dryRun ?? false
          if (v.dryRun !== was) {
            yield* logInfo(v.dryRun ? "limits dry-run enabled" : "limits dry-run disabled", {
              dry_run: v.dryRun,
              source: v.dryRunSource === "flag" ? "-limits-dry-run flag" : "limits.dry_run in config",
            })
          }
        }
        yield* Ref.update(attemptsRef, (a) =>
          a.length >= MAX_ATTEMPTS_KEPT ? [...a.slice(1), record] : [...a, record],
        )
      })

    yield* events.append({
      type: "Started",
      pid: process.pid,
      limits_path: settings.paths.limits ?? null,
      config_path: settings.paths.config ?? null,
    })
    // Startup is the first attempt; a rejection ends the program (exit 1).
    const startedAt = yield* Clock.currentTimeMillis
    const startup = yield* attempt(undefined, [
      { event: { trigger: "startup", at: startedAt }, reply: undefined },
    ])
    yield* publish(startup.decision, startup.record)
    if (startup.decision._tag !== "Applied") {
      const d = startup.decision
      return yield* Effect.fail(
        new StartupRejected(d._tag === "Rejected" ? d.error.issues.map(formatIssue) : ["startup: no config"]),
      )
    }
    const active = yield* SubscriptionRef.make(startup.decision.version)
    telemetry.setRuleSource((now) => currentUsages(Effect.runSync(SubscriptionRef.get(active)), now))
    yield* Effect.addFinalizer(() =>
      SubscriptionRef.get(active).pipe(
        Effect.flatMap((v) => events.append({ type: "Stopped", version: v.version })),
      ),
    )

    let lastStart = Number.NEGATIVE_INFINITY
    const processBatch = (head: Pending) =>
      Effect.gen(function* () {
        const wait = lastStart + settings.debounceMs - (yield* Clock.currentTimeMillis)
        if (wait > 0) yield* Effect.sleep(wait)
        const batch = [head, ...(yield* Queue.takeAll(queue))]
        lastStart = yield* Clock.currentTimeMillis
        const current = yield* SubscriptionRef.get(active)
        const { decision, record } = yield* attempt(current, batch)
        if (decision._tag === "Applied") yield* SubscriptionRef.set(active, decision.version)
        yield* publish(decision, record)
        for (const p of batch) if (p.reply !== undefined) yield* Deferred.succeed(p.reply, record)
        yield* SubscriptionRef.update(outstanding, (n) => n - batch.length)
      }).pipe(Effect.uninterruptible)
    // Waiting for a trigger is interruptible (shutdown); a reload, once started, runs to its end.
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(queue), processBatch)))

    const enqueue = (trigger: Trigger, reply: Deferred.Deferred<ReloadAttempt> | undefined) =>
      Effect.gen(function* () {
        const at = yield* Clock.currentTimeMillis
        yield* SubscriptionRef.update(outstanding, (n) => n + 1)
        yield* Queue.offer(queue, { event: { trigger, at }, reply })
      })

    return {
      active,
      settings,
      submit: (trigger) => enqueue(trigger, undefined),
      request: (trigger) =>
        Effect.gen(function* () {
          const reply = yield* Deferred.make<ReloadAttempt>()
          yield* enqueue(trigger, reply)
          return yield* Deferred.await(reply)
        }),
      attempts: Ref.get(attemptsRef),
      lastAttempted: Ref.get(lastAttemptedRef),
      idle: outstanding.changes.pipe(
        Stream.takeUntil((n) => n === 0),
        Stream.runDrain,
      ),
    } satisfies ReloaderService
  })

export const layer = (settings: ReloadSettings) => Layer.scoped(Reloader, make(settings))
