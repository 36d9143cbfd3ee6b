import type { ConfigVersion } from "../reload/version.js"
import { activeUsage, shedGroups } from "./adaptive.js"
import type { BatchVerdict, RuleCounts, SeriesBatch } from "./batch.js"
import { fingerprintSeries } from "./fingerprint.js"
import { groupKey, labelValue, ownerOf, ownerOfCode } from "./match.js"
import type { Action, CompiledRule, CompiledTier } from "./rules.js"
import { accountedRules, emptyStats, type GroupStats, type RuleStats } from "./stats.js"
import { HybridSet } from "./tracker.js"
import { rollWindow, windowStartOf } from "./window.js"

/** What `enforce` decided for a batch, and the per-rule counts to export once for it. */
export interface EnforceResult {
  readonly verdict: BatchVerdict
  /** One entry per rule that owned a datapoint of the batch, in rule order (`default` last). */
  readonly counts: ReadonlyArray<RuleCounts>
}

/**
 * Each accounted rule's stats in the rules' order (`defaults` last), so an owner code indexes them.
 * Derived from the version alone, so memoising it per version keeps `enforce` a function of its inputs.
 */
const statsInOrder = new WeakMap<ConfigVersion, ReadonlyArray<RuleStats>>()

const statsOf = (version: ConfigVersion): ReadonlyArray<RuleStats> => {
  let stats = statsInOrder.get(version)
  if (stats === undefined) {
    // A version built by reconcile has stats for every accounted rule; the fallback only serves
    // hand-made versions, whose stats then live here.
    const rules = accountedRules(version.limits)
    stats = rules.map((r) => version.stats.get(r.name) ?? emptyStats(r))
    // Hybrid tracking admits series past its threshold by the rule's limit in this version.
    for (let r = 0; r < stats.length; r++) {
      const series = (stats[r] as RuleStats).series
      if (series instanceof HybridSet) series.limit = (rules[r] as CompiledRule).maxCardinality
    }
    statsInOrder.set(version, stats)
  }
  return stats
}

const TWO_POW_32 = 4294967296
/** The fingerprint of the current entry's series; reused, never escapes. */
const fp = new Uint32Array(2)

/** Where `fingerprintsOf` hashes fingerprints, grown as needed; read before the next batch, never escapes. */
const hashed = { his: new Uint32Array(1024), los: new Uint32Array(1024) }

/**
 * The fingerprints of the batch's series, high halves and low halves (read before the next call):
 * the ones the decoder computed, else hashed here from the names and labels.
 */
const fingerprintsOf = (batch: SeriesBatch): { readonly his: Uint32Array; readonly los: Uint32Array } => {
  if (batch.hi !== undefined && batch.lo !== undefined) return { his: batch.hi, los: batch.lo }
  const n = batch.length
  if (hashed.his.length < n) {
    hashed.his = new Uint32Array(n)
    hashed.los = new Uint32Array(n)
  }
  const { his, los } = hashed
  for (let i = 0; i < n; i++) {
    fingerprintSeries(batch.nameOf(i), batch.labelsOf(i), fp)
    his[i] = fp[0] as number
    los[i] = fp[1] as number
  }
  return hashed
}

/**
 * How an entry is decided for its rule: entry `i` of `batch` (fingerprint `hi`, `lo`, `dps`
 * datapoints), owned by `rule`, whose window accounting is `stats` and batch counts `c`.
 */
type DecideEntry<R> = (
  stats: RuleStats,
  rule: CompiledRule,
  batch: SeriesBatch,
  i: number,
  hi: number,
  lo: number,
  dps: number,
  c: RuleCounts,
) => R

const groupOf = (
  stats: RuleStats,
  key: string,
  rule: CompiledRule,
  batch: SeriesBatch,
  i: number,
): GroupStats => {
  let g = stats.groups.get(key)
  if (g === undefined) {
    const p = rule.priority
    let rank = 0
    if (p !== undefined) {
      const value = labelValue(batch.nameOf(i), batch.labelsOf(i), p.label)
      rank = value === undefined ? p.defaultRank : (p.rank.get(value) ?? p.defaultRank)
    }
    g = { datapoints: 0, series: 0, rank }
    stats.groups.set(key, g)
  }
  return g
}

