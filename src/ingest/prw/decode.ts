/**
 * Decompressing and scanning remote-write bodies, in the receiving thread or in worker threads.
 *
 * Scanning is most of what the governor does per remote-write datapoint (see docs/performance.md),
 * and it needs nothing but the body: worker threads can do it while the main thread enforces the
 * limits, which stay exact because one thread (the main one) owns every rule's state. A worker
 * sends back the decompressed body and the scan's arrays; the main thread wraps them
 * (`scanned`) and decodes names and labels there only for series it has not matched yet.
 *
 * The cost: the body and the scan are copied between threads (about 0.2 ms per MB), and a request
 * waits for a thread to take it. `receivers.decode_threads` sets the number of threads; 0 decodes
 * in the main thread.
 *
 * @module
 */
import { availableParallelism } from "node:os"
import { Worker } from "node:worker_threads"
import { Either } from "effect"
import { partsOf, type ScannedWriteRequest, type ScanParts, scanned, scanWriteRequest } from "./scan.js"
import { decompressBody } from "./snappy.js"

/** Why a body was refused: 413 (too large once decompressed) or 400 (not a valid body). */
export interface DecodeFailure {
  readonly status: 400 | 413 | 503
  readonly message: string
}

/** Decompresses and scans one body (synchronously, in this thread). */
export const decodeBody = (
  body: Uint8Array,
  maxDecompressedBytes: number,
): Either.Either<ScannedWriteRequest, DecodeFailure> => {
  const raw = decompressBody(body, maxDecompressedBytes)
  if (Either.isLeft(raw)) {
    return Either.left({ status: raw.left.kind === "too_large" ? 413 : 400, message: raw.left.message })
  }
  return Either.mapLeft(scanWriteRequest(raw.right), (e) => ({ status: 400, message: e.message }))
}

export interface BodyDecoder {
  /** Synchronous in the receiving thread; a promise when worker threads decode. */
  readonly decode: (
    body: Uint8Array,
    maxDecompressedBytes: number,
  ) =>
    | Either.Either<ScannedWriteRequest, DecodeFailure>
    | Promise<Either.Either<ScannedWriteRequest, DecodeFailure>>
  readonly threads: number
  readonly close: () => Promise<void>
}

/** The default: one thread per core beyond the first, at most 4 (none on one core). */
export const defaultDecodeThreads = (): number => Math.max(0, Math.min(4, availableParallelism() - 1))

export const inlineDecoder: BodyDecoder = {
  decode: decodeBody,
  threads: 0,
  close: () => Promise.resolve(),
}

// --- worker threads ------------------------------------------------------------------------------

export interface DecodeJob {
  readonly id: number
  readonly body: Uint8Array
  readonly maxDecompressedBytes: number
}

export type DecodeResult =
  | { readonly id: number; readonly bytes: Uint8Array; readonly parts: ScanParts }
  | { readonly id: number; readonly failure: DecodeFailure }

/** The worker's side. */
export const runJob = (job: DecodeJob): DecodeResult => {
  const result = decodeBody(job.body, job.maxDecompressedBytes)
  if (Either.isLeft(result)) return { id: job.id, failure: result.left }
  return { id: job.id, bytes: result.right.bytes, parts: partsOf(result.right) }
}

/** The worker script next to this module (`.js` when built, `.ts` when run from source by tsx). */
export const decodeWorkerUrl = (): URL =>
  new URL(import.meta.url.endsWith(".ts") ? "./decode-worker.ts" : "./decode-worker.js", import.meta.url)

type Pending = (result: Either.Either<ScannedWriteRequest, DecodeFailure>) => void

interface Slot {
  worker: Worker | undefined
  readonly pending: Map<number, Pending>
}

/**
 * `threads` worker threads; each body goes to the thread with the fewest bodies in hand. A thread
 * that dies fails its bodies with 503 (the sender retries) and is started again for the next one.
 */
export const workerDecoder = (threads: number, url: URL = decodeWorkerUrl()): BodyDecoder => {
  const slots: Array<Slot> = Array.from({ length: threads }, () => ({
    worker: undefined,
    pending: new Map(),
  }))
  let nextId = 1
  let closed = false
  const start = (slot: Slot): Worker => {
    const w = new Worker(url, { name: "metrics-governor remote-write decoder" })
    w.on("message", (r: DecodeResult) => {
      const done = slot.pending.get(r.id)
      if (done === undefined) return
      slot.pending.delete(r.id)
      done("failure" in r ? Either.left(r.failure) : Either.right(scanned(r.bytes, r.parts)))
    })
    const fail = (reason: string) => {
      if (slot.worker === w) slot.worker = undefined
      for (const [id, done] of slot.pending) {
        slot.pending.delete(id)
        done(Either.left({ status: 503, message: `decoder thread failed (${reason}); retry` }))
      }
    }
    w.on("error", (e) => fail(e instanceof Error ? e.message : String(e)))
    w.on("exit", (code) => fail(`exited with code ${code}`))
    slot.worker = w
    return w
  }
  return {
    threads,
    decode: (body, maxDecompressedBytes) => {
      if (closed) return decodeBody(body, maxDecompressedBytes)
      let slot = slots[0] as Slot
      for (const s of slots) if (s.pending.size < slot.pending.size) slot = s
      const worker = slot.worker ?? start(slot)
      const id = nextId++
      return new Promise((resolve) => {
        slot.pending.set(id, resolve)
        const job: DecodeJob = { id, body, maxDecompressedBytes }
        worker.postMessage(job)
      })
    },
    close: async () => {
      closed = true
      await Promise.all(slots.map((s) => s.worker?.terminate()))
    },
  }
}
