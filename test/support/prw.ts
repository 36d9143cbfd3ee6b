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
import type { TimeSeries, WriteRequest } from "../../src/protocols/prw/types.js"
import { type RequestBounds, UNBOUNDED } from "../../src/wire/bounds.js"

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
    return Either.right(new WriteRequestReader(bytes, bounds).writeRequest())
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
