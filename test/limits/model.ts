/**
 * A reference model of the limits engine: the semantics of docs/limits.md written the plain way,
 * one datapoint at a time, with `Set<string>` of keys and sorting. Slow, obvious, and independent
 * of the engine's arithmetic, fingerprint set and caches (it shares only the sample hash, which is
 * part of the specified behaviour).
 */
import { fingerprint } from "../../src/limits/fingerprint.js"
import type { Entry } from "./engine.js"

export type Action = "log" | "drop" | "adaptive" | "sample" | "strip_labels"

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
}

interface State {
  windowStart: number
  datapoints: number
  series: Set<string>
  groups: Map<string, Group>
  dropped: Set<string>
  shedDatapoints: number
  shedSeries: number
}

export interface ModelCounts {
  rule: string
  action: string
  passed: number
  dropped: number
  wouldDrop: number
  cardinalityExceeded: number
  datapointsExceeded: number
}

type Outcome = "pass" | "strip" | "drop"

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

  const shed = (st: State, bySeries: boolean, max: number) => {
    const active = () => (bySeries ? st.series.size - st.shedSeries : st.datapoints - st.shedDatapoints)
    while (active() > max) {
      const live = [...st.groups]
        .filter(([k, g]) => !st.dropped.has(k) && (bySeries ? g.series : g.datapoints) > 0)
        .sort(([ka, a], [kb, b]) => {
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
      const g = st.groups.get(gk) ?? { datapoints: 0, series: 0 }
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
        const g = st.groups.get(gk) ?? { datapoints: 0, series: 0 }
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
    }
    const counts = new Map<string, ModelCounts>()
    const pass: Array<number> = []
    const strip: Array<number> = []
    const rule: Array<string | undefined> = []
    for (const entry of entries) {
      const dps = entry[2]
      const r = owner(entry)
      rule.push(r?.name)
      if (r === undefined || dps === 0) {
        pass.push(dps)
        strip.push(0)
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
        c.passed += dps
        c.wouldDrop += stripped + dropped
      } else {
        pass.push(unchanged)
        strip.push(stripped > 0 ? 1 : 0)
        c.passed += unchanged + stripped
        c.dropped += dropped
      }
    }
    const order = rules.map((r) => r.name).filter((n) => counts.has(n))
    return { pass, strip, rule, counts: Object.fromEntries(counts), order }
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
