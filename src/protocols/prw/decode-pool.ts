/**
 * Decompressing and scanning remote-write bodies, in the receiving thread or in worker threads.
 *
 * Scanning is most of what the governor does per remote-write datapoint (see docs/performance.md),
 * and it needs nothing but the body: worker threads can do it while the main thread enforces the
 * limits, which stay exact because one thread (the main one) owns every rule's state. A worker
 * sends back the scan's arrays and the body as it came; the main thread wraps them (`scanned`),
 * and decompresses the body again and decodes names and labels only for series it has not matched
 * yet, or for a verdict that changes the request.
 *
 * The cost: a request waits for a thread to take it (the body and the scan's arrays are handed over
 * between the threads, not copied). Once a request is through the limits its scan's arrays go back
 * to a decoding thread with a later body (`recycle`), to scan into again: at saturation the arrays
 * are not new memory for every body, left for the collector. `receivers.decode_threads` sets the
 * number of threads; 0 decodes in the main thread (which reuses the arrays the same way).
 *
 * @module
 */
import { availableParallelism } from "node:os"
import * as Either from "effect/Either"
import { type JobOutcome, ownBuffer, type PoolLimits, scriptNextTo, WorkerPool } from "../../threads/pool.js"
import { type RequestBounds, UNBOUNDED } from "../../wire/bounds.js"
import {
  partsOf,
  ScanArena,
  type ScannedWriteRequest,
  type ScanParts,
  scanBuffers,
  scanned,
  scanWriteRequest,
} from "./scan.js"
import { decompressBody, snappyDecodedLength } from "./snappy.js"

/**
 * Why a body was refused: 413 (too large once decompressed, or more datapoints or elements than
 * the request bounds allow), 400 (not a valid body) or 503 (its
 * decoding thread died; the sender retries).
 */
export interface DecodeFailure {
  readonly status: 400 | 413 | 503
  readonly message: string
}

/** Decompresses and scans one body (synchronously, in this thread). */
export const decodeBody = (
  body: Uint8Array,
  maxDecompressedBytes: number,
  bounds: RequestBounds = UNBOUNDED,
  /** A buffer to decompress into when long enough; the scan's `bytes` is then a view of it. */
  into?: Uint8Array,
  /** Buffers to scan into (`ScanArena`). */
  arena?: ScanArena,
): Either.Either<ScannedWriteRequest, DecodeFailure> => {
  const raw = decompressBody(body, maxDecompressedBytes, into)
  if (Either.isLeft(raw)) {
    return Either.left({ status: raw.left.kind === "too_large" ? 413 : 400, message: raw.left.message })
  }
  // The body goes with the scan, to be forwarded as it is when all of it passes; in a buffer of its
  // own, so that holding it does not hold the buffer it was read into.
  const scan = scanWriteRequest(raw.right, bounds, ownBuffer(body) === undefined ? body.slice() : body, arena)
  return Either.isLeft(scan)
    ? Either.left({ status: scan.left.kind === "too_many" ? 413 : 400, message: scan.left.message })
    : Either.right(scan.right)
}

export interface BodyDecoder {
  /** Synchronous in the receiving thread; a promise when worker threads decode. */
  readonly decode: (
    body: Uint8Array,
    maxDecompressedBytes: number,
    bounds?: RequestBounds,
  ) =>
    | Either.Either<ScannedWriteRequest, DecodeFailure>
    | Promise<Either.Either<ScannedWriteRequest, DecodeFailure>>
  /**
   * Takes back the arrays of a scan this decoder made, once nothing reads it any more (the request
   * is through the limits and buffered: what is buffered is bytes, never the scan), to scan later
   * bodies into. The scan is unusable afterwards.
   */
  readonly recycle: (scan: ScannedWriteRequest) => void
  readonly close: () => Promise<void>
}

const giveAll = (arena: ScanArena, scan: ScannedWriteRequest): void => {
  for (const b of scanBuffers(scan)) arena.give(b)
}

/**
 * The default for remote write: one thread per core, at most 4 (none on one core). Its main
 * thread is mostly waiting on sockets and decoding threads: on two cores, two decoding threads
 * relay 1.3–1.4× what one does (docs/performance.md §2).
 */
export const defaultDecodeThreads = (): number => {
  const cores = availableParallelism()
  return cores <= 1 ? 0 : Math.min(4, cores)
}

/** Decodes in the receiving thread, scanning into the arrays of earlier requests. */
export const inlineDecoder = (): BodyDecoder => {
  const arena = new ScanArena()
  return {
    decode: (body, maxDecompressedBytes, bounds = UNBOUNDED) =>
      decodeBody(body, maxDecompressedBytes, bounds, undefined, arena),
    recycle: (scan) => giveAll(arena, scan),
    close: () => Promise.resolve(),
  }
}

// --- worker threads ------------------------------------------------------------------------------