/**
 * Accounts one entry of a rule with action log, drop, sample or strip_labels; returns how many of
 * its leading datapoints are within the limits (the rest violate).
 *
 * Only datapoints within the limits count toward usage, and only they admit their series, so that
 * admitted usage never passes a limit and a series refused for cardinality stays refused for the
 * window. Datapoints are decided in order, which makes the violating ones a suffix of the entry:
 * - a new series that would pass `max_cardinality` violates with each of its datapoints;
 * - otherwise the first `max_datapoints_rate - datapoints` are within the limit, the rest violate.
 */
const admit: DecideEntry<number> = (stats, rule, batch, i, hi, lo, dps, c) => {
  const series = stats.series
  const maxDp = rule.maxDatapointsRate
  const isNew = !series.hasHash(hi, lo)
  if (isNew && rule.maxCardinality > 0 && series.size >= rule.maxCardinality) {
    c.cardinalityExceeded += dps
    if (maxDp > 0 && stats.datapoints >= maxDp) c.datapointsExceeded += dps
    return 0
  }
  const ok = maxDp > 0 ? Math.min(dps, Math.max(0, maxDp - stats.datapoints)) : dps
  c.datapointsExceeded += dps - ok
  if (ok > 0) {
    stats.datapoints += ok
    if (isNew) series.addHash(hi, lo)
    if (rule.groupBy.length > 0) {
      const g = groupOf(stats, groupKey(rule.groupBy, batch.nameOf(i), batch.labelsOf(i)), rule, batch, i)
      g.datapoints += ok
      if (isNew) g.series++
    }
  }
  return ok
}

/**
 * Accounts one entry of an `adaptive` rule; returns how many of its leading datapoints pass (the
 * rest are dropped).
 *
 * Every datapoint of a group still flowing counts toward usage, the one that goes over a limit
 * included. When usage passes a limit, groups are dropped largest first until the rest fits
 * (`shedGroups`); the datapoint that went over passes unless its own group was dropped. A dropped
 * group's datapoints are dropped, uncounted, for the rest of the window.
 */
const admitAdaptive: DecideEntry<number> = (stats, rule, batch, i, hi, lo, dps, c) => {
  const key = groupKey(rule.groupBy, batch.nameOf(i), batch.labelsOf(i))
  const dropped = stats.droppedGroups
  if (dropped.has(key)) return 0
  const g = groupOf(stats, key, rule, batch, i)
  const maxDp = rule.maxDatapointsRate
  const maxCard = rule.maxCardinality
  // The first datapoint: it may bring a new series.
  const isNew = stats.series.addHash(hi, lo)
  if (isNew) g.series++
  stats.datapoints++
  g.datapoints++
  const rateOver = maxDp > 0 && activeUsage(stats, "datapoints") > maxDp
  if (isNew && maxCard > 0 && activeUsage(stats, "series") > maxCard) {
    c.cardinalityExceeded++
    shedGroups(stats, "series", maxCard)
  }
  if (rateOver) {
    c.datapointsExceeded++
    shedGroups(stats, "datapoints", maxDp)
  }
  if ((isNew || rateOver) && dropped.has(key)) return 0
  let ok = 1
  let remaining = dps - 1
  // The others, in runs that fit, each followed by one that goes over.
  while (remaining > 0) {
    const room = maxDp > 0 ? Math.max(0, maxDp - activeUsage(stats, "datapoints")) : remaining
    if (room >= remaining) {
      stats.datapoints += remaining
      g.datapoints += remaining
      return ok + remaining
    }
    stats.datapoints += room + 1
    g.datapoints += room + 1
    ok += room
    remaining -= room + 1
    c.datapointsExceeded++
    shedGroups(stats, "datapoints", maxDp)
    if (dropped.has(key)) return ok
    ok++
  }
  return ok
}

/** How a part of an entry leaves: unchanged, dropped, or with labels stripped. */
const PASS = 0
const DROP = 1
const STRIP = 2

/** The outcome of `action` (with its sample rate) for a series whose fingerprint starts with `hi`. */
const outcomeOf = (action: Action, sampleRate: number, hi: number): number =>
  action === "log"
    ? PASS
    : action === "strip_labels"
      ? STRIP
      : action === "sample"
        ? hi / TWO_POW_32 >= sampleRate
          ? DROP
          : PASS
        : DROP

/**
 * A rule's utilisation in percent: the larger of its datapoints and its series as a share of their
 * limits (unlimited dimensions aside), in the usage that still counts (see `activeUsage`).
 */
