import {
  Cause,
  Clock,
  Context,
  Deferred,
  Effect,
  Either,
  Layer,
  PubSub,
  Queue,
  Ref,
  Runtime,
  type Scope,
  Stream,
  SubscriptionRef,
} from "effect"
import { sha256Hex } from "../config/decode.js"
import { ConfigDecoder } from "../config/decoder.js"
import { formatIssue } from "../config/errors.js"
import {
  type ConfigLoadError,
  type ConfigPaths,
  type ContentHashes,
  type FileRead,
  hashesOf,
  type LoadedConfig,
  MISSING_HASH,
  type ReadBytes,
  sameContent,
} from "../config/load.js"
import { EventLog } from "../events/log.js"
import { currentUsages } from "../limits/stats.js"
import { logError, logInfo, logWarn } from "../telemetry/log.js"
import { Telemetry } from "../telemetry/metrics.js"
import { runSliced, runToEnd, yieldToEventLoop } from "../threads/slices.js"
import {
  apply,
  applySteps,
  decide,
  initialState,
  logEventOf,
  type ReloadState,
  type StateEvent,
} from "./state.js"
import type { Trigger, TriggerEvent } from "./trigger.js"
import type { ConfigVersion } from "./version.js"

/** What the reload pipeline needs to know, fixed at start. */
export interface ReloadSettings {
  readonly paths: ConfigPaths
  /** `-limits-dry-run` when given: re-applied after every reload and wins over `limits.dry_run`. */
  readonly dryRunFlag: boolean | undefined
  /**
   * `-reload-debounce`: how long the file watch waits for a directory to be quiet. Explicit
   * triggers are not debounced; in a storm of them, reloads start at most once per
   * `min(debounce, STORM_GAP_MS)`.
   */
  readonly debounceMs: number
  /** `-config-max-bytes`: the watcher and the poller read the files with the reload's bound. */
  readonly maxBytes?: number
  /** Events kept for a subscriber that arrives late (`events`); 0 by default. */
  readonly replayEvents?: number
  /** Versions `versions` lists when the event log keeps their content; `MAX_VERSIONS_KEPT` by default. */
  readonly versionsKept?: number
}

/** `error`: the attempt failed inside the governor (a defect), not because of the files. */
export type ReloadResult = "applied" | "unchanged" | "rejected" | "error"

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
  /** Keys of `config.yaml` changed since start that take effect only after a restart. */
  readonly restart_required: ReadonlyArray<string>
  readonly error?: { readonly message: string; readonly issues: ReadonlyArray<unknown> }
}

/** The bytes of a version's files, as a rollback makes them active again (`undefined`: no such file). */
export interface VersionContent {
  readonly limits: Uint8Array | undefined
  readonly config: Uint8Array | undefined
}

/** One version this process applied, as `/api/v1/status/versions` lists it. */
export interface AppliedVersion {
  readonly version: number
  readonly trigger: Trigger
  readonly limits_sha256: string
  readonly config_sha256: string
  readonly rules_count: number
  readonly dry_run: boolean
  readonly at: string
  /** A rollback: the version whose content it made active again. */
  readonly rollback_of?: number
  /** The files' bytes, kept in memory when no event log keeps them as snapshots. */
  readonly content?: VersionContent
}

/** Startup found the configuration invalid: the process exits 1 with the same report as `validate`. */
export class StartupRejected extends Error {
  readonly _tag = "StartupRejected"
  constructor(readonly lines: ReadonlyArray<string>) {
    super(lines.join("\n"))
  }
}

