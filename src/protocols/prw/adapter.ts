/**
 * Remote write ⇄ the limits engine: a `WriteRequest` seen as a protocol-neutral `SeriesBatch`, and
 * a `BatchVerdict` applied back to the request.
 *
 * Datapoints of a series, in the order the verdict counts them: its float samples, then its native
 * histograms (a series carries one kind or the other in practice). A series without either (an
 * exemplar-only series, as Prometheus sends exemplars) has no datapoints and always passes.
 *
 * @module
 */
import { type BatchVerdict, stripLabelsOf } from "../../limits/batch.js"
import { type Label, NO_BYTES, type Sample, type TimeSeries, type WriteRequest } from "./types.js"

/** Datapoints a series carries for the limits engine: its float samples plus its native histograms. */
export const datapointCount = (series: TimeSeries): number => series.samples.length + series.histograms.length

/** The label that carries the metric name in remote write. */
export const METRIC_NAME_LABEL = "__name__"

/** The name and flat, key-sorted labels of one series, as `toSeriesBatch` lists them. */
export const seriesEntry = (
  series: TimeSeries,
): { readonly name: string; readonly labels: ReadonlyArray<string> } => {
  const seriesLabels = series.labels
  let name: string | undefined
  let flat: Array<string> = []
  let sorted = true
  let previous = ""
  for (let j = 0; j < seriesLabels.length; j++) {
    const label = seriesLabels[j] as Label
    if (label.name === METRIC_NAME_LABEL) {
      name ??= label.value
      continue
    }
    if (flat.length > 0 && label.name < previous) sorted = false
    previous = label.name
    flat.push(label.name, label.value)
  }
  if (!sorted) flat = sortPairs(flat)
  return { name: name ?? "", labels: flat }
}

/** `[k0, v0, k1, v1, …]` stably sorted by key. */
const sortPairs = (flat: ReadonlyArray<string>): Array<string> => {
  const order = Array.from({ length: flat.length / 2 }, (_, i) => i)
  order.sort((a, b) => {
    const ka = flat[2 * a] as string
    const kb = flat[2 * b] as string
    return ka < kb ? -1 : ka > kb ? 1 : a - b
  })
  const sorted: Array<string> = []
  for (const pair of order) sorted.push(flat[2 * pair] as string, flat[2 * pair + 1] as string)
  return sorted
}

/** The request to forward after the verdict, and the datapoints it carries. */
export interface AppliedVerdict {
  readonly request: WriteRequest
  readonly datapoints: number
}

const EMPTY: ReadonlyArray<never> = Object.freeze([])

/** The first `count` items, without copying when that is all or none of them. */
const head = <A>(items: ReadonlyArray<A>, count: number): ReadonlyArray<A> =>
  count >= items.length ? items : count === 0 ? EMPTY : items.slice(0, count)

/** The items after the first `count`, without copying when that is all or none of them. */
const tail = <A>(items: ReadonlyArray<A>, count: number): ReadonlyArray<A> =>
  count === 0 ? items : count >= items.length ? EMPTY : items.slice(count)

/**
 * Applies the verdict for `toSeriesBatch(request)` to `request`. For series `i` with `d`
 * datapoints, the first `pass[i]` pass unchanged; the other `d - pass[i]`:
 * - `strip[i] === 1`: pass in a second series, right after the first, whose labels lack the
 *   rule's `stripLabels` (when the series has none of them, they simply stay in the first series);
 * - otherwise: are dropped.
 *
 * A series left without datapoints is dropped. Exemplars and unknown fields of a series stay with
 * its unchanged part, or move to the stripped part when nothing passed unchanged; they are dropped
 * with the series. Labels are only ever removed, never added; request-level metadata and unknown
 * fields pass as they are. When every datapoint passes, `request` itself is returned.
 */
export const applyVerdict = (request: WriteRequest, verdict: BatchVerdict): AppliedVerdict => {
  const timeseries = request.timeseries
  const length = timeseries.length
  const { pass, strip } = verdict
  let total = 0
  let i = 0
  for (; i < length; i++) {
    const count = datapointCount(timeseries[i] as TimeSeries)
    if ((pass[i] ?? count) < count) break
    total += count
  }
  if (i === length) return { request, datapoints: total }

  const kept: Array<TimeSeries> = timeseries.slice(0, i)
  let datapoints = total
  for (; i < length; i++) {
    const series = timeseries[i] as TimeSeries
    const sampleCount = series.samples.length
    const count = sampleCount + series.histograms.length
    const passed = Math.min(pass[i] ?? count, count)
    if (passed === count) {
      kept.push(series)
      datapoints += count
      continue
    }
    let strippedLabels: ReadonlyArray<Label> | undefined
    if (strip[i] === 1) {
      const stripLabels = stripLabelsOf(verdict, i)
      strippedLabels = series.labels.filter((label) => !stripLabels.includes(label.name))
      if (strippedLabels.length === series.labels.length) {
        kept.push(series) // nothing to strip: the violating datapoints pass as they are
        datapoints += count
        continue
      }
    }
    const passedSamples = Math.min(passed, sampleCount)
    const passedHistograms = passed - passedSamples
    if (passed > 0) {
      kept.push({
        labels: series.labels,
        samples: head<Sample>(series.samples, passedSamples),
        exemplars: series.exemplars,
        histograms: head(series.histograms, passedHistograms),
        unknown: series.unknown,
      })
      datapoints += passed
    }
    if (strippedLabels !== undefined) {
      kept.push({
        labels: strippedLabels,
        samples: tail<Sample>(series.samples, passedSamples),
        exemplars: passed > 0 ? NO_BYTES : series.exemplars,
        histograms: tail(series.histograms, passedHistograms),
        unknown: passed > 0 ? NO_BYTES : series.unknown,
      })
      datapoints += count - passed
    }
  }
  return { request: { timeseries: kept, metadata: request.metadata, unknown: request.unknown }, datapoints }
}
