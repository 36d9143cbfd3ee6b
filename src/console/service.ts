/**
 * What the operator console and its APIs read (docs/console.md): the versions this process applied
 * (and, from the event log, those of earlier runs), their file contents, the difference between two
 * of them, the rules' usage, a short history of the traffic, and the rollback to an earlier version.
 *
 * @module
 */
import * as fs from "node:fs"
import { Clock, Context, Data, Effect, Either, Layer, Schedule } from "effect"
import { decodeLimits, sha256Hex } from "../config/decode.js"
import { formatIssue } from "../config/errors.js"
import { EventLog, scanEventLog, snapshotPath } from "../events/log.js"
import { utilisation } from "../limits/enforce.js"
import { KEY_SEPARATOR } from "../limits/match.js"
import { accountedRules, currentUsage } from "../limits/stats.js"
import { windowStartOf } from "../limits/window.js"
import { type AppliedVersion, type ReloadAttempt, Reloader, type VersionContent } from "../reload/reloader.js"
import { Telemetry } from "../telemetry/metrics.js"
import { unifiedDiff } from "./line-diff.js"
import { type RuleDiff, ruleDiff } from "./rule-diff.js"

/** No version `version` in run `run`: 404. */
export class VersionNotFound extends Data.TaggedError("VersionNotFound")<{
  readonly run: number
  readonly version: number
}> {
  override get message(): string {
    return `no version ${this.version} in run ${this.run}`
  }
}

/** A query parameter or path segment that is not what the API takes: 400. */
export class BadRequest extends Data.TaggedError("BadRequest")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** The version is known but its file contents are not kept (any more): 404. */
export class ContentUnavailable extends Data.TaggedError("ContentUnavailable")<{
  readonly run: number
  readonly version: number
  readonly reason: string
}> {
  override get message(): string {
    return `the files of version ${this.version} (run ${this.run}) are not available: ${this.reason}`
  }
}

export type ConsoleError = VersionNotFound | BadRequest | ContentUnavailable

/** One version as `GET /api/v1/status/versions` lists it: an applied version, without its files. */
export interface ListedVersion extends Omit<AppliedVersion, "content"> {
  /** The process run it belongs to: 1 for the first run the event log records. */
  readonly run: number
}

interface Known extends ListedVersion {
  readonly limits_path: string | null
  readonly config_path: string | null
  readonly content?: VersionContent
}

/** A version named by the APIs: its number, in the current run unless `run` says otherwise. */
export interface VersionRef {
  readonly run: number | undefined
  readonly version: number
}

export interface FileContent {
  readonly path: string | null
  readonly sha256: string
  readonly content: string
}

export interface VersionFiles {
  readonly run: number
  readonly version: number
  readonly limits: FileContent | null
  readonly config: FileContent | null
}

export interface VersionDiff {
  readonly from: { readonly run: number; readonly version: number }
  readonly to: { readonly run: number; readonly version: number }
  /** Unified diffs (`diff -u`), "" when the file did not change. */
  readonly files: { readonly limits: string; readonly config: string }
  /** The rule-level difference; null when either limits file no longer decodes (see `rules_error`). */
  readonly rules: RuleDiff | null
  readonly rules_error?: string
}

export interface TopGroup {
  readonly group: string
  readonly datapoints: number
  readonly series: number
  /** `adaptive`: the group is dropped for the rest of the window. */
  readonly dropped: boolean
}

export interface RuleRow {
  readonly name: string
  readonly action: string
  readonly max_cardinality: number
  readonly max_datapoints_rate: number
  readonly group_by: ReadonlyArray<string>
  readonly cardinality: number
  readonly datapoints: number
  readonly dropped: number
  readonly would_drop: number
  readonly top_groups: ReadonlyArray<TopGroup>
  /** The rule's utilisation in the current window, in percent (what its tiers act on). */
  readonly utilisation_percent: number
  readonly tiers: ReadonlyArray<{ readonly at_percent: number; readonly action: string }>
  /** `label_limits`: each label's limit and the distinct values admitted in the current window. */
  readonly label_limits: ReadonlyArray<{
    readonly label: string
    readonly max: number
    readonly values: number
  }>
}

