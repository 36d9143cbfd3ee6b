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
import { parentPort, Worker } from "node:worker_threads"

/** What a job came back with. */
export type JobOutcome<R> =
  | { readonly _tag: "Done"; readonly reply: R }
  | { readonly _tag: "Died"; readonly reason: string }

interface Envelope<A> {
  readonly id: number
  readonly body: A
}

interface Slot<R> {
  worker: Worker | undefined
  readonly pending: Map<number, (outcome: JobOutcome<R>) => void>
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
  ) {
    this.slots = Array.from({ length: Math.max(1, threads) }, () => ({
      worker: undefined,
      pending: new Map(),
    }))
  }

  /** Runs `job` in the least busy thread. */
  run(job: J): Promise<JobOutcome<R>> {
    let slot = this.slots[0] as Slot<R>
    for (const s of this.slots) if (s.pending.size < slot.pending.size) slot = s
    const worker = slot.worker ?? this.start(slot)
    const id = this.nextId++
    return new Promise((resolve) => {
      slot.pending.set(id, resolve)
      const envelope: Envelope<J> = { id, body: job }
      worker.postMessage(envelope)
    })
  }

  /** Stops every thread; jobs still in hand come back `Died`. */
  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker?.terminate()))
  }

  private start(slot: Slot<R>): Worker {
    const w = new Worker(this.url, { name: this.name })
    if (!this.keepsAlive) w.unref()
    w.on("message", (reply: Envelope<R>) => {
      const done = slot.pending.get(reply.id)
      if (done === undefined) return
      slot.pending.delete(reply.id)
      done({ _tag: "Done", reply: reply.body })
    })
    const died = (reason: string) => {
      if (slot.worker === w) slot.worker = undefined
      for (const [id, done] of slot.pending) {
        slot.pending.delete(id)
        done({ _tag: "Died", reason })
      }
    }
    w.on("error", (e) => died(e instanceof Error ? e.message : String(e)))
    w.on("exit", (code) => died(`its thread exited with code ${code}`))
    slot.worker = w
    return w
  }
}

/** The worker script's side: answers each job with `handler`. */
export const serveJobs = <J, R>(handler: (job: J) => R): void => {
  parentPort?.on("message", (job: Envelope<J>) => {
    const reply: Envelope<R> = { id: job.id, body: handler(job.body) }
    parentPort?.postMessage(reply)
  })
}

/** A worker script next to the calling module: `.js` when built, `.ts` when run from source by tsx. */
export const scriptNextTo = (moduleUrl: string, name: string): URL =>
  new URL(`./${name}${moduleUrl.endsWith(".ts") ? ".ts" : ".js"}`, moduleUrl)