export interface ReloaderService {
  /** The reload state: the fold of every event this run recorded (see `state.ts`). */
  readonly state: SubscriptionRef.SubscriptionRef<ReloadState>
  /** The active version, read without an effect: every unit of work reads it once. */
  readonly current: () => ConfigVersion
  /** The reload state as last recorded, read without an effect (what `state` holds). */
  readonly now: () => ReloadState
  /** The active version, as an effect. */
  readonly active: Effect.Effect<ConfigVersion>
  /**
   * Every event recorded from the moment of subscription on (and the last `replayEvents` before
   * it), with its content: folded with `apply` from the empty state, they give `state`.
   */
  readonly events: Stream.Stream<StateEvent>
  /** Enqueues a trigger; returns at once. */
  readonly submit: (trigger: Trigger) => Effect.Effect<void>
  /**
   * An explicit trigger (SIGHUP) decided at once: when no reload is running or queued, the storm
   * gap has passed and both files are small enough to be read and decoded in the calling thread,
   * the attempt is decided and its new state made active right here, with no wait; its events,
   * metrics and log lines (first `announce`, e.g. "received SIGHUP") follow once the event loop
   * has run, so the requests that waited meanwhile are answered first. Otherwise `announce` runs
   * and the trigger is enqueued as `submit` does.
   */
  readonly submitNow: (trigger: Trigger, announce: Effect.Effect<void>) => Effect.Effect<void>
  /**
   * `submitNow` as a plain call, for a signal's callback: no fiber is started on the way to the
   * decision (only `announce` runs in one, when the trigger is enqueued rather than decided).
   */
  readonly submitNowSync: (trigger: Trigger, announce: Effect.Effect<void>) => void
  /** Enqueues a trigger and waits for the outcome of the reload that includes it. */
  readonly request: (trigger: Trigger) => Effect.Effect<ReloadAttempt>
  /** Recent attempts, newest last (bounded). */
  readonly attempts: Effect.Effect<ReadonlyArray<ReloadAttempt>>
  /** Content hashes as last read by a reload; what the watcher and the poller compare against. */
  readonly lastAttempted: Effect.Effect<ContentHashes>
  /** `lastAttempted`, read without an effect: the files on disk as the last reload read them. */
  readonly lastRead: () => ContentHashes
  /**
   * Makes `content` (an earlier version's files) active as a new version, with trigger `rollback`,
   * through the pipeline like any trigger: decided, applied or rejected, recorded. The files on
   * disk are not read; the next file trigger or SIGHUP reads them as usual.
   */
  readonly rollback: (content: VersionContent, of: number) => Effect.Effect<ReloadAttempt>
  /**
   * The versions applied in this run, oldest first (bounded: the last `MAX_VERSIONS_KEPT`; with
   * their content when no event log keeps it).
   */
  readonly versions: () => ReadonlyArray<AppliedVersion>
  /** Completes once no trigger is queued and no reload is running. */
  readonly idle: Effect.Effect<void>
  /**
   * Registers what a new `config.yaml` configures beyond the limits (exporters, buffer, queue,
   * TLS material): run with the new spec when an applied version changes `config.yaml`, before the
   * version is recorded and made active, so that once the status, the metrics or a reload's answer
   * show the version, its settings are in force. A failure is the applier's to report (it keeps
   * what was in force); a defect is logged and the version still applies. Such a version is never
   * decided at once (`submitNow`): it goes through the pipeline. Registered for the life of the
   * scope.
   */
  readonly onConfigApplied: (applier: MainApplier) => Effect.Effect<void, never, Scope.Scope>
  readonly settings: ReloadSettings
}

/** Applies a new `config.yaml` spec to the parts it configures (see `onConfigApplied`). */
export type MainApplier = (spec: ConfigVersion["main"]) => Effect.Effect<void>

export class Reloader extends Context.Tag("metrics-governor/Reloader")<Reloader, ReloaderService>() {}

export interface Pending {
  readonly event: TriggerEvent
  readonly reply: Deferred.Deferred<ReloadAttempt> | undefined
  /** A rollback: the content to apply instead of the files on disk; never coalesced with others. */
  readonly content?: { readonly bytes: VersionContent; readonly of: number }
  /** An attempt already decided by `submitNow`, left to record; never coalesced with others. */
  readonly decided?: DecidedNow
}

/** What `submitNow` did at once: the attempt's decision and new state, or the defect it met. */
export type DecidedNow =
  | {
      readonly _tag: "Decided"
      readonly event: StateEvent
      readonly before: ReloadState
      readonly after: ReloadState
      readonly read: ReadBytes
      readonly hashes: ContentHashes
      /** The monotonic clock at the decision, ns. */
      readonly decidedNs: bigint
      readonly announce: Effect.Effect<void>
    }
  | { readonly _tag: "Defect"; readonly cause: Cause.Cause<unknown>; readonly announce: Effect.Effect<void> }

/** Taken alone, in a batch of its own: a rollback, or an attempt decided at once. */
const alone = (p: Pending): boolean => p.content !== undefined || p.decided !== undefined

/** Versions listed by `versions` when their content is kept in memory (no event log). */
export const MAX_VERSIONS_WITH_CONTENT = 50
/**
 * The most bytes of version content kept in memory (no event log): past it, the oldest versions
 * lose their content (still listed, their files no longer served). Versions that share a file
 * share its bytes, and count them once.
 */
export const MAX_CONTENT_BYTES = 32 * 1024 * 1024
/** Versions listed by `versions` when the event log keeps their content. */
export const MAX_VERSIONS_KEPT = 10_000

/**
 * The next batch from what was taken off the queue: a rollback (or an attempt decided at once)
 * alone, or the triggers up to the next of those, coalesced. What is left waits for the next batch.
 */