export interface Totals {
  readonly received: number
  readonly sent: number
  readonly dropped: number
  readonly would_drop: number
}

export interface RulesAnswer {
  readonly version: number
  readonly dry_run: boolean
  readonly window_seconds: number
  readonly at: string
  readonly rules: ReadonlyArray<RuleRow>
  readonly totals: Totals
}

/** One sample of the traffic totals (counters since start), for the console's charts. */
export interface TrafficSample extends Totals {
  readonly at: string
}

export interface ConsoleService {
  readonly versions: Effect.Effect<{
    readonly current_run: number
    readonly versions: ReadonlyArray<ListedVersion>
  }>
  readonly files: (ref: VersionRef) => Effect.Effect<VersionFiles, VersionNotFound | ContentUnavailable>
  readonly diff: (
    from: VersionRef,
    to: VersionRef,
  ) => Effect.Effect<VersionDiff, VersionNotFound | ContentUnavailable>
  readonly rules: Effect.Effect<RulesAnswer>
  readonly traffic: Effect.Effect<ReadonlyArray<TrafficSample>>
  readonly rollback: (ref: VersionRef) => Effect.Effect<ReloadAttempt, VersionNotFound | ContentUnavailable>
}

export class Console extends Context.Tag("metrics-governor/Console")<Console, ConsoleService>() {}

/** Limits files up to this many bytes together (about 800 rules) are compared rule by rule. */
export const RULE_DIFF_MAX_BYTES = 192 * 1024
/** Top groups listed per rule. */
export const TOP_GROUPS = 5
/** Traffic samples: one every `TRAFFIC_EVERY_MS`, the last `TRAFFIC_SAMPLES` kept (10 minutes). */
export const TRAFFIC_EVERY_MS = 10_000
export const TRAFFIC_SAMPLES = 60