export const utilisation = (stats: RuleStats, rule: CompiledRule): number => {
  let u = 0
  if (rule.maxDatapointsRate > 0) u = (100 * activeUsage(stats, "datapoints")) / rule.maxDatapointsRate
  if (rule.maxCardinality > 0) u = Math.max(u, (100 * activeUsage(stats, "series")) / rule.maxCardinality)
  return u
}

/** Position of the highest tier whose `atPercent` utilisation `u` reached; -1 for none. */
const tierAt = (tiers: ReadonlyArray<CompiledTier>, u: number): number => {
  let t = -1
  for (let k = 0; k < tiers.length && (tiers[k] as CompiledTier).atPercent <= u; k++) t = k
  return t
}

/** What `decideShaped` decided for an entry (read right after the call; never escapes). */
const shaped = {
  /** Leading datapoints that pass unchanged. */
  pass: 0,
  /** Whether the others pass stripped (else they are dropped). */
  strip: false,
  /** The labels stripped, when not the rule's own `stripLabels`. */
  labels: undefined as ReadonlyArray<string> | undefined,
  dropped: 0,
  stripped: 0,
}

/**
 * Decides one entry of a rule with tiers or label limits (docs/limits.md, "More of the original's rule
 * language"), into `shaped`:
 * - label limits first: a value that would bring a label past its limit has the label stripped,
 *   or (`label_limit_action: drop`) drops the entry, uncounted;
 * - then the rule's accounting (`admit`, or `admitAdaptive`), with the utilisation found before it;
 * - the datapoints within the limits take the action of the highest tier that utilisation reached
 *   (none: they pass); the violating ones take the tier at 100 when there is one, else the rule's
 *   action (`adaptive`: dropped).
 * An entry of several datapoints whose parts would leave differently (some dropped, others
 * stripped) is decided for limits to hold: all of it is dropped; otherwise the counts are exact.
 */
const decideShaped: DecideEntry<void> = (stats, rule, batch, i, hi, lo, dps, c) => {
  let labelStrip: Array<string> | undefined
  c.compiled = rule
  const limits = rule.labelLimits
  if (limits.length > 0) {
    const name = batch.nameOf(i)
    const labels = batch.labelsOf(i)
    for (let k = 0; k < limits.length; k++) {
      const limit = limits[k] as { readonly name: string; readonly max: number }
      const value = labelValue(name, labels, limit.name)
      if (value === undefined) continue
      let values = stats.labelValues.get(limit.name)
      if (values === undefined) {
        values = new Set()
        stats.labelValues.set(limit.name, values)
      }
      if (values.has(value)) continue
      if (values.size < limit.max) {
        values.add(value)
        continue
      }
      c.labelLimited ??= new Array<number>(limits.length).fill(0)
      c.labelLimited[k] = (c.labelLimited[k] as number) + dps
      if (rule.labelLimitAction === "drop") {
        shaped.pass = 0
        shaped.strip = false
        shaped.labels = undefined
        shaped.dropped = dps
        shaped.stripped = 0
        return
      }
      labelStrip ??= []
      labelStrip.push(limit.name)
    }
  }
  const tiers = rule.tiers
  const u = tiers.length > 0 ? utilisation(stats, rule) : 0
  const ok =
    rule.action === "adaptive"
      ? admitAdaptive(stats, rule, batch, i, hi, lo, dps, c)
      : admit(stats, rule, batch, i, hi, lo, dps, c)
  const violating = dps - ok
  let within = PASS
  let withinLabels: ReadonlyArray<string> | undefined
  if (ok > 0 && tiers.length > 0) {
    const t = tierAt(tiers, u)
    if (t >= 0) {
      const tier = tiers[t] as CompiledTier
      within = outcomeOf(tier.action, tier.sampleRate, hi)
      withinLabels = tier.stripLabels
      c.tierDatapoints ??= new Array<number>(tiers.length).fill(0)
      c.tierDatapoints[t] = (c.tierDatapoints[t] as number) + ok
    }
  }
  let over = PASS
  let overLabels: ReadonlyArray<string> = rule.stripLabels
  if (violating > 0) {
    const last = tiers.length - 1
    const top =
      last >= 0 && (tiers[last] as CompiledTier).atPercent === 100 ? (tiers[last] as CompiledTier) : undefined
    if (rule.action === "adaptive") over = DROP
    else if (top !== undefined) {
      over = outcomeOf(top.action, top.sampleRate, hi)
      overLabels = top.stripLabels
      c.tierDatapoints ??= new Array<number>(tiers.length).fill(0)
      c.tierDatapoints[last] = (c.tierDatapoints[last] as number) + violating
    } else over = outcomeOf(rule.action, rule.sampleRate, hi)
  }
  let passed = (within === PASS ? ok : 0) + (over === PASS ? violating : 0)
  let dropped = (within === DROP ? ok : 0) + (over === DROP ? violating : 0)
  let stripped = dps - passed - dropped
  let labels: ReadonlyArray<string> | undefined
  if (stripped > 0 || labelStrip !== undefined) {
    labels = labelStrip ?? []
    if (within === STRIP && ok > 0) labels = union(labels, withinLabels ?? [])
    if (over === STRIP && violating > 0) labels = union(labels, overLabels)
    if (labelStrip !== undefined) {
      stripped += passed
      passed = 0
    }
  }
  // The verdict keeps a prefix unchanged and handles the rest one way: where the parts differ,
  // the entry is kept within the limits.
  if (stripped > 0 && dropped > 0) {
    dropped = dps
    passed = 0
    stripped = 0
  }
  shaped.pass = passed
  shaped.strip = stripped > 0
  shaped.labels = stripped > 0 ? labels : undefined
  shaped.dropped = dropped
  shaped.stripped = stripped
}