export const nextBatch = (
  taken: ReadonlyArray<Pending>,
): { readonly batch: ReadonlyArray<Pending>; readonly rest: ReadonlyArray<Pending> } => {
  if (taken.length === 0) return { batch: [], rest: [] }
  if (alone(taken[0] as Pending)) return { batch: taken.slice(0, 1), rest: taken.slice(1) }
  const end = taken.findIndex(alone)
  return end === -1 ? { batch: taken, rest: [] } : { batch: taken.slice(0, end), rest: taken.slice(end) }
}

/** Drops the content of the oldest versions until the distinct bytes kept fit `budget`. */
export const withinContentBudget = (
  versions: ReadonlyArray<AppliedVersion>,
  budget: number,
): ReadonlyArray<AppliedVersion> => {
  const seen = new Set<Uint8Array>()
  let total = 0
  const out: Array<AppliedVersion> = []
  // Newest first: the newest versions keep their content.
  for (let i = versions.length - 1; i >= 0; i--) {
    const v = versions[i] as AppliedVersion
    const files = [v.content?.limits, v.content?.config].filter(
      (b): b is Uint8Array => b !== undefined && !seen.has(b),
    )
    const size = files.reduce((n, b) => n + b.byteLength, 0)
    if (v.content !== undefined && total + size > budget) {
      const { content: _dropped, ...rest } = v
      out.push(rest)
      continue
    }
    for (const b of files) seen.add(b)
    total += size
    out.push(v)
  }
  return out.reverse()
}

const readOf = (bytes: Uint8Array | undefined, configured: boolean): FileRead | undefined =>
  !configured || bytes === undefined ? undefined : Either.right({ bytes, sha256: sha256Hex(bytes) })

const MAX_ATTEMPTS_KEPT = 100
/**
 * In a storm of explicit triggers (SIGHUP, touch, HTTP), reloads start at most once per this many
 * ms (or per `-reload-debounce`, when shorter): 100 SIGHUPs in 100 ms make at most 5 reloads,
 * while SIGHUPs further apart than this each start a reload at once.
 */
export const STORM_GAP_MS = 30

/**
 * An attempt decided at once (`submitNow`) is recorded once the event loop has polled for I/O after
 * the decision: a request sent together with the trigger, or while it was decided (a script that
 * signals, then polls the status), is answered before the books (the events, metrics and log lines:
 * about a millisecond of the main thread) are written. Two `setImmediate` hops: the first ends the
 * turn that decided, the second comes after the next turn's poll for I/O. (A timer would not do: a
 * timer that is due runs before that poll, so a decision that outlasted it put the books first.)
 * The books then yield to the event loop between their steps (announcement, requested event,
 * decision event, metrics and log lines), so a request that arrives while they are written waits
 * for one step, not for all of them.
 */
const afterNextIoPoll: Effect.Effect<void> = Effect.zipRight(yieldToEventLoop, yieldToEventLoop)

/** What one attempt did: the event it recorded, the states around it, and its report. */
interface Outcome {
  readonly event: StateEvent
  readonly before: ReloadState
  readonly after: ReloadState
  readonly record: ReloadAttempt
  readonly read: ReadBytes
}

const errorJson = (event: Extract<StateEvent, { _tag: "ReloadRejected" }>) => ({
  message: event.error.message,
  issues: event.error.issues.map((i) => ({ ...i })),
})

/** A trigger as it enters the pipeline, now. */
const triggerEvent = (trigger: Trigger): Effect.Effect<TriggerEvent> =>
  Effect.gen(function* () {
    return { trigger, at: yield* Clock.currentTimeMillis, startedNs: yield* Clock.currentTimeNanos }
  })

/** Seconds from `fromNs` to `toNs` (monotonic ns), never negative. */
const durationSeconds = (fromNs: bigint, toNs: bigint): number =>
  toNs > fromNs ? Number(toNs - fromNs) / 1e9 : 0

/**
 * An attempt's report: the version active after it (`state`), timed from its first trigger to
 * `decidedNs` (monotonic ns).
 */
const reportOf = (
  status: ReloadResult,
  batch: ReadonlyArray<Pending>,
  at: number,
  decidedNs: bigint,
  state: ReloadState,
  extra: Pick<ReloadAttempt, "error">,
): ReloadAttempt => {
  const first = (batch[0] as Pending).event
  const active = state.active
  return {
    status,
    trigger: first.trigger,
    coalesced: batch.length,
    at: new Date(at).toISOString(),
    version: active?.version ?? 0,
    limits_sha256: active?.limitsSha256 ?? "",
    config_sha256: active?.configSha256 ?? "",
    rules_count: active?.rulesCount ?? 0,
    dry_run: active?.dryRun ?? false,
    duration_seconds: durationSeconds(first.startedNs, decidedNs),
    restart_required: state.restartRequired,
    ...extra,
  }
}

