/**
 * Remote write, decoded in full: the reference the scanner (`src/protocols/prw/scan.ts`) is held
 * to, and the tests' way to read what the governor forwards.
 *
 * @module
 */
import { Either } from "effect"
import { type ArraySeriesBatch, arrayBatch } from "../../src/limits/batch.js"
import { datapointCount, seriesEntry } from "../../src/protocols/prw/adapter.js"
import { decodeError, WriteRequestReader } from "../../src/protocols/prw/codec.js"
import type { PrwDecodeError } from "../../src/protocols/prw/errors.js"
import { FieldNumber, NO_BYTES, type TimeSeries, type WriteRequest } from "../../src/protocols/prw/types.js"
import { type RequestBounds, UNBOUNDED } from "../../src/wire/bounds.js"

/** `list` with `item` appended; a list is only created for the first item. */
const append = <A>(list: Array<A> | undefined, item: A): Array<A> => {
  if (list === undefined) return [item]
  list.push(item)
  return list
}

/** The whole `WriteRequest`, read with the reader's own steps (those the scanner takes too). */
const readWriteRequest = (r: WriteRequestReader): WriteRequest => {
  const end = r.bytes.length
  const timeseries: Array<TimeSeries> = []
  let metadata: Array<Uint8Array> | undefined
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < end) {
    const start = r.pos
    const tag = r.tag(end)
    if (tag >>> 3 === FieldNumber.WriteRequest.timeseries) {
      r.expectLen(tag, start, "WriteRequest.timeseries")
      const fieldEnd = r.lengthEnd(end)
      r.element()
      const at = r.pos
      const series = r.timeSeries(fieldEnd)
      r.checkLabels(series.labels, at)
      timeseries.push(series)
    } else if (tag >>> 3 === FieldNumber.WriteRequest.metadata) {
      r.expectLen(tag, start, "WriteRequest.metadata")
      r.element()
      const fieldEnd = r.lengthEnd(end)
      metadata = append(metadata, r.bytes.subarray(r.pos, fieldEnd))
      r.pos = fieldEnd
    } else {
      r.element()
      r.skip(tag, start, end)
      unknown = append(unknown, r.bytes.subarray(start, r.pos))
    }
  }
  return { timeseries, metadata: metadata ?? NO_BYTES, unknown: unknown ?? NO_BYTES }
}

/**
 * Decodes a (decompressed) remote-write body. Total: any input gives `Right` or `Left`, never a
 * throw. Labels become strings (invalid UTF-8 is `Left`); exemplars, histograms, metadata and
 * unknown fields stay raw views into `bytes`; unknown fields inside `Label` and `Sample` are skipped.
 * Group wire types (3, 4), which prompb never uses, are `Left`.
 */
export const decodeWriteRequest = (
  bytes: Uint8Array,
  bounds: RequestBounds = UNBOUNDED,
): Either.Either<WriteRequest, PrwDecodeError> => {
  try {
    return Either.right(readWriteRequest(new WriteRequestReader(bytes, bounds)))
  } catch (e) {
    return Either.left(decodeError(e))
  }
}

/**
 * One entry per series, in request order. `names[i]` is the value of the series' first `__name__`
 * label (`""` without one); `labels[i]` holds the other labels sorted by name (UTF-16 code-unit
 * order, stable), sorted only when the sender did not already sort them.
 */
export const toSeriesBatch = (request: WriteRequest): ArraySeriesBatch => {
  const timeseries = request.timeseries
  const length = timeseries.length
  const names: Array<string> = []
  const labels: Array<ReadonlyArray<string>> = []
  const datapoints = new Uint32Array(length)
  for (let i = 0; i < length; i++) {
    const series = timeseries[i] as TimeSeries
    const entry = seriesEntry(series)
    names.push(entry.name)
    labels.push(entry.labels)
    datapoints[i] = datapointCount(series)
  }
  return arrayBatch(names, labels, datapoints)
}
