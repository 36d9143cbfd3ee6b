/**
 * Decoding OTLP protobuf bodies (OTLP/HTTP `application/x-protobuf`, OTLP/gRPC messages), in the
 * receiving thread or in worker threads, as remote write does (`prw/decode-pool.ts`).
 *
 * A decoding thread decompresses the body (gzip, zstd) and computes the fingerprint of every data
 * point's series: read straight from the wire for the usual request (`scanFingerprints`: gauges and
 * sums with scalar attributes, with the decoder's own checks and bounds), otherwise by decoding it
 * with the one protobuf decoder (`decodeOtlpProtobuf`: the same checks, the same error messages,
 * the same request bounds) and `fingerprintDataPoints`. It sends back the fingerprints (and the
 * inflated body, when it inflated one). The main thread enforces the
 * limits with those fingerprints (it stays the one owner of every rule's state) and forwards the
 * body as it came when every data point passes; it decodes the body again only for names and
 * labels of series it has not matched yet, and to rebuild a request the verdict changes.
 *
 * `receivers.decode_threads` sets the number of threads (shared with remote write's setting, one
 * pool per protocol); 0 decodes in the receiving thread, with the same code.
 *
 * @module
 */
import { availableParallelism } from "node:os"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import { type JobOutcome, type PoolLimits, scriptNextTo, WorkerPool } from "../../threads/pool.js"
import { type RequestBounds, UNBOUNDED } from "../../wire/bounds.js"
import { decompressZstd } from "../../wire/zstd.js"
import { bytesBatch, type Fingerprints, fingerprintDataPoints, type OtlpBatch } from "./adapter.js"
import { OtlpDecodeError, type OtlpDecodeErrorKind } from "./errors.js"
import { decompressGzip } from "./gzip.js"
import { decodeOtlpProtobuf } from "./protobuf.js"
import { scanFingerprints } from "./scan.js"

/**
 * The default number of OTLP decoding threads: one per core beyond the first, at most 4 (none on
 * one core). OTLP's main thread has more to do per request than remote write's; on two cores a
 * second OTLP decoding thread cost throughput (445–531k against 638–707k datapoints/s with one,
 * interleaved).
 */
export const defaultDecodeThreads = (): number => Math.max(0, Math.min(4, availableParallelism() - 1))

/** A decoding thread died with the body in hand: the sender should retry (HTTP 503, gRPC UNAVAILABLE). */
export class OtlpDecoderDied extends Data.TaggedError("OtlpDecoderDied")<{ readonly reason: string }> {
  override get message(): string {
    return `the OTLP decoder failed: ${this.reason}; retry`
  }
}

/** Why a body gave no batch. */
export type OtlpDecodeFailure = OtlpDecodeError | OtlpDecoderDied

/** What decoding a body gives, as plain data (what a decoding thread sends back). */
export type DecodeResult =
  | { readonly fingerprints: Fingerprints; readonly inflated?: Uint8Array }
  | { readonly kind: OtlpDecodeErrorKind; readonly reason: string }

/** How a protobuf body is compressed: its `Content-Encoding` (deflate is inflated before, by the receiver). */
export type BodyEncoding = "identity" | "gzip" | "zstd"

/** A decompressed body, or why it does not decompress. */
const decompress = (
  job: DecodeJob,
): { readonly bytes: Uint8Array } | { readonly kind: OtlpDecodeErrorKind; readonly reason: string } => {
  if (job.encoding === "gzip") {
    const inflated = decompressGzip(job.body, job.maxDecompressedBytes)
    return Either.isLeft(inflated)
      ? { kind: inflated.left.kind, reason: inflated.left.reason }
      : { bytes: inflated.right }
  }
  if (job.encoding === "zstd") {
    const out = decompressZstd(job.body, job.maxDecompressedBytes)
    return "ok" in out
      ? { bytes: out.ok }
      : { kind: out.error.kind === "too_large" ? "too_large" : "bad_encoding", reason: out.error.reason }
  }
  return { bytes: job.body }
}

