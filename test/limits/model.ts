/**
 * A reference model of the limits engine: the semantics of docs/limits.md written the plain way,
 * one datapoint at a time, with `Set<string>` of keys and sorting. Slow, obvious, and independent
 * of the engine's arithmetic, fingerprint set and caches (it shares only the sample hash, which is
 * part of the specified behaviour).
 */
import { fingerprint } from "../../src/limits/fingerprint.js"
import type { Entry } from "./engine.js"

export type Action = "log" | "drop" | "adaptive" | "sample" | "strip_labels"

/** A tier (docs/limits.md "Tiers"); a `strip_labels` tier strips `pod`. */
export interface TierSpec {
  readonly atPercent: number
  readonly action: Exclude<Action, "adaptive">
  readonly sampleRate: number
}

/** The labels a `strip_labels` tier removes, in every generated file. */
export const TIER_STRIP = "pod"

export interface RuleSpec {
  readonly name: string
  readonly metricName: string | undefined
  /** label -> value; "*" = present with a non-empty value, "" = absent. */
  readonly labels: Readonly<Record<string, string>>
  readonly maxDatapointsRate: number
  readonly maxCardinality: number
  readonly action: Action
  readonly groupBy: ReadonlyArray<string>
  readonly sampleRate: number
  /** Ascending `atPercent`. */
  readonly tiers?: ReadonlyArray<TierSpec>
  readonly labelLimits?: ReadonlyArray<{ readonly name: string; readonly max: number }>
  readonly labelLimitAction?: "strip" | "drop"
  /** `adaptive_priority` (its label is one of `groupBy`). */
  readonly priority?: {
    readonly label: string
    readonly order: ReadonlyArray<string>
    readonly defaultPriority: number
  }
}

export interface LimitsModelSpec {
  readonly windowMs: number
  readonly rules: ReadonlyArray<RuleSpec>
  /** Limits of `default`; undefined = no defaults block. */
  readonly defaults: Omit<RuleSpec, "name" | "metricName" | "labels"> | undefined
}

const q = (s: string) => JSON.stringify(s)

const limitLines = (r: Omit<RuleSpec, "name" | "metricName" | "labels">, indent: string): Array<string> => [
  `${indent}max_datapoints_rate: ${r.maxDatapointsRate}`,
  `${indent}max_cardinality: ${r.maxCardinality}`,
  `${indent}action: ${r.action}`,
  ...(r.groupBy.length > 0 ? [`${indent}group_by: [${r.groupBy.join(", ")}]`] : []),
  ...(r.action === "sample" ? [`${indent}sample_rate: ${r.sampleRate}`] : []),
  ...(r.action === "strip_labels" ? [`${indent}strip_labels: [id]`] : []),
  ...((r.tiers ?? []).length === 0
    ? []
    : [
        `${indent}tiers:`,
        ...(r.tiers ?? []).map(
          (t) =>
            `${indent}  - {at_percent: ${t.atPercent}, action: ${t.action}` +
            (t.action === "sample" ? `, sample_rate: ${t.sampleRate}` : "") +
            (t.action === "strip_labels" ? `, strip_labels: [${TIER_STRIP}]` : "") +
            "}",
        ),
      ]),
  ...((r.labelLimits ?? []).length === 0
    ? []
    : [
        `${indent}label_limits: {${(r.labelLimits ?? []).map((l) => `${l.name}: ${l.max}`).join(", ")}}`,
        `${indent}label_limit_action: ${r.labelLimitAction ?? "strip"}`,
      ]),
  ...(r.priority === undefined
    ? []
    : [
        `${indent}adaptive_priority: {label: ${r.priority.label}, order: [${r.priority.order.join(", ")}], default_priority: ${r.priority.defaultPriority}}`,
      ]),
]

/** The limits.yaml of a spec. */
export const yamlOf = (spec: LimitsModelSpec): string => {
  const lines = [`window: ${spec.windowMs / 1000}s`]
  if (spec.defaults !== undefined) lines.push("defaults:", ...limitLines(spec.defaults, "  "))
  lines.push(spec.rules.length === 0 ? "rules: []" : "rules:")
  for (const r of spec.rules) {
    lines.push(`  - name: ${r.name}`, "    match:")
    if (r.metricName !== undefined) lines.push(`      metric_name: ${q(r.metricName)}`)
    lines.push(`      labels: {${Object.entries(r.labels).map(([k, v]) => `${k}: ${q(v)}`)}}`)
    lines.push(...limitLines(r, "    "))
  }
  return `${lines.join("\n")}\n`
}

interface Group {
  datapoints: number
  series: number
  rank: number
}

interface State {
  windowStart: number
  datapoints: number
  series: Set<string>
  groups: Map<string, Group>
  dropped: Set<string>
  shedDatapoints: number
  shedSeries: number
  /** `label_limits`: the values admitted this window, per label. */
  labelValues: Map<string, Set<string>>
}