/**
 * Writes what `decideShaped` decided for entry `i` (`dps` datapoints) into the verdict and the
 * counts `c` (dry-run: everything passes, what would be dropped or stripped is counted). Returns
 * the verdict's strip lists, made on first need. Kept apart from `enforce` so that its loop stays
 * as small as for rules without these keys.
 */
const applyShaped = (
  i: number,
  dps: number,
  c: RuleCounts,
  dryRun: boolean,
  pass: Uint32Array,
  strip: Uint8Array,
  stripLists: Array<ReadonlyArray<string> | undefined> | undefined,
): Array<ReadonlyArray<string> | undefined> | undefined => {
  if (dryRun) {
    pass[i] = dps
    c.passed += dps
    c.wouldDrop += shaped.dropped + shaped.stripped
    return stripLists
  }
  pass[i] = shaped.pass
  let lists = stripLists
  if (shaped.strip) {
    strip[i] = 1
    if (shaped.labels !== undefined) {
      lists ??= new Array(pass.length)
      lists[i] = shaped.labels
    }
  }
  c.passed += dps - shaped.dropped
  c.dropped += shaped.dropped
  return lists
}

const union = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): ReadonlyArray<string> => {
  if (a.length === 0) return b
  const out = [...a]
  for (const x of b) if (!out.includes(x)) out.push(x)
  return out
}

/**
 * A verdict for `n` entries in which nothing passes yet and no entry has an owner. Fresh per batch:
 * the verdict travels on with the request (rebuilding, buffering), so arrays reused across batches
 * could be overwritten while still in use.
 */
const freshVerdict = (n: number) => ({
  pass: new Uint32Array(n),
  strip: new Uint8Array(n),
  rule: new Array<CompiledRule | undefined>(n).fill(undefined),
})

/**
 * Decides a whole batch against one config version at wall-clock time `nowMs` (docs/limits.md; the
 * semantics are written down in docs/limits.md). Pure but for the version's own state, which it
 * updates: its rule stats (the accounting of the current window) and its match cache.
 * Synchronous, and allocation-free per datapoint: per entry, the series' fingerprint comes from
 * the batch (or its labels are hashed once, never joined into a key), the match cache is keyed by
 * that number, and the only allocation is, for `group_by` over several labels, its group key.
 *
 * - Each entry's series is owned by the first matching rule, else `default`, else nobody (passes,
 *   uncounted).
 * - Every rule's window rolls over when `nowMs` is in another window than its stats.
 * - Datapoints are decided in batch order; a violating datapoint is handled by the rule's action.
 * - In dry-run, the accounting is exactly that of the real run, and every datapoint passes unchanged.
 */
