import { Counter, Gauge, type Registry } from "prom-client"
import type { SeriesBatch } from "./batch.js"
import { fingerprintSeries } from "./fingerprint.js"
import { labelValue } from "./match.js"
import { SeriesSet } from "./series-set.js"
import { windowStartOf } from "./window.js"

/** The value every label takes in the combination that collects what is past the bound. */
export const OTHER = "__other__"

/** Default of `-stats-max-label-combinations`. */
export const DEFAULT_MAX_LABEL_COMBINATIONS = 10_000

/** A label name as Prometheus accepts it (`service.name` is exported as `service_name`). */
export const promLabelName = (name: string): string => {
  const s = name.replace(/[^A-Za-z0-9_]/g, "_")
  return /^[0-9]/.test(s) ? `_${s}` : s
}

interface Combination {
  readonly values: ReadonlyArray<string>
  datapoints: number
  readonly series: SeriesSet
}

/**
 * Usage statistics by label (`-stats-labels`): for all traffic, governed or not, the datapoints and
 * the distinct series of each combination of the labels' values. At most `maxCombinations`
 * combinations are kept; datapoints of any other fall under the combination whose every value is
 * `__other__`. A missing label has the value "". Series are counted per window (the limits
 * window), datapoints since the start.
 *
 * Mutated only by the synchronous data path (`observe`); read at scrape time.
 */
export class LabelUsage {
  private readonly combos = new Map<string, Combination>()
  private windowStart = Number.NaN
  private readonly fp = new Uint32Array(2)

  constructor(
    readonly labels: ReadonlyArray<string>,
    readonly maxCombinations: number = DEFAULT_MAX_LABEL_COMBINATIONS,
  ) {}

  /** Combinations kept (`__other__` included). */
  get size(): number {
    return this.combos.size
  }

  /** Counts every entry of `batch` at `nowMs`, in a window of `windowMs`. */
  observe(batch: SeriesBatch, nowMs: number, windowMs: number): void {
    const start = windowStartOf(nowMs, windowMs)
    if (start !== this.windowStart) {
      this.windowStart = start
      for (const c of this.combos.values()) c.series.clear()
    }
    const labels = this.labels
    const his = batch.hi
    const los = batch.lo
    for (let i = 0; i < batch.length; i++) {
      const dps = batch.datapoints[i] as number
      const name = batch.nameOf(i)
      const list = batch.labelsOf(i)
      let key = ""
      for (let k = 0; k < labels.length; k++) {
        if (k > 0) key += "\u0000"
        key += labelValue(name, list, labels[k] as string) ?? ""
      }
      let combo = this.combos.get(key)
      if (combo === undefined) {
        if (this.combos.size >= this.maxCombinations - 1) combo = this.other()
        else {
          combo = { values: key.split("\u0000"), datapoints: 0, series: new SeriesSet() }
          this.combos.set(key, combo)
        }
      }
      combo.datapoints += dps
      if (his !== undefined && los !== undefined) combo.series.addHash(his[i] as number, los[i] as number)
      else {
        fingerprintSeries(name, list, this.fp)
        combo.series.addHash(this.fp[0] as number, this.fp[1] as number)
      }
    }
  }

  private other(): Combination {
    const key = `\u0001${OTHER}`
    let c = this.combos.get(key)
    if (c === undefined) {
      c = { values: this.labels.map(() => OTHER), datapoints: 0, series: new SeriesSet() }
      this.combos.set(key, c)
    }
    return c
  }

  /** Every combination: its values (in `labels` order), datapoints since the start, series in the window at `nowMs`. */
  read(
    nowMs: number,
    windowMs: number,
  ): Array<{ values: ReadonlyArray<string>; datapoints: number; series: number }> {
    const current = windowStartOf(nowMs, windowMs) === this.windowStart
    return [...this.combos.values()].map((c) => ({
      values: c.values,
      datapoints: c.datapoints,
      series: current ? c.series.size : 0,
    }))
  }

  /**
   * Registers `metrics_governor_label_datapoints_total{…}` and `metrics_governor_label_cardinality{…}`
   * (label names as `promLabelName` makes them), read at scrape time.
   */
  register(registry: Registry, now: () => number, windowMs: () => number): void {
    const names = this.labels.map(promLabelName)
    const labelsOf = (values: ReadonlyArray<string>) =>
      Object.fromEntries(names.map((n, k) => [n, values[k] as string]))
    const self = this
    new Counter({
      name: "metrics_governor_label_datapoints_total",
      help: "Datapoints received, by the values of the -stats-labels labels (all traffic).",
      labelNames: names,
      registers: [registry],
      collect() {
        this.reset()
        for (const c of self.read(now(), windowMs())) this.inc(labelsOf(c.values), c.datapoints)
      },
    })
    new Gauge({
      name: "metrics_governor_label_cardinality",
      help: "Distinct series in the current window, by the values of the -stats-labels labels (all traffic).",
      labelNames: names,
      registers: [registry],
      collect() {
        this.reset()
        for (const c of self.read(now(), windowMs())) this.set(labelsOf(c.values), c.series)
      },
    })
  }
}