export interface ModelCounts {
  rule: string
  action: string
  passed: number
  dropped: number
  wouldDrop: number
  cardinalityExceeded: number
  datapointsExceeded: number
  /** Datapoints each tier decided (by position); present once a tier decided one. */
  tierDatapoints?: Array<number>
  /** Datapoints over each label limit (by position); present once one was. */
  labelLimited?: Array<number>
}

type Outcome = "pass" | "strip" | "drop"

/** One datapoint's outcome, and the labels it loses when stripped (undefined: the rule's own). */
interface Decided {
  readonly outcome: Outcome
  readonly labels?: ReadonlyArray<string>
}

const keyOf = ([name, labels]: Entry): string =>
  [
    name,
    ...Object.keys(labels)
      .filter((k) => labels[k] !== "")
      .sort()
      .flatMap((k) => [k, labels[k]]),
  ].join("\u0000")

const fp = new Uint32Array(2)
const sampledIn = (key: string, rate: number): boolean => {
  fingerprint(key, fp)
  return (fp[0] as number) / 2 ** 32 < rate
}

/** The model engine over one config, fed batch after batch. */
export const makeModel = (spec: LimitsModelSpec, dryRun: boolean) => {
  const defaults: RuleSpec | undefined =
    spec.defaults !== undefined && (spec.defaults.maxCardinality > 0 || spec.defaults.maxDatapointsRate > 0)
      ? { ...spec.defaults, name: "default", metricName: undefined, labels: {} }
      : undefined
  const rules = defaults === undefined ? spec.rules : [...spec.rules, defaults]
  const regexes = new Map(
    spec.rules.map((r) => [
      r.name,
      r.metricName === undefined ? undefined : new RegExp(`^(?:${r.metricName})$`, "s"),
    ]),
  )
  const states = new Map<string, State>(
    rules.map((r) => [
      r.name,
      {
        windowStart: 0,
        datapoints: 0,
        series: new Set<string>(),
        groups: new Map<string, Group>(),
        dropped: new Set<string>(),
        shedDatapoints: 0,
        shedSeries: 0,
        labelValues: new Map<string, Set<string>>(),
      },
    ]),
  )

  const owner = ([name, labels]: Entry): RuleSpec | undefined => {
    const value = (l: string) => (l === "__name__" ? name : labels[l] === "" ? undefined : labels[l])
    for (const r of spec.rules) {
      const ok = Object.entries(r.labels).every(([l, want]) =>
        want === "*" ? value(l) !== undefined : want === "" ? value(l) === undefined : value(l) === want,
      )
      const re = regexes.get(r.name)
      if (ok && (re === undefined || re.test(name))) return r
    }
    return defaults
  }

  const groupOf = (r: RuleSpec, [, labels]: Entry) => r.groupBy.map((l) => labels[l] ?? "").join("\u0000")

  /** A new group's rank under `adaptive_priority`: the position of its value in `order`. */
  const rankOf = (r: RuleSpec, [, labels]: Entry): number => {
    const p = r.priority
    if (p === undefined) return 0
    const v = labels[p.label]
    const at = v === undefined || v === "" ? -1 : p.order.indexOf(v)
    return at === -1 ? p.defaultPriority : at
  }

  const newGroup = (r: RuleSpec, entry: Entry): Group => ({
    datapoints: 0,
    series: 0,
    rank: rankOf(r, entry),
  })

  const shed = (st: State, bySeries: boolean, max: number) => {
    const active = () => (bySeries ? st.series.size - st.shedSeries : st.datapoints - st.shedDatapoints)
    while (active() > max) {
      // The least important first (highest rank), then the largest, then the smaller key.
      const live = [...st.groups]
        .filter(([k, g]) => !st.dropped.has(k) && (bySeries ? g.series : g.datapoints) > 0)
        .sort(([ka, a], [kb, b]) => {
          if (a.rank !== b.rank) return b.rank - a.rank
          const d = bySeries ? b.series - a.series : b.datapoints - a.datapoints
          return d !== 0 ? d : ka < kb ? -1 : 1
        })
      const first = live[0]
      if (first === undefined) return
      st.dropped.add(first[0])
      st.shedDatapoints += first[1].datapoints
      st.shedSeries += first[1].series
    }
  }

  /** One datapoint of `entry`, decided and accounted. */
  const step = (r: RuleSpec, st: State, entry: Entry, c: ModelCounts): Outcome => {
    const key = keyOf(entry)
    const gk = groupOf(r, entry)
    if (r.action === "adaptive") {
      if (st.dropped.has(gk)) return "drop"
      const g = st.groups.get(gk) ?? newGroup(r, entry)
      st.groups.set(gk, g)
      const isNew = !st.series.has(key)
      if (isNew) {
        st.series.add(key)
        g.series++
      }
      st.datapoints++
      g.datapoints++
      const rateOver = r.maxDatapointsRate > 0 && st.datapoints - st.shedDatapoints > r.maxDatapointsRate
      if (isNew && r.maxCardinality > 0 && st.series.size - st.shedSeries > r.maxCardinality) {
        c.cardinalityExceeded++
        shed(st, true, r.maxCardinality)
      }
      if (rateOver) {
        c.datapointsExceeded++
        shed(st, false, r.maxDatapointsRate)
      }
      return st.dropped.has(gk) ? "drop" : "pass"
    }
    const isNew = !st.series.has(key)
    const cardOver = isNew && r.maxCardinality > 0 && st.series.size + 1 > r.maxCardinality
    const rateOver = r.maxDatapointsRate > 0 && st.datapoints + 1 > r.maxDatapointsRate
    if (cardOver) c.cardinalityExceeded++
    if (rateOver) c.datapointsExceeded++
    if (!cardOver && !rateOver) {
      st.datapoints++
      st.series.add(key)
      if (r.groupBy.length > 0) {
        const g = st.groups.get(gk) ?? newGroup(r, entry)
        st.groups.set(gk, g)
        g.datapoints++
        if (isNew) g.series++
      }
      return "pass"
    }
    switch (r.action) {
      case "log":
        return "pass"
      case "drop":
        return "drop"
      case "sample":
        return sampledIn(key, r.sampleRate) ? "pass" : "drop"
      default:
        return "strip"
    }
  }

  const outcomeOf = (action: Exclude<Action, "adaptive">, sampleRate: number, entry: Entry): Outcome =>
    action === "log"
      ? "pass"
      : action === "drop"
        ? "drop"
        : action === "sample"
          ? sampledIn(keyOf(entry), sampleRate)
            ? "pass"
            : "drop"
          : "strip"

  /**
   * One datapoint of a rule with tiers or label limits (docs/limits.md "More of the original's rule
   * language"): label limits first, then the rule's accounting with the utilisation found before
   * it, then the tier that utilisation reached (within the limits) or the tier at 100 / the rule's
   * action (violating).
   */
  const shapedStep = (r: RuleSpec, st: State, entry: Entry, c: ModelCounts): Decided => {
    const limits = r.labelLimits ?? []
    const tiers = r.tiers ?? []
    const stripped: Array<string> = []
    for (let k = 0; k < limits.length; k++) {
      const { name, max } = limits[k] as { name: string; max: number }
      const value = entry[1][name]
      if (value === undefined || value === "") continue
      const values = st.labelValues.get(name) ?? new Set<string>()
      st.labelValues.set(name, values)
      if (values.has(value)) continue
      if (values.size < max) {
        values.add(value)
        continue
      }
      c.labelLimited ??= limits.map(() => 0)
      c.labelLimited[k] = (c.labelLimited[k] as number) + 1
      if ((r.labelLimitAction ?? "strip") === "drop") return { outcome: "drop" }
      stripped.push(name)
    }
    const active = (n: number, shed: number) => n - shed
    let u = 0
    if (r.maxDatapointsRate > 0) u = (100 * active(st.datapoints, st.shedDatapoints)) / r.maxDatapointsRate
    if (r.maxCardinality > 0)
      u = Math.max(u, (100 * active(st.series.size, st.shedSeries)) / r.maxCardinality)
    const before = { ...c }
    const plain = step(r, st, entry, c)
    // Within the limits: the plain step passed it (or, for log/sample/strip rules, counted no
    // violation); violating: a violation was counted.
    const violating =
      r.action === "adaptive"
        ? plain === "drop"
        : c.cardinalityExceeded > before.cardinalityExceeded ||
          c.datapointsExceeded > before.datapointsExceeded
    let decided: Decided
    if (!violating) {
      let t = -1
      for (let k = 0; k < tiers.length && (tiers[k] as TierSpec).atPercent <= u; k++) t = k
      if (t < 0) decided = { outcome: "pass" }
      else {
        const tier = tiers[t] as TierSpec
        c.tierDatapoints ??= tiers.map(() => 0)
        c.tierDatapoints[t] = (c.tierDatapoints[t] as number) + 1
        const o = outcomeOf(tier.action, tier.sampleRate, entry)
        decided = o === "strip" ? { outcome: o, labels: [TIER_STRIP] } : { outcome: o }
      }
    } else {
      const last = tiers.length - 1
      const top =
        last >= 0 && (tiers[last] as TierSpec).atPercent === 100 ? (tiers[last] as TierSpec) : undefined
      if (r.action === "adaptive") decided = { outcome: "drop" }
      else if (top !== undefined) {
        c.tierDatapoints ??= tiers.map(() => 0)
        c.tierDatapoints[last] = (c.tierDatapoints[last] as number) + 1
        const o = outcomeOf(top.action, top.sampleRate, entry)
        decided = o === "strip" ? { outcome: o, labels: [TIER_STRIP] } : { outcome: o }
      } else {
        const o = outcomeOf(r.action, r.sampleRate, entry)
        decided = o === "strip" ? { outcome: o, labels: ["id"] } : { outcome: o }
      }
    }
    if (stripped.length === 0 || decided.outcome === "drop") return decided
    // Labels over their limit go, with whatever the tier or action strips.
    return { outcome: "strip", labels: [...new Set([...stripped, ...(decided.labels ?? [])])] }
  }

  const run = (nowMs: number, entries: ReadonlyArray<Entry>) => {
    const windowStart = Math.floor(nowMs / spec.windowMs) * spec.windowMs
    for (const st of states.values()) {
      if (st.windowStart === windowStart) continue
      st.windowStart = windowStart
      st.datapoints = 0
      st.series.clear()
      st.groups.clear()
      st.dropped.clear()
      st.shedDatapoints = 0
      st.shedSeries = 0
      st.labelValues.clear()
    }
    const counts = new Map<string, ModelCounts>()
    const pass: Array<number> = []
    const strip: Array<number> = []
    const rule: Array<string | undefined> = []
    /** The labels each stripped entry loses (sorted); undefined where none are stripped. */
    const stripLabels: Array<ReadonlyArray<string> | undefined> = []
    for (const entry of entries) {
      const dps = entry[2]
      const r = owner(entry)
      rule.push(r?.name)
      if (r === undefined || dps === 0) {
        pass.push(dps)
        strip.push(0)
        stripLabels.push(undefined)
        continue
      }
      const st = states.get(r.name) as State
      const c = counts.get(r.name) ?? {
        rule: r.name,
        action: r.action,
        passed: 0,
        dropped: 0,
        wouldDrop: 0,
        cardinalityExceeded: 0,
        datapointsExceeded: 0,
      }
      counts.set(r.name, c)
      if ((r.tiers ?? []).length > 0 || (r.labelLimits ?? []).length > 0) {
        if (dps !== 1)
          throw new Error(
            "the model decides entries of rules with tiers or label limits one datapoint at a time",
          )
        const d = shapedStep(r, st, entry, c)
        const lost = d.outcome === "drop" ? 1 : d.outcome === "strip" ? 1 : 0
        if (dryRun) {
          pass.push(1)
          strip.push(0)
          stripLabels.push(undefined)
          c.passed += 1
          c.wouldDrop += lost
        } else {
          pass.push(d.outcome === "pass" ? 1 : 0)
          strip.push(d.outcome === "strip" ? 1 : 0)
          stripLabels.push(d.outcome === "strip" ? [...(d.labels ?? [])].sort() : undefined)
          c.passed += d.outcome === "drop" ? 0 : 1
          c.dropped += d.outcome === "drop" ? 1 : 0
        }
        continue
      }
      const outcomes: Array<Outcome> = []
      for (let j = 0; j < dps; j++) outcomes.push(step(r, st, entry, c))
      const lead = outcomes.findIndex((o) => o !== "pass")
      const unchanged = lead === -1 ? dps : lead
      const rest = outcomes.slice(unchanged)
      if (!rest.every((o) => o === rest[0]))
        throw new Error(`violations are not a uniform suffix: ${outcomes}`)
      const stripped = rest[0] === "strip" ? rest.length : 0
      const dropped = rest[0] === "drop" ? rest.length : 0
      if (dryRun) {
        pass.push(dps)
        strip.push(0)
        stripLabels.push(undefined)
        c.passed += dps
        c.wouldDrop += stripped + dropped
      } else {
        pass.push(unchanged)
        strip.push(stripped > 0 ? 1 : 0)
        stripLabels.push(stripped > 0 ? ["id"] : undefined)
        c.passed += unchanged + stripped
        c.dropped += dropped
      }
    }
    const order = rules.map((r) => r.name).filter((n) => counts.has(n))
    return { pass, strip, rule, counts: Object.fromEntries(counts), order, stripLabels }
  }

  const snapshot = () =>
    Object.fromEntries(
      [...states].map(([name, st]) => [
        name,
        {
          windowStart: st.windowStart,
          datapoints: st.datapoints,
          series: st.series.size,
          groups: Object.fromEntries([...st.groups].map(([k, g]) => [k, { ...g }])),
          dropped: [...st.dropped].sort(),
          shedDatapoints: st.shedDatapoints,
          shedSeries: st.shedSeries,
        },
      ]),
    )

  return { run, snapshot, keyOf }
}