export interface DecodeJob {
  readonly body: Uint8Array
  /** The body's `Content-Encoding`. */
  readonly encoding: BodyEncoding
  readonly maxDecompressedBytes: number
  readonly bounds: RequestBounds
}

/** Decompresses (gzip, zstd) and decodes one body, in this thread. */
export const runJob = (job: DecodeJob): DecodeResult => {
  const raw = decompress(job)
  if ("kind" in raw) return raw
  const bytes = raw.bytes
  // The usual request is read straight from the wire; any other is decoded in full, which also
  // says what is wrong with one that does not decode.
  let fingerprints = scanFingerprints(bytes, job.bounds)
  if (fingerprints === undefined) {
    const decoded = decodeOtlpProtobuf(bytes, job.bounds)
    if (Either.isLeft(decoded)) return { kind: decoded.left.kind, reason: decoded.left.reason }
    fingerprints = fingerprintDataPoints(decoded.right)
  }
  return job.encoding === "identity" ? { fingerprints } : { fingerprints, inflated: bytes }
}

const toBatch = (body: Uint8Array, result: DecodeResult): Either.Either<OtlpBatch, OtlpDecodeFailure> =>
  "kind" in result
    ? Either.left(new OtlpDecodeError({ kind: result.kind, reason: result.reason }))
    : Either.right(bytesBatch(result.inflated ?? body, result.fingerprints))

export interface OtlpBodyDecoder {
  /** Synchronous in the receiving thread; a promise when worker threads decode. */
  readonly decode: (
    body: Uint8Array,
    encoding: BodyEncoding,
    maxDecompressedBytes: number,
    bounds?: RequestBounds,
  ) => Either.Either<OtlpBatch, OtlpDecodeFailure> | Promise<Either.Either<OtlpBatch, OtlpDecodeFailure>>
  readonly close: () => Promise<void>
}

/** Decodes one body synchronously, in this thread. */
export const decodeBody = (
  body: Uint8Array,
  encoding: BodyEncoding,
  maxDecompressedBytes: number,
  bounds: RequestBounds = UNBOUNDED,
): Either.Either<OtlpBatch, OtlpDecodeFailure> =>
  toBatch(body, runJob({ body, encoding, maxDecompressedBytes, bounds }))

export const inlineDecoder: OtlpBodyDecoder = {
  decode: decodeBody,
  close: () => Promise.resolve(),
}

/** Only the body's own bytes: a view into a larger buffer would send all of it to the thread. */
const ownBytes = (body: Uint8Array): Uint8Array =>
  body.byteOffset === 0 && body.byteLength === body.buffer.byteLength
    ? body
    : Uint8Array.prototype.slice.call(body)

/**
 * `threads` worker threads (`WorkerPool`: the least busy takes each body). A thread that dies
 * answers its bodies `OtlpDecoderDied` (the sender retries) and is started again for the next one.
 * After `close`, bodies are decoded in the calling thread.
 */
export const workerDecoder = (
  threads: number,
  url: URL = scriptNextTo(import.meta.url, "decode-worker"),
  limits: PoolLimits = {},
): OtlpBodyDecoder => {
  const pool = new WorkerPool<DecodeJob, DecodeResult>(
    threads,
    url,
    "metrics-governor OTLP decoder",
    true,
    limits,
  )
  let closed = false
  const settle =
    (body: Uint8Array) =>
    (outcome: JobOutcome<DecodeResult>): Either.Either<OtlpBatch, OtlpDecodeFailure> =>
      outcome._tag === "Died"
        ? Either.left(new OtlpDecoderDied({ reason: outcome.reason }))
        : toBatch(body, outcome.reply)
  return {
    decode: (body, encoding, maxDecompressedBytes, bounds = UNBOUNDED) => {
      if (closed) return decodeBody(body, encoding, maxDecompressedBytes, bounds)
      // The copy (when it is one) is also what gets buffered: the export buffer keeps no larger buffer alive.
      const own = ownBytes(body)
      return pool.run({ body: own, encoding, maxDecompressedBytes, bounds }).then(settle(own))
    },
    close: () => {
      closed = true
      return pool.close()
    },
  }
}