const resultOf = (event: StateEvent): ReloadResult =>
  event._tag === "ConfigApplied" ? "applied" : event._tag === "ConfigUnchanged" ? "unchanged" : "rejected"

/** What an attempt did, with its report: its event, decided at `decidedNs`, folded from `before`. */
const outcomeOf = (
  event: StateEvent,
  batch: ReadonlyArray<Pending>,
  decidedNs: bigint,
  before: ReloadState,
  after: ReloadState,
  read: ReadBytes,
): Outcome => ({
  event,
  before,
  after,
  read,
  record: reportOf(resultOf(event), batch, event.at, decidedNs, after, {
    ...(event._tag === "ReloadRejected" ? { error: errorJson(event) } : {}),
  }),
})

/**
 * The reload pipeline: one fiber takes triggers from one queue, folds those that arrived while a
 * reload ran into the next one, reads and validates both files, decides, and records the decision
 * as an event: the new state is `apply(old, event)`, published in one step, before the metrics, the
 * log lines and the event log's disk write. Two reloads never run at once, no trigger is lost, and
 * a defect in one attempt is reported (log, metrics, a 500 to `POST /-/reload`) without ending the
 * pipeline.
 */
export const make = (settings: ReloadSettings) =>
  Effect.gen(function* () {
    const telemetry = yield* Telemetry
    const log = yield* EventLog
    const decoder = yield* ConfigDecoder
    const attemptsRef = yield* Ref.make<ReadonlyArray<ReloadAttempt>>([])
    /** Content hashes as last read by a reload (not a rollback): what the watcher compares against. */
    let lastRead: ContentHashes = { limits: "", config: "" }
    /**
     * The versions applied, oldest first. With their content (no event log): at most
     * `MAX_VERSIONS_WITH_CONTENT`, a new list per version. Without: appended in place, and cut back
     * to the last `versionsKept` once twice that many are held, so a reload does not copy ten
     * thousand entries (`versions()` hands out a copy of the last `versionsKept`).
     */
    let versions: Array<AppliedVersion> = []
    const versionsKept = settings.versionsKept ?? MAX_VERSIONS_KEPT
    const keepContent = log.file === undefined
    /** Waiting for the pipeline to be idle (`idle`): completed when `queued` comes back to 0. */
    let idleWaiters: Array<Deferred.Deferred<void>> = []
    const queue = yield* Queue.unbounded<Pending>()
    /** For `submitNowSync`, which runs outside any fiber: the clock and the services of the pipeline. */
    const ownClock = yield* Effect.clock
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const stream = yield* PubSub.unbounded<StateEvent>({ replay: settings.replayEvents ?? 0 })
    const stateRef = yield* SubscriptionRef.make(initialState)
    /** The state as last set, for readers on the data path that cannot run an effect. */
    let state = initialState
    const limitsPath = settings.paths.limits ?? settings.paths.config ?? ""
    const mainAppliers: Array<MainApplier> = []
    /** An applied event that changes `config.yaml` while something applies it (`onConfigApplied`). */
    const changesMain = (event: StateEvent, before: ReloadState): boolean =>
      event._tag === "ConfigApplied" &&
      mainAppliers.length > 0 &&
      (event.main?.sha256 ?? "") !== (before.active?.configSha256 ?? "")
    /**
     * Runs the appliers. Interruptible, though a reload is not: what an applier forks (an exporter's
     * loop, a watcher) must stay interruptible, and shutdown does not wait for a DNS answer. An
     * applier cut short by shutdown still leaves its version recorded (the books are written).
     */
    const applyMain = (spec: ConfigVersion["main"]) =>
      Effect.forEach(
        mainAppliers,
        (f) =>
          Effect.interruptible(f(spec)).pipe(
            Effect.catchAllCause((cause) =>
              Cause.isInterruptedOnly(cause)
                ? Effect.void
                : logError("config.yaml settings from the reload did not apply", {
                    error: Cause.pretty(cause),
                  }),
            ),
          ),
        { discard: true },
      )

    /**
     * Records one event: the in-memory stream, the event log, and the new state, in one step. An
     * event decided at once (`submitNow`) comes with the states it was folded between, the new one
     * already active.
     */
    const record = (event: StateEvent, folded?: { before: ReloadState; after: ReloadState }) =>
      Effect.gen(function* () {
        const before = folded?.before ?? state
        // Building a version of many rules runs in slices, with requests served in between.
        const next =
          folded !== undefined
            ? folded.after
            : event._tag === "ConfigApplied"
              ? yield* runSliced(applySteps(before, event))
              : apply(before, event)
        // What config.yaml configures is in force before the version is recorded and visible.
        if (folded === undefined && changesMain(event, before) && next.active !== undefined) {
          yield* applyMain(next.active.main)
        }
        yield* PubSub.publish(stream, event)
        yield* log.append(logEventOf(event, before, next))
        if (folded === undefined) state = next
        // An event that leaves the state as it is (a request decided at once) wakes no subscriber.
        if ((yield* SubscriptionRef.get(stateRef)) !== next) yield* SubscriptionRef.set(stateRef, next)
        return { before, after: next }
      })

    /** Stores the snapshots of what was read, as an attempt that decodes it does first. */
    const storeSnapshots = (read: ReadBytes, hashes: ContentHashes) =>
      Effect.gen(function* () {
        if (read.limits !== undefined && Either.isRight(read.limits)) {
          yield* log.storeSnapshot(hashes.limits, read.limits.right.bytes)
        }
        if (read.main !== undefined && Either.isRight(read.main)) {
          yield* log.storeSnapshot(hashes.config, read.main.right.bytes)
        }
      })

    /** The decision from what was read, when the active version is not its very content. */
    const decisionOf = (
      trigger: Trigger,
      hashes: ContentHashes,
      decoded: Either.Either<LoadedConfig, ConfigLoadError>,
      now: number,
    ): StateEvent =>
      decide(state, decoded, {
        trigger,
        now,
        limitsSha256: hashes.limits === MISSING_HASH ? "" : hashes.limits,
        configSha256: hashes.config === MISSING_HASH ? "" : hashes.config,
      })

    /** The active version's very bytes: unchanged, without decoding them again. */
    const unchanged = (hashes: ContentHashes): boolean =>
      state.active !== undefined && sameContent(hashes, state.active)

    /**
     * One attempt decided in the calling thread, when the files allow it (`readNow`, `decodeNow`):
     * read, decided and folded, and the new state made active. `undefined` when they do not.
     */
    const decideNow = (
      first: TriggerEvent,
      clock: Clock.Clock,
      announce: Effect.Effect<void>,
    ): DecidedNow | undefined => {
      const now = () => clock.unsafeCurrentTimeMillis()
      const hashed = decoder.readNow(settings.paths)
      if (hashed === undefined) return undefined
      const { read, hashes } = hashed
      let event: StateEvent
      if (unchanged(hashes)) event = { _tag: "ConfigUnchanged", at: now(), trigger: first.trigger }
      else {
        const decoded = decoder.decodeNow(settings.paths, read)
        if (decoded === undefined) return undefined
        event = decisionOf(first.trigger, hashes, decoded, now())
      }
      // A new config.yaml is applied to the exporters and receivers first: through the pipeline.
      if (changesMain(event, state)) return undefined
      const before = state
      const after = runToEnd(applySteps(before, event))
      state = after
      lastRead = hashes
      const decidedNs = clock.unsafeCurrentTimeNanos()
      return { _tag: "Decided", event, before, after, read, hashes, decidedNs, announce }
    }

    /** Records an attempt decided at once (`submitNow`): its request, snapshots and decision. */
    const recordDecided = (
      batch: ReadonlyArray<Pending>,
      d: Extract<DecidedNow, { _tag: "Decided" }>,
    ): Effect.Effect<Outcome> =>
      Effect.gen(function* () {
        const first = (batch[0] as Pending).event
        const requested: StateEvent = {
          _tag: "ReloadRequested",
          at: first.at,
          trigger: first.trigger,
          coalesced: batch.length,
        }
        yield* record(requested, { before: d.before, after: d.before })
        yield* yieldToEventLoop
        if (d.event._tag !== "ConfigUnchanged") yield* storeSnapshots(d.read, d.hashes)
        const { before, after } = yield* record(d.event, { before: d.before, after: d.after })
        yield* yieldToEventLoop
        return outcomeOf(d.event, batch, d.decidedNs, before, after, d.read)
      })

    /** Reads, validates, decides and records one attempt. */
    const attempt = (batch: ReadonlyArray<Pending>) =>
      Effect.gen(function* () {
        const first = (batch[0] as Pending).event
        yield* record({
          _tag: "ReloadRequested",
          at: first.at,
          trigger: first.trigger,
          coalesced: batch.length,
        })
        const rollback = (batch[0] as Pending).content
        const { read, hashes } =
          rollback === undefined
            ? yield* decoder.read(settings.paths)
            : yield* Effect.sync(() => {
                const read: ReadBytes = {
                  limits: readOf(rollback.bytes.limits, settings.paths.limits !== undefined),
                  main: readOf(rollback.bytes.config, settings.paths.config !== undefined),
                }
                return { read, hashes: hashesOf(read) }
              })
        // A rollback reads no file: what the watcher and the poller compare against stays the disk's.
        if (rollback === undefined) lastRead = hashes
        const now = yield* Clock.currentTimeMillis
        const event: StateEvent = unchanged(hashes)
          ? { _tag: "ConfigUnchanged", at: now, trigger: first.trigger }
          : yield* Effect.gen(function* () {
              yield* storeSnapshots(read, hashes)
              const decoded = yield* decoder.decode(settings.paths, read)
              return decisionOf(first.trigger, hashes, decoded, yield* Clock.currentTimeMillis)
            })
        const { before, after } = yield* record(event)
        // Trigger to decision: after the files were read, decoded, validated and decided on.
        const decidedNs = yield* Clock.currentTimeNanos
        return outcomeOf(event, batch, decidedNs, before, after, read)
      })

    const remember = (report: ReloadAttempt) =>
      Ref.update(attemptsRef, (a) =>
        a.length >= MAX_ATTEMPTS_KEPT ? [...a.slice(1), report] : [...a, report],
      )

    const bytesOf = (r: FileRead | undefined): Uint8Array | undefined =>
      r !== undefined && Either.isRight(r) ? r.right.bytes : undefined

    /** The bytes an earlier version kept for the same content: versions share them. */
    const shared = (sha: string, which: "limits" | "config"): Uint8Array | undefined => {
      for (let i = versions.length - 1; i >= 0; i--) {
        const v = versions[i] as AppliedVersion
        const same = which === "limits" ? v.limits_sha256 === sha : v.config_sha256 === sha
        if (same && v.content?.[which] !== undefined) return v.content[which]
      }
      return undefined
    }

    /** Adds an applied version to `versions` (bounded). */
    const rememberVersion = (report: ReloadAttempt, read: ReadBytes, of: number | undefined) => {
      const entry: AppliedVersion = {
        version: report.version,
        trigger: report.trigger,
        limits_sha256: report.limits_sha256,
        config_sha256: report.config_sha256,
        rules_count: report.rules_count,
        dry_run: report.dry_run,
        at: report.at,
        ...(of === undefined ? {} : { rollback_of: of }),
        ...(keepContent
          ? {
              content: {
                limits: shared(report.limits_sha256, "limits") ?? bytesOf(read.limits),
                config: shared(report.config_sha256, "config") ?? bytesOf(read.main),
              },
            }
          : {}),
      }
      if (keepContent) {
        const kept = versions.slice(-(MAX_VERSIONS_WITH_CONTENT - 1))
        kept.push(entry)
        versions = [...withinContentBudget(kept, MAX_CONTENT_BYTES)]
      } else {
        versions.push(entry)
        if (versions.length >= 2 * versionsKept) versions = versions.slice(-versionsKept)
      }
    }

    /** Metrics and the contract's log lines for one attempt. */
    const publish = ({ event, before, after, record: report, read }: Outcome, of: number | undefined) =>
      Effect.gen(function* () {
        if (event._tag === "ConfigApplied") rememberVersion(report, read, of)
        const t = telemetry
        t.reloadAttempts.inc({ trigger: report.trigger, result: report.status })
        t.reloadDuration.observe(report.duration_seconds)
        const isStartup = report.trigger === "startup"
        if (event._tag === "ReloadRejected") {
          t.reloadFailures.inc()
          t.lastReloadSuccessful.set(0)
          yield* logError("limits config reload failed, keeping current config", {
            error: event.error.message,
            path: event.error.path || limitsPath,
            trigger: report.trigger,
            version: report.version,
          })
        } else {
          t.lastReloadSuccessful.set(1)
          if (!isStartup) {
            t.reloadsTotal.inc()
            t.reloadLastSuccess.set(Date.parse(report.at) / 1000)
          }
          yield* logInfo("limits config reloaded successfully", {
            rules_count: report.rules_count,
            result: report.status,
            trigger: report.trigger,
            version: report.version,
            limits_sha256: report.limits_sha256,
            config_sha256: report.config_sha256,
          })
        }
        if (event._tag === "ConfigApplied" && after.active !== undefined) {
          const v = after.active
          t.configVersion.set(v.version)
          t.configInfo.reset()
          t.configInfo.set({ limits_sha256: v.limitsSha256, config_sha256: v.configSha256 }, 1)
          t.limitsRules.set(v.rulesCount)
          t.limitsDryRun.set(v.dryRun ? 1 : 0)
          const was = before.active?.dryRun ?? false
          if (v.dryRun !== was) {
            yield* logInfo(v.dryRun ? "limits dry-run enabled" : "limits dry-run disabled", {
              dry_run: v.dryRun,
              source: v.dryRunSource === "flag" ? "-limits-dry-run flag" : "limits.dry_run in config",
            })
          }
          t.restartRequired.set(after.restartRequired.length > 0 ? 1 : 0)
          if (after.restartRequired.length > 0 && !sameKeys(before.restartRequired, after.restartRequired)) {
            yield* logWarn("config change needs a restart to take effect", {
              restart_required: after.restartRequired,
              version: v.version,
              path: settings.paths.config ?? "",
            })
          }
        }
        yield* remember(report)
      })

    /** A defect in an attempt: reported as an `error` attempt; the state is what was last recorded. */
    const failed = (batch: ReadonlyArray<Pending>, cause: Cause.Cause<unknown>) =>
      Effect.gen(function* () {
        const first = (batch[0] as Pending).event
        const now = yield* Clock.currentTimeMillis
        const message = Cause.pretty(cause)
        const report = reportOf("error", batch, now, yield* Clock.currentTimeNanos, state, {
          error: { message: `internal error: ${firstLine(message)}`, issues: [] },
        })
        telemetry.reloadAttempts.inc({ trigger: first.trigger, result: "error" })
        telemetry.reloadFailures.inc()
        telemetry.lastReloadSuccessful.set(0)
        yield* logError("limits config reload failed with an internal error, keeping current config", {
          error: message,
          path: limitsPath,
          trigger: first.trigger,
          version: report.version,
        })
        yield* remember(report)
        return report
      })

    /** One attempt, reported whatever happens inside it. */
    const supervised = (batch: ReadonlyArray<Pending>) =>
      Effect.gen(function* () {
        const decided = (batch[0] as Pending).decided
        if (decided !== undefined) {
          yield* decided.announce
          yield* yieldToEventLoop
        }
        if (decided?._tag === "Defect") return yield* Effect.failCause(decided.cause)
        const outcome = yield* decided === undefined ? attempt(batch) : recordDecided(batch, decided)
        yield* publish(outcome, (batch[0] as Pending).content?.of)
        return outcome.record
      }).pipe(Effect.catchAllCause((cause) => failed(batch, cause)))

    yield* record({
      _tag: "Started",
      at: yield* Clock.currentTimeMillis,
      pid: process.pid,
      paths: settings.paths,
      dryRunFlag: settings.dryRunFlag,
    })
    // Startup is the first attempt; a rejection ends the program (exit 1).
    const startup = yield* supervised([{ event: yield* triggerEvent("startup"), reply: undefined }])
    if (state.active === undefined) {
      const issues = (startup.error?.issues ?? []) as ReadonlyArray<Parameters<typeof formatIssue>[0]>
      return yield* Effect.fail(
        new StartupRejected(
          issues.length > 0 ? issues.map(formatIssue) : [startup.error?.message ?? "startup: no config"],
        ),
      )
    }
    // The startup events are on disk before the process serves: later events are written behind.
    yield* log.flush
    const current = () => state.active as ConfigVersion
    telemetry.setRuleSource((now) => currentUsages(current(), now))
    telemetry.setRuleInfoSource(() => current().limits.rules.map((r) => ({ rule: r.name, info: r.info })))
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        // An attempt decided at once whose books shutdown overtook is active: recorded before Stopped.
        for (const p of [...carried, ...(yield* Queue.takeAll(queue))]) {
          if (p.decided !== undefined) yield* supervised([p])
        }
        yield* record({ _tag: "Stopped", at: Date.now() })
      }),
    )

    let lastStart = Number.NEGATIVE_INFINITY
    const gapMs = Math.min(settings.debounceMs, STORM_GAP_MS)
    /** Waits out the storm gap after the previous start (interruptible: shutdown does not wait). */
    const stormGap = Effect.gen(function* () {
      const wait = lastStart + gapMs - (yield* Clock.currentTimeMillis)
      if (wait > 0) yield* Effect.sleep(wait)
    })
    /** Taken off the queue and not yet in a batch: what follows a rollback. */
    let carried: ReadonlyArray<Pending> = []
    const processBatch = (head: Pending) =>
      Effect.gen(function* () {
        const { batch, rest } = nextBatch([head, ...carried, ...(yield* Queue.takeAll(queue))])
        carried = rest
        // An attempt decided at once started when it was decided.
        if (head.decided === undefined) lastStart = yield* Clock.currentTimeMillis
        const report = yield* supervised(batch)
        for (const p of batch) if (p.reply !== undefined) yield* Deferred.succeed(p.reply, report)
        queued -= batch.length
        if (queued === 0 && idleWaiters.length > 0) {
          const waiters = idleWaiters
          idleWaiters = []
          for (const w of waiters) yield* Deferred.succeed(w, undefined)
        }
      }).pipe(Effect.uninterruptible)
    // Waiting for a trigger is interruptible (shutdown); a reload, once started, runs to its end.
    // An attempt decided at once is active already: once taken, its books are always written.
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function* () {
            const head = carried[0] ?? (yield* restore(Queue.take(queue)))
            if (carried.length > 0) carried = carried.slice(1)
            // Decided at once: requests on their way go first, then the books.
            if (head.decided !== undefined) yield* afterNextIoPoll
            else yield* restore(stormGap)
            yield* processBatch(head)
          }),
        ),
      ),
    )

    /** Triggers enqueued and not yet through the pipeline. */
    let queued = 0
    const enqueue = (
      trigger: Trigger,
      reply: Deferred.Deferred<ReloadAttempt> | undefined,
      content?: Pending["content"],
      decided?: (event: TriggerEvent) => DecidedNow | undefined,
    ) =>
      Effect.gen(function* () {
        const event = yield* triggerEvent(trigger)
        const now = decided?.(event)
        queued++
        yield* Queue.offer(queue, {
          event,
          reply,
          ...(content === undefined ? {} : { content }),
          ...(now === undefined ? {} : { decided: now }),
        })
      })

    /** `decideNow` when nothing runs or waits and the storm gap has passed; a defect is kept. */
    const tryDecideNow =
      (clock: Clock.Clock, announce: Effect.Effect<void>) =>
      (first: TriggerEvent): DecidedNow | undefined => {
        if (queued > 0 || carried.length > 0 || first.at - lastStart < gapMs) return undefined
        try {
          const d = decideNow(first, clock, announce)
          if (d !== undefined) lastStart = first.at
          return d
        } catch (e) {
          lastStart = first.at
          return { _tag: "Defect", cause: Cause.die(e), announce }
        }
      }

    /** `submitNowSync`: the trigger decided at once, or enqueued; no fiber on the way. */
    const submitNowSync = (trigger: Trigger, announce: Effect.Effect<void>): void => {
      let offered = false
      try {
        const event: TriggerEvent = {
          trigger,
          at: ownClock.unsafeCurrentTimeMillis(),
          startedNs: ownClock.unsafeCurrentTimeNanos(),
        }
        // A defect in the decision is kept in `decided` and reported by the pipeline.
        const decided = tryDecideNow(ownClock, announce)(event)
        queued++
        offered = true
        Queue.unsafeOffer(queue, { event, reply: undefined, ...(decided === undefined ? {} : { decided }) })
        if (decided === undefined) runFork(announce)
      } catch (e) {
        // Never out of a signal's callback: the trigger takes the fiber's way instead.
        if (!offered) runFork(Effect.zipRight(announce, enqueue(trigger, undefined)))
        else runFork(logError("announcing a reload failed", { error: String(e) }))
      }
    }

    return {
      state: stateRef,
      current,
      now: () => state,
      active: Effect.sync(current),
      events: Stream.fromPubSub(stream),
      settings,
      submit: (trigger) => enqueue(trigger, undefined),
      submitNow: (trigger, announce) => Effect.sync(() => submitNowSync(trigger, announce)),
      submitNowSync,
      request: (trigger) =>
        Effect.gen(function* () {
          const reply = yield* Deferred.make<ReloadAttempt>()
          yield* enqueue(trigger, reply)
          return yield* Deferred.await(reply)
        }),
      rollback: (bytes, of) =>
        Effect.gen(function* () {
          const reply = yield* Deferred.make<ReloadAttempt>()
          yield* enqueue("rollback", reply, { bytes, of })
          return yield* Deferred.await(reply)
        }),
      versions: () => versions.slice(-versionsKept),
      attempts: Ref.get(attemptsRef),
      lastAttempted: Effect.sync(() => lastRead),
      lastRead: () => lastRead,
      onConfigApplied: (applier) =>
        Effect.acquireRelease(
          Effect.sync(() => void mainAppliers.push(applier)),
          () =>
            Effect.sync(() => {
              const at = mainAppliers.indexOf(applier)
              if (at !== -1) mainAppliers.splice(at, 1)
            }),
        ),
      idle: Effect.suspend(() =>
        queued === 0
          ? Effect.void
          : Effect.flatMap(Deferred.make<void>(), (waiter) => {
              if (queued === 0) return Effect.void
              idleWaiters.push(waiter)
              return Deferred.await(waiter)
            }),
      ),
    } satisfies ReloaderService
  })

const firstLine = (text: string): string => text.split("\n", 1)[0] ?? text

const sameKeys = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean =>
  a.length === b.length && a.every((k, i) => k === b[i])

export const layer = (settings: ReloadSettings) => Layer.scoped(Reloader, make(settings))