/** The earlier runs' applied versions, read from the event log (events up to `priorSeq`). */
const earlierVersions = async (
  file: string,
  priorSeq: number,
): Promise<{ runs: number; versions: Array<Known> }> => {
  let runs = 0
  const versions: Array<Known> = []
  await scanEventLog(file, {
    event: (e) => {
      if (e.seq > priorSeq) return
      if (e.type === "Started") runs++
      else if (e.type === "ConfigApplied")
        versions.push({
          run: Math.max(runs, 1),
          version: e.version,
          trigger: e.trigger,
          limits_sha256: e.limits_sha256,
          config_sha256: e.config_sha256,
          rules_count: e.rules_count,
          dry_run: e.dry_run,
          at: e.at,
          limits_path: e.limits_path,
          config_path: e.config_path,
        })
    },
    bad: () => {},
  })
  return { runs, versions }
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8")

const sumByRule = (values: ReadonlyArray<{ labels: Record<string, string | number>; value: number }>) => {
  const out = new Map<string, number>()
  for (const v of values) {
    const rule = String(v.labels.rule ?? "")
    out.set(rule, (out.get(rule) ?? 0) + v.value)
  }
  return out
}
const sum = (values: ReadonlyArray<{ value: number }>): number => values.reduce((a, v) => a + v.value, 0)

export const make = Effect.gen(function* () {
  const reloader = yield* Reloader
  const log = yield* EventLog
  const telemetry = yield* Telemetry

  const earlier = yield* Effect.cached(
    log.file === undefined
      ? Effect.succeed({ runs: 0, versions: [] as Array<Known> })
      : Effect.promise(() =>
          earlierVersions(log.file as string, log.priorSeq).catch(() => ({
            runs: 0,
            versions: [] as Array<Known>,
          })),
        ),
  )

  const known = Effect.map(earlier, ({ runs, versions }) => {
    const run = runs + 1
    const paths = reloader.settings.paths
    const current: Array<Known> = reloader.versions().map((v: AppliedVersion) => ({
      ...v,
      run,
      limits_path: paths.limits ?? null,
      config_path: paths.config ?? null,
    }))
    return { currentRun: run, all: [...versions, ...current] }
  })

  const find = (ref: VersionRef) =>
    Effect.flatMap(known, ({ currentRun, all }) => {
      const run = ref.run ?? currentRun
      const v = all.find((k) => k.run === run && k.version === ref.version)
      return v === undefined
        ? Effect.fail(new VersionNotFound({ run, version: ref.version }))
        : Effect.succeed(v)
    })

  /** The bytes of one file of a version: in memory, or the snapshot its hash names. */
  const bytesOf = (v: Known, which: "limits" | "config") =>
    Effect.gen(function* () {
      const sha = which === "limits" ? v.limits_sha256 : v.config_sha256
      if (sha === "") return undefined
      const kept = v.content?.[which]
      if (kept !== undefined) return kept
      const file = log.file
      const fail = (reason: string) => new ContentUnavailable({ run: v.run, version: v.version, reason })
      if (file === undefined) return yield* Effect.fail(fail("no event log keeps them and they left memory"))
      // A snapshot is written behind the reload that read it: wait for what is queued.
      yield* log.flush
      const bytes = yield* Effect.tryPromise({
        try: () => fs.promises.readFile(snapshotPath(file, sha)),
        catch: () => fail(`snapshot ${sha} is missing`),
      })
      if (sha256Hex(bytes) !== sha)
        return yield* Effect.fail(fail(`snapshot ${sha} does not hold its content`))
      return new Uint8Array(bytes)
    })

  const contentOf = (v: Known) => Effect.all({ limits: bytesOf(v, "limits"), config: bytesOf(v, "config") })

  const files = (ref: VersionRef) =>
    Effect.gen(function* () {
      const v = yield* find(ref)
      const c = yield* contentOf(v)
      const one = (path: string | null, sha256: string, bytes: Uint8Array | undefined): FileContent | null =>
        bytes === undefined ? null : { path, sha256, content: text(bytes) }
      return {
        run: v.run,
        version: v.version,
        limits: one(v.limits_path, v.limits_sha256, c.limits),
        config: one(v.config_path, v.config_sha256, c.config),
      } satisfies VersionFiles
    })

  const diff = (fromRef: VersionRef, toRef: VersionRef) =>
    Effect.gen(function* () {
      const a = yield* find(fromRef)
      const b = yield* find(toRef)
      const ca = yield* contentOf(a)
      const cb = yield* contentOf(b)
      const name = (v: Known, file: string) =>
        `v${v.version}${v.run === b.run && v.run === a.run ? "" : `@run${v.run}`}/${file}`
      const t = (bytes: Uint8Array | undefined) => (bytes === undefined ? "" : text(bytes))
      const specOf = (v: Known, bytes: Uint8Array | undefined) =>
        bytes === undefined
          ? Either.right(undefined)
          : Either.map(decodeLimits(v.limits_path ?? "limits.yaml", bytes), (d) => d.spec)
      // Decoding runs on the thread that serves requests: large files are compared as text only.
      const textDiff = {
        from: { run: a.run, version: a.version },
        to: { run: b.run, version: b.version },
        files: {
          limits: unifiedDiff(t(ca.limits), t(cb.limits), name(a, "limits.yaml"), name(b, "limits.yaml")),
          config: unifiedDiff(t(ca.config), t(cb.config), name(a, "config.yaml"), name(b, "config.yaml")),
        },
      }
      const tooLarge = (ca.limits?.byteLength ?? 0) + (cb.limits?.byteLength ?? 0) > RULE_DIFF_MAX_BYTES
      if (tooLarge) {
        return {
          ...textDiff,
          rules: null,
          rules_error: `the limits files are over ${RULE_DIFF_MAX_BYTES / 1024} KiB together: compared as text only here; metrics-governor diff compares them rule by rule`,
        } satisfies VersionDiff
      }
      const sa = specOf(a, ca.limits)
      const sb = specOf(b, cb.limits)
      const problem = Either.isLeft(sa) ? sa.left : Either.isLeft(sb) ? sb.left : undefined
      return {
        ...textDiff,
        ...(Either.isRight(sa) && Either.isRight(sb)
          ? { rules: ruleDiff(sa.right, sb.right) }
          : { rules: null, rules_error: problem?.issues.map(formatIssue).join("; ") ?? "" }),
      } satisfies VersionDiff
    })

  const totals = Effect.promise(async (): Promise<Totals> => {
    const [received, sent, dropped, wouldDrop] = await Promise.all([
      telemetry.datapointsReceived.get(),
      telemetry.datapointsSent.get(),
      telemetry.limitDropped.get(),
      telemetry.limitWouldDrop.get(),
    ])
    return {
      received: sum(received.values),
      sent: sum(sent.values),
      dropped: sum(dropped.values),
      would_drop: sum(wouldDrop.values),
    }
  })

  const rules = Effect.gen(function* () {
    const v = reloader.current()
    const now = yield* Clock.currentTimeMillis
    const [dropped, wouldDrop] = yield* Effect.promise(() =>
      Promise.all([telemetry.limitDropped.get(), telemetry.limitWouldDrop.get()]),
    )
    const droppedBy = sumByRule(dropped.values)
    const wouldDropBy = sumByRule(wouldDrop.values)
    const windowMs = v.limits.windowMs
    const rows: Array<RuleRow> = accountedRules(v.limits).map((rule) => {
      const stats = v.stats.get(rule.name)
      const usage =
        stats === undefined ? { cardinality: 0, datapoints: 0 } : currentUsage(stats, windowMs, now)
      const live = stats !== undefined && stats.windowStart === windowStartOf(now, windowMs)
      const top: Array<TopGroup> = live
        ? [...stats.groups]
            .sort((x, y) => y[1].datapoints - x[1].datapoints || y[1].series - x[1].series)
            .slice(0, TOP_GROUPS)
            .map(([key, g]) => ({
              group: key.split(KEY_SEPARATOR).join(", "),
              datapoints: g.datapoints,
              series: g.series,
              dropped: stats.droppedGroups.has(key),
            }))
        : []
      return {
        name: rule.name,
        action: rule.action,
        max_cardinality: rule.maxCardinality,
        max_datapoints_rate: rule.maxDatapointsRate,
        group_by: rule.groupBy,
        cardinality: usage.cardinality,
        datapoints: usage.datapoints,
        dropped: droppedBy.get(rule.name) ?? 0,
        would_drop: wouldDropBy.get(rule.name) ?? 0,
        top_groups: top,
        utilisation_percent: live ? Math.round(utilisation(stats, rule) * 10) / 10 : 0,
        tiers: rule.tiers.map((t) => ({ at_percent: t.atPercent, action: t.action })),
        label_limits: rule.labelLimits.map((l) => ({
          label: l.name,
          max: l.max,
          values: live ? (stats.labelValues.get(l.name)?.size ?? 0) : 0,
        })),
      }
    })
    return {
      version: v.version,
      dry_run: v.dryRun,
      window_seconds: windowMs / 1000,
      at: new Date(now).toISOString(),
      rules: rows,
      totals: yield* totals,
    } satisfies RulesAnswer
  })

  let samples: ReadonlyArray<TrafficSample> = []
  const sample = Effect.gen(function* () {
    const t = yield* totals
    const at = new Date(yield* Clock.currentTimeMillis).toISOString()
    samples = [...samples.slice(-(TRAFFIC_SAMPLES - 1)), { at, ...t }]
  })
  yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(TRAFFIC_EVERY_MS)))

  const rollback = (ref: VersionRef) =>
    Effect.gen(function* () {
      const v = yield* find(ref)
      const c = yield* contentOf(v)
      return yield* reloader.rollback({ limits: c.limits, config: c.config }, v.version)
    })

  return {
    versions: Effect.map(known, ({ currentRun, all }) => ({
      current_run: currentRun,
      versions: all.map(({ limits_path: _l, config_path: _c, content: _x, ...listed }) => listed),
    })),
    files,
    diff,
    rules,
    traffic: Effect.sync(() => samples),
    rollback,
  } satisfies ConsoleService
})

export const layer = Layer.scoped(Console, make)