export interface DecodeJob {
  readonly body: Uint8Array
  readonly maxDecompressedBytes: number
  readonly bounds: RequestBounds
  /** Buffers of scans the main thread is done with (handed over), for this thread to scan into. */
  readonly recycled: ReadonlyArray<ArrayBuffer>
}

export type DecodeResult =
  | { readonly parts: ScanParts; readonly wire: Uint8Array }
  | { readonly failure: DecodeFailure }

/**
 * A decoding thread decompresses every body into this buffer (it keeps nothing of it once the
 * scan is made), grown as bodies need up to `SCRATCH_MAX_BYTES`; a larger body gets a buffer of
 * its own.
 */
const SCRATCH_MAX_BYTES = 8 << 20
let scratch = new Uint8Array(256 << 10)

/** The scan arrays a decoding thread got back, to scan into. */
const threadArena = new ScanArena()

/**
 * The worker's side: the scan and the body it came in go back, not the decompressed body. The
 * main thread needs that only for a series it has not matched yet or a verdict that changes the
 * request, and then decompresses the body itself (`scanned`): at saturation, with every series
 * known and passing, no decompressed body crosses between the threads or lives on the main thread.
 */
export const runJob = (job: DecodeJob): DecodeResult => {
  const length = snappyDecodedLength(job.body) ?? 0
  if (length > scratch.length && length <= SCRATCH_MAX_BYTES) {
    scratch = new Uint8Array(Math.min(SCRATCH_MAX_BYTES, Math.max(length, scratch.length * 2)))
  }
  for (const b of job.recycled) threadArena.give(b)
  const result = decodeBody(job.body, job.maxDecompressedBytes, job.bounds, scratch, threadArena)
  if (Either.isLeft(result)) return { failure: result.left }
  return { parts: partsOf(result.right), wire: result.right.wire as Uint8Array }
}

/** The buffers of a reply that move to the main thread: the body as it came (back) and the scan's arrays. */
export const replyTransfer = (result: DecodeResult): ReadonlyArray<ArrayBuffer> => {
  if ("failure" in result) return []
  const p = result.parts
  const views = [
    result.wire,
    p.fieldStarts,
    p.fieldEnds,
    p.fieldSeries,
    p.payloadStarts,
    p.payloadEnds,
    p.datapoints,
    p.hi,
    p.lo,
  ]
  const out = new Set<ArrayBuffer>()
  for (const v of views) if (v.buffer instanceof ArrayBuffer) out.add(v.buffer)
  return [...out]
}

/** Decompresses a body a decoding thread decompressed and scanned already (so it is valid). */
const decompressed = (wire: Uint8Array) => (): Uint8Array =>
  Either.getOrThrow(decompressBody(wire, Number.MAX_SAFE_INTEGER))

const fromOutcome = (
  outcome: JobOutcome<DecodeResult>,
): Either.Either<ScannedWriteRequest, DecodeFailure> => {
  if (outcome._tag === "Died") {
    return Either.left({ status: 503, message: `the remote-write decoder failed: ${outcome.reason}; retry` })
  }
  const r = outcome.reply
  return "failure" in r
    ? Either.left(r.failure)
    : Either.right(scanned(decompressed(r.wire), r.parts, r.wire))
}

/** The body's buffer, handed over to the decoding thread when it is the body's alone. */
const handOver = (body: Uint8Array, recycled: ReadonlyArray<ArrayBuffer>): ReadonlyArray<ArrayBuffer> => {
  const own = ownBuffer(body)
  return own === undefined ? recycled : [own, ...recycled]
}

/** How many recycled buffers go with each job: a scan's arrays are 8. */
const RECYCLED_PER_JOB = 8

/**
 * `threads` worker threads (`WorkerPool`: the least busy takes each body). A thread that dies
 * answers its bodies 503 (the sender retries) and is started again for the next one. After
 * `close`, bodies are decoded in the calling thread.
 */
export const workerDecoder = (
  threads: number,
  url: URL = scriptNextTo(import.meta.url, "decode-worker"),
  limits: PoolLimits = {},
): BodyDecoder => {
  const pool = new WorkerPool<DecodeJob, DecodeResult>(
    threads,
    url,
    "metrics-governor remote-write decoder",
    true,
    limits,
  )
  let closed = false
  // Buffers of scans the limits are done with, on their way back to a decoding thread.
  const returning = new ScanArena()
  return {
    decode: (body, maxDecompressedBytes, bounds = UNBOUNDED) => {
      if (closed) return decodeBody(body, maxDecompressedBytes, bounds)
      const recycled = returning.takeUpTo(RECYCLED_PER_JOB)
      return pool
        .run({ body, maxDecompressedBytes, bounds, recycled }, handOver(body, recycled))
        .then(fromOutcome)
    },
    recycle: (scan) => {
      if (!closed) giveAll(returning, scan)
    },
    close: () => {
      closed = true
      return pool.close()
    },
  }
}
