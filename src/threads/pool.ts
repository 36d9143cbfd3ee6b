/**
 * Jobs run in worker threads, one reply per job: what the config decoder and the remote-write
 * decoders share.
 *
 * Each job goes to the thread with the fewest jobs in hand. A thread is started on first use; one
 * that dies (an exception, `process.exit`, running out of memory) answers every job it held with
 * `Died` and is started again for the next job. Jobs and replies are structured-clone data.
 *
 * The worker script calls `serveJobs` with its handler.
 *
 * @module
 */
import { parentPort, type ResourceLimits, Worker } from "node:worker_threads"

/** What a job came back with. */
export type JobOutcome<R> =
  | { readonly _tag: "Done"; readonly reply: R }
  | {
      readonly _tag: "Died"
      readonly reason: string
      /** True when the job outlasted `timeoutMs` and its thread was stopped for it. */
      readonly timedOut?: boolean
    }

/** Optional bounds on each thread of a pool. */
export interface PoolLimits {
  /** Heap and stack limits of each thread: a thread over them dies (`Died`), not the process. */
  readonly resourceLimits?: ResourceLimits
  /**
   * A job not answered within this many ms comes back `Died` with `timedOut`; its thread is
   * terminated (with every other job it held) and started again for the next job.
   */
  readonly timeoutMs?: number
}

interface Envelope<A> {
  readonly id: number
  readonly body: A
}

/**
 * A job in hand: the thread it was given to (a stopped thread's jobs end with it) and how its
 * promise is settled. Settling lets go of everything: a `Map`'s retired hash tables can point at
 * an entry until V8's next full collection, and must not keep the job's answer (and its buffers)
 * alive that long.
 */
class InHand<R> {
  resolve: ((outcome: JobOutcome<R>) => void) | undefined = undefined
  timer: NodeJS.Timeout | undefined = undefined
  constructor(readonly worker: Worker) {}

  settle(outcome: JobOutcome<R>): void {
    const resolve = this.resolve
    this.resolve = undefined
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    resolve?.(outcome)
  }
}

interface Slot<R> {
  worker: Worker | undefined
  /** Jobs in hand. */
  readonly pending: Map<number, InHand<R>>
}

export class WorkerPool<J, R> {
  private readonly slots: ReadonlyArray<Slot<R>>
  private nextId = 1

  /**
   * @param url The worker script (it calls `serveJobs`).
   * @param keepsAlive Whether a running thread keeps the process alive (`false`: `unref`).
   */
  constructor(
    threads: number,
    private readonly url: URL,
    private readonly name: string,
    private readonly keepsAlive: boolean,
    private readonly limits: PoolLimits = {},
  ) {
    this.slots = Array.from({ length: Math.max(1, threads) }, () => ({
      worker: undefined,
      pending: new Map(),
    }))
  }

  /**
   * Runs `job` in the least busy thread. `transfer`: buffers of the job handed over to the thread
   * rather than copied (they are unusable here afterwards).
   */
  run(job: J, transfer: ReadonlyArray<ArrayBuffer> = NO_TRANSFER): Promise<JobOutcome<R>> {
    let slot = this.slots[0] as Slot<R>
    for (const s of this.slots) if (s.pending.size < slot.pending.size) slot = s
    const worker = slot.worker ?? this.start(slot)
    const id = this.nextId++
    const entry = new InHand<R>(worker)
    slot.pending.set(id, entry)
    const timeoutMs = this.limits.timeoutMs
    if (timeoutMs !== undefined) {
      entry.timer = setTimeout(() => {
        if (slot.pending.get(id) !== entry) return
        slot.pending.delete(id)
        entry.settle({ _tag: "Died", reason: `no answer within ${timeoutMs} ms`, timedOut: true })
        // The thread may be stuck for good: stop it (its other jobs end with it); the next job
        // starts a new one.
        if (slot.worker === worker) slot.worker = undefined
        void worker.terminate()
      }, timeoutMs)
      if (!this.keepsAlive) entry.timer.unref()
    }
    return new Promise<JobOutcome<R>>((resolve) => {
      entry.resolve = resolve
      const envelope: Envelope<J> = { id, body: job }
      try {
        worker.postMessage(envelope, transfer as Array<ArrayBuffer>)
      } catch (e) {
        // A job that cannot be sent (not cloneable) is not in hand: its timer goes, and the
        // promise rejects with why.
        slot.pending.delete(id)
        entry.resolve = undefined
        entry.settle({ _tag: "Died", reason: "not sent" })
        throw e
      }
    })
  }

  /** Stops every thread; jobs still in hand come back `Died`. */
  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker?.terminate()))
  }

  private start(slot: Slot<R>): Worker {
    const w = new Worker(this.url, {
      name: this.name,
      ...(this.limits.resourceLimits === undefined ? {} : { resourceLimits: this.limits.resourceLimits }),
    })
    if (!this.keepsAlive) w.unref()
    w.on("message", (reply: Envelope<R>) => {
      const entry = slot.pending.get(reply.id)
      if (entry === undefined) return
      slot.pending.delete(reply.id)
      entry.settle({ _tag: "Done", reply: reply.body })
    })
    const died = (reason: string) => {
      if (slot.worker === w) slot.worker = undefined
      for (const [id, entry] of slot.pending) {
        if (entry.worker !== w) continue
        slot.pending.delete(id)
        entry.settle({ _tag: "Died", reason })
      }
    }
    w.on("error", (e) =>
      died(
        (e as NodeJS.ErrnoException).code === "ERR_WORKER_OUT_OF_MEMORY"
          ? "it ran out of memory (its heap limit)"
          : e instanceof Error
            ? e.message
            : String(e),
      ),
    )
    w.on("exit", (code) => died(`its thread exited with code ${code}`))
    slot.worker = w
    return w
  }
}

const NO_TRANSFER: ReadonlyArray<ArrayBuffer> = []

/**
 * The worker script's side: answers each job with `handler`. `transferOf` names the buffers of a
 * reply that are handed over to the calling thread rather than copied.
 */
export const serveJobs = <J, R>(
  handler: (job: J) => R,
  transferOf: (reply: R) => ReadonlyArray<ArrayBuffer> = () => NO_TRANSFER,
): void => {
  parentPort?.on("message", (job: Envelope<J>) => {
    const body = handler(job.body)
    const reply: Envelope<R> = { id: job.id, body }
    parentPort?.postMessage(reply, transferOf(body) as Array<ArrayBuffer>)
  })
}

/**
 * The buffer under `view` when handing it over costs nothing else: the view covers all of it (a
 * slice of a shared pool, such as a small `Buffer`'s, must be copied instead).
 */
export const ownBuffer = (view: ArrayBufferView): ArrayBuffer | undefined =>
  view.buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength
    ? view.buffer
    : undefined

/** A worker script next to the calling module: `.js` when built, `.ts` when run from source by tsx. */
export const scriptNextTo = (moduleUrl: string, name: string): URL =>
  new URL(`./${name}${moduleUrl.endsWith(".ts") ? ".ts" : ".js"}`, moduleUrl)
