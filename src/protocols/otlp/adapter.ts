/**
 * OTLP ↔ limits engine: the `SeriesBatch` view of a request, and the request that a `BatchVerdict`
 * leaves.
 *
 * Entries are the data points of the request in wire order (resource, scope, metric, point), one
 * entry and one datapoint per data point of every metric type (a histogram, exponential
 * histogram or summary point counts as 1). A metric without data has no entries.
 *
 * Series identity (the entry's `name` and `labels`):
 * - name: the metric name;
 * - labels: the resource attributes and the data point attributes, flattened and key-sorted
 *   (`attribute-text.ts` gives the value texts); a data point attribute wins over a resource
 *   attribute of the same key;
 * - not part of it: scope name, version and attributes, the metric's unit, description, type and
 *   metadata, exemplars. Two scopes reporting the same metric and attributes are one series.
 *
 * Stripping (`strip_labels`): only data point attributes are removed. A label that comes from a
 * resource attribute stays, because the resource is shared by every point under it; where a data
 * point attribute shadowed a resource attribute of the same key, the resource value shows again.
 */
import { type ArraySeriesBatch, arrayBatch, type BatchVerdict } from "../../limits/batch.js"
import { flattenAttributes, mergeLabels } from "./attribute-text.js"
import type {
  DataPoint,
  ExportMetricsServiceRequest,
  KeyValue,
  Metric,
  MetricData,
  ResourceMetrics,
  ScopeMetrics,
} from "./types.js"

const NO_LABELS: ReadonlyArray<string> = Object.freeze([])

/** The limits engine's view of `req`: one entry per data point, in wire order. */
export const toSeriesBatch = (req: ExportMetricsServiceRequest): ArraySeriesBatch => {
  const names: string[] = []
  const labels: Array<ReadonlyArray<string>> = []
  for (const rm of req.resourceMetrics) {
    const resourceLabels = rm.resource === undefined ? NO_LABELS : flattenAttributes(rm.resource.attributes)
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        const points = m.data?.dataPoints
        if (points === undefined) continue
        for (const p of points) {
          names.push(m.name)
          labels.push(mergeLabels(resourceLabels, flattenAttributes(p.attributes)))
        }
      }
    }
  }
  const length = names.length
  return arrayBatch(names, labels, new Uint32Array(length).fill(1))
}

/** The number of data points in `req` (= `toSeriesBatch(req).length`). */
export const countDataPoints = (req: ExportMetricsServiceRequest): number => {
  let n = 0
  for (const rm of req.resourceMetrics)
    for (const sm of rm.scopeMetrics) for (const m of sm.metrics) n += m.data?.dataPoints.length ?? 0
  return n
}

const stripAttributes = (
  attrs: ReadonlyArray<KeyValue>,
  strip: ReadonlyArray<string>,
): ReadonlyArray<KeyValue> => {
  let out: KeyValue[] | undefined
  for (let i = 0; i < attrs.length; i++) {
    const kv = attrs[i] as KeyValue
    if (!strip.includes(kv.key)) out?.push(kv)
    else if (out === undefined) out = attrs.slice(0, i)
  }
  return out ?? attrs
}

/** `d` with other data points of its own type (they come from `d.dataPoints`). */
const withDataPoints = (d: MetricData, dataPoints: ReadonlyArray<DataPoint>): MetricData =>
  ({ ...d, dataPoints }) as MetricData

/**
 * The request that `verdict` (decided on `toSeriesBatch(req)`) leaves, and its number of data
 * points. For entry `i`: `pass[i] >= 1` keeps the data point; otherwise `strip[i] === 1` keeps it
 * with `rule[i].stripLabels` removed from its attributes, and anything else drops it. Metrics,
 * scopes and resources left without data points are removed; nothing is added. When nothing is
 * dropped or changed, `request` is `req` itself. Entries past the end of the verdict are kept.
 */
export const applyVerdict = (
  req: ExportMetricsServiceRequest,
  verdict: BatchVerdict,
): { readonly request: ExportMetricsServiceRequest; readonly datapoints: number } => {
  const { pass, strip, rule } = verdict
  let i = 0
  let kept = 0
  let outResources: ResourceMetrics[] | undefined
  const resources = req.resourceMetrics
  for (let r = 0; r < resources.length; r++) {
    const rm = resources[r] as ResourceMetrics
    let outScopes: ScopeMetrics[] | undefined
    for (let s = 0; s < rm.scopeMetrics.length; s++) {
      const sm = rm.scopeMetrics[s] as ScopeMetrics
      let outMetrics: Metric[] | undefined
      for (let k = 0; k < sm.metrics.length; k++) {
        const m = sm.metrics[k] as Metric
        const data = m.data
        if (data === undefined) {
          outMetrics?.push(m)
          continue
        }
        const points: ReadonlyArray<DataPoint> = data.dataPoints
        let outPoints: DataPoint[] | undefined
        for (let j = 0; j < points.length; j++, i++) {
          const p = points[j] as DataPoint
          if (i >= pass.length || (pass[i] as number) >= 1) {
            outPoints?.push(p)
            kept++
            continue
          }
          if (strip[i] !== 1) {
            outPoints ??= points.slice(0, j) // dropped
            continue
          }
          kept++
          const stripLabels = rule[i]?.stripLabels ?? []
          const attributes =
            stripLabels.length === 0 ? p.attributes : stripAttributes(p.attributes, stripLabels)
          if (attributes === p.attributes) {
            outPoints?.push(p)
          } else {
            outPoints ??= points.slice(0, j)
            outPoints.push({ ...p, attributes })
          }
        }
        if (outPoints === undefined) {
          outMetrics?.push(m)
        } else {
          outMetrics ??= sm.metrics.slice(0, k)
          if (outPoints.length > 0) outMetrics.push({ ...m, data: withDataPoints(data, outPoints) })
        }
      }
      if (outMetrics === undefined) {
        outScopes?.push(sm)
      } else {
        outScopes ??= rm.scopeMetrics.slice(0, s)
        if (outMetrics.length > 0) outScopes.push({ ...sm, metrics: outMetrics })
      }
    }
    if (outScopes === undefined) {
      outResources?.push(rm)
    } else {
      outResources ??= resources.slice(0, r)
      if (outScopes.length > 0) outResources.push({ ...rm, scopeMetrics: outScopes })
    }
  }
  return {
    request: outResources === undefined ? req : { ...req, resourceMetrics: outResources },
    datapoints: kept,
  }
}
