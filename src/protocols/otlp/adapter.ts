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
import * as Either from "effect/Either"
import {
  type ArraySeriesBatch,
  arrayBatch,
  type BatchVerdict,
  type SeriesBatch,
  stripLabelsOf,
} from "../../limits/batch.js"
import { absorbSeparator, absorbText, beginFingerprint, finishFingerprint } from "../../limits/fingerprint.js"
import type { ShardSelection } from "../protocol.js"
import { flattenAttributes, forEachMergedLabel, mergeLabels } from "./attribute-text.js"
import { decodeOtlpProtobuf, encodeOtlpProtobuf } from "./protobuf.js"
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

/**
 * Visits every data point of `req` in wire order (the entries of `toSeriesBatch`), with its
 * metric's name and its resource's labels (flattened once per resource).
 */
const forEachDataPoint = (
  req: ExportMetricsServiceRequest,
  visit: (name: string, resourceLabels: ReadonlyArray<string>, point: DataPoint) => void,
): void => {
  for (const rm of req.resourceMetrics) {
    const resourceLabels = rm.resource === undefined ? NO_LABELS : flattenAttributes(rm.resource.attributes)
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        const points = m.data?.dataPoints
        if (points === undefined) continue
        for (const p of points) visit(m.name, resourceLabels, p)
      }
    }
  }
}

/** The limits engine's view of `req`: one entry per data point, in wire order. */
export const toSeriesBatch = (req: ExportMetricsServiceRequest): ArraySeriesBatch => {
  const names: string[] = []
  const labels: Array<ReadonlyArray<string>> = []
  forEachDataPoint(req, (name, resourceLabels, p) => {
    names.push(name)
    labels.push(mergeLabels(resourceLabels, flattenAttributes(p.attributes)))
  })
  const length = names.length
  return arrayBatch(names, labels, new Uint32Array(length).fill(1))
}

/** Per data point of `req`, in `toSeriesBatch` order: the fingerprint of its series (high, low halves). */
export interface Fingerprints {
  readonly hi: Uint32Array
  readonly lo: Uint32Array
}

/** Absorbs one label into the fingerprint being computed (as `fingerprintSeries` does). */
export const absorbLabel = (key: string, value: string): void => {
  if (value === "") return // left out of the series key, as in `fingerprintSeries`
  absorbSeparator()
  absorbText(key)
  absorbSeparator()
  absorbText(value)
}

/**
 * The fingerprint of each entry of `toSeriesBatch(req)` (`fingerprintSeries(nameOf(i), labelsOf(i))`),
 * without keeping the entries: what a decoding thread computes so that `enforce()` does not.
 */
export const fingerprintDataPoints = (req: ExportMetricsServiceRequest): Fingerprints => {
  const n = countDataPoints(req)
  const hi = new Uint32Array(n)
  const lo = new Uint32Array(n)
  const fp = new Uint32Array(2)
  let i = 0
  forEachDataPoint(req, (name, resourceLabels, p) => {
    // `fingerprintSeries(name, mergeLabels(…))`, without building the merged list.
    beginFingerprint()
    absorbText(name)
    forEachMergedLabel(resourceLabels, flattenAttributes(p.attributes), absorbLabel)
    finishFingerprint(fp)
    hi[i] = fp[0] as number
    lo[i] = fp[1] as number
    i++
  })
  return { hi, lo }
}

/**
 * A decoded OTLP request as the limits engine and the exporter see it: its `SeriesBatch` view
 * (one entry per data point), the request itself, and, when it came as binary protobuf, its bytes.
 */
export interface OtlpBatch extends SeriesBatch {
  /** The decoded request (decoded on first use when the batch was built from bytes). */
  readonly request: () => ExportMetricsServiceRequest
  /** The encoded `ExportMetricsServiceRequest` as received (protobuf), else undefined (JSON). */
  readonly bytes: Uint8Array | undefined
}

/** The batch of a decoded request (OTLP/JSON): names, labels and fingerprints computed here. */
export const objectBatch = (req: ExportMetricsServiceRequest): OtlpBatch => {
  const view = toSeriesBatch(req)
  return {
    length: view.length,
    datapoints: view.datapoints,
    nameOf: view.nameOf,
    labelsOf: view.labelsOf,
    request: () => req,
    bytes: undefined,
  }
}

/**
 * The batch of a protobuf body already checked by `decodeOtlpProtobuf` (in a decoding thread),
 * with the fingerprints computed there (`fingerprintDataPoints`). The body is decoded again in this
 * thread only when it is needed: names and labels for a series the engine has not matched yet in
 * this config version (or for `group_by`), and a verdict that changes the request.
 */
export const bytesBatch = (bytes: Uint8Array, fingerprints: Fingerprints): OtlpBatch => {
  const length = fingerprints.hi.length
  let req: ExportMetricsServiceRequest | undefined
  let view: ArraySeriesBatch | undefined
  const request = () => {
    req ??= Either.getOrThrow(decodeOtlpProtobuf(bytes))
    return req
  }
  const entries = () => {
    view ??= toSeriesBatch(request())
    return view
  }
  return {
    length,
    datapoints: new Uint32Array(length).fill(1),
    hi: fingerprints.hi,
    lo: fingerprints.lo,
    nameOf: (i) => entries().nameOf(i),
    labelsOf: (i) => entries().labelsOf(i),
    request,
    bytes,
  }
}

/**
 * What to forward after the verdict, as an encoded `ExportMetricsServiceRequest`, and its data
 * points: the body as received when it came as protobuf and every data point passes; otherwise
 * `applyVerdict` on the decoded request, encoded.
 */
export const applyBatchVerdict = (
  batch: OtlpBatch,
  full: BatchVerdict,
  only?: ShardSelection,
): { readonly request: Uint8Array; readonly datapoints: number } => {
  const verdict = only === undefined ? full : shardVerdict(full, only)
  if (batch.bytes !== undefined && only === undefined) {
    const pass = verdict.pass
    let i = 0
    while (i < batch.length && (i >= pass.length || (pass[i] as number) >= 1)) i++
    if (i === batch.length) return { request: batch.bytes, datapoints: batch.length }
  }
  const applied = applyVerdict(batch.request(), verdict)
  return { request: encodeOtlpProtobuf(applied.request), datapoints: applied.datapoints }
}

/** `verdict` with every entry of other shards dropped. */
const shardVerdict = (verdict: BatchVerdict, only: ShardSelection): BatchVerdict => {
  const pass = verdict.pass.slice()
  const strip = verdict.strip.slice()
  const { owner, index } = only
  for (let i = 0; i < pass.length; i++) {
    if (owner[i] !== index) {
      pass[i] = 0
      strip[i] = 0
    }
  }
  return { ...verdict, pass, strip }
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
  const { pass, strip } = verdict
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
          const stripLabels = stripLabelsOf(verdict, i)
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