export const enforce = (version: ConfigVersion, nowMs: number, batch: SeriesBatch): EnforceResult => {
  const n = batch.length
  const fresh = freshVerdict(n)
  const { pass, strip, rule: owners } = fresh
  const limits = version.limits
  const datapoints = batch.datapoints
  if (limits.rules.length === 0 && limits.defaults === undefined) {
    for (let i = 0; i < n; i++) pass[i] = datapoints[i] as number
    return { verdict: fresh, counts: [] }
  }
  const statsByIndex = statsOf(version)
  const windowStart = windowStartOf(nowMs, limits.windowMs)
  for (let r = 0; r < statsByIndex.length; r++) rollWindow(statsByIndex[r] as RuleStats, windowStart)
  const perRule = new Array<RuleCounts | undefined>(statsByIndex.length).fill(undefined)
  const cache = version.matchCache
  const dryRun = version.dryRun
  const { his, los } = fingerprintsOf(batch)
  let stripLists: Array<ReadonlyArray<string> | undefined> | undefined

  for (let i = 0; i < n; i++) {
    const dps = datapoints[i] as number
    const hi = his[i] as number
    const lo = los[i] as number
    const code = ownerOf(limits, cache, hi, lo, batch, i)
    const rule = ownerOfCode(limits, code)
    if (rule === null) {
      pass[i] = dps
      continue
    }
    owners[i] = rule
    if (dps === 0) continue
    // The owner code is the rule's position in the accounted rules (`defaults` comes last).
    const index = code >= 0 ? code : limits.rules.length
    const stats = statsByIndex[index] as RuleStats
    let c = perRule[index]
    if (c === undefined) {
      c = {
        rule: rule.name,
        action: rule.action,
        passed: 0,
        dropped: 0,
        wouldDrop: 0,
        cardinalityExceeded: 0,
        datapointsExceeded: 0,
      }
      perRule[index] = c
      stats.lastMatchMs = nowMs
    }
    if (rule.shaped) {
      decideShaped(stats, rule, batch, i, hi, lo, dps, c)
      stripLists = applyShaped(i, dps, c, dryRun, pass, strip, stripLists)
      continue
    }
    const action = rule.action
    const ok =
      action === "adaptive"
        ? admitAdaptive(stats, rule, batch, i, hi, lo, dps, c)
        : admit(stats, rule, batch, i, hi, lo, dps, c)
    const violating = dps - ok
    // What the real run does with the violating datapoints.
    let passed = dps
    let dropped = 0
    let stripped = 0
    if (violating > 0) {
      if (action === "drop" || action === "adaptive") {
        passed = ok
        dropped = violating
      } else if (action === "sample") {
        if (hi / TWO_POW_32 >= rule.sampleRate) {
          passed = ok
          dropped = violating
        }
      } else if (action === "strip_labels") {
        passed = ok
        stripped = violating
      }
    }
    if (dryRun) {
      pass[i] = dps
      c.passed += dps
      c.wouldDrop += dropped + stripped
    } else {
      pass[i] = passed
      if (stripped > 0) strip[i] = 1
      c.passed += passed + stripped
      c.dropped += dropped
    }
  }

  const counts: Array<RuleCounts> = []
  for (let r = 0; r < perRule.length; r++) {
    const c = perRule[r]
    if (c !== undefined) counts.push(c)
  }
  const verdict: BatchVerdict = stripLists === undefined ? fresh : { ...fresh, stripLabels: stripLists }
  return { verdict, counts }
}

/**
 * What a router (`-mode router`) decides for a batch: every datapoint passes, nothing is counted,
 * and each entry's owning rule is found (through the version's match cache) so that the series can
 * be routed by its rule and `group_by` group. Pure but for the match cache.
 */
export const matchOnly = (version: ConfigVersion, _nowMs: number, batch: SeriesBatch): EnforceResult => {
  const n = batch.length
  const verdict = freshVerdict(n)
  const { pass, rule: owners } = verdict
  const limits = version.limits
  const datapoints = batch.datapoints
  for (let i = 0; i < n; i++) pass[i] = datapoints[i] as number
  if (limits.rules.length === 0 && limits.defaults === undefined) return { verdict, counts: [] }
  const { his, los } = fingerprintsOf(batch)
  for (let i = 0; i < n; i++) {
    const rule = ownerOfCode(
      limits,
      ownerOf(limits, version.matchCache, his[i] as number, los[i] as number, batch, i),
    )
    if (rule !== null) owners[i] = rule
  }
  return { verdict, counts: [] }
}
