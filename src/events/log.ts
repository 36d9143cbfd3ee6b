import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import { Context, Data, Deferred, Effect, Either, Layer, Queue } from "effect"
import { logError } from "../telemetry/log.js"
import { yieldToEventLoop } from "../threads/slices.js"
import { decodeEventJson, type EventBody, type ReloadEvent } from "./event.js"

/** Writing the event log or a snapshot failed (disk full, permissions). Logged; never stops a reload. */
export class EventLogError extends Data.TaggedError("EventLogError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.file}: ${this.reason}`
  }
}

/** A line of the log that is not a valid event (a torn write, a hand edit). */
export interface BadLine {
  readonly line: number
  readonly text: string
  readonly reason: string
}

const badLine = (line: number, raw: string, last: boolean): BadLine => ({
  line,
  text: raw.length > 120 ? `${raw.slice(0, 120)}…` : raw,
  reason: last ? "torn last line (incomplete write)" : "not a valid event",
})

/** Parses a whole event log held in memory. Bad lines are reported, not fatal. Pure. */
export const parseEventLog = (text: string): { events: Array<ReloadEvent>; bad: Array<BadLine> } => {
  const events: Array<ReloadEvent> = []
  const bad: Array<BadLine> = []
  const lines = text.split("\n")
  if (lines[lines.length - 1] === "") lines.pop()
  lines.forEach((raw, i) => {
    if (raw.trim() === "") return
    const decoded = decodeEventJson(raw)
    if (Either.isRight(decoded)) events.push(decoded.right)
    else bad.push(badLine(i + 1, raw, i === lines.length - 1))
  })
  return { events, bad }
}

/** What `scanEventLog` hands each line to. Either may return a promise: the scan waits for it. */
export interface EventLogVisitor {
  readonly event: (event: ReloadEvent) => void | Promise<void>
  readonly bad: (bad: BadLine) => void | Promise<void>
}

/** The path names something other than a regular file: `undefined` when it is one (or is absent). */
export const notRegularFile = async (file: string): Promise<string | undefined> => {
  const st = await fs.promises.stat(file).catch(() => undefined)
  if (st === undefined || st.isFile()) return undefined
  return st.isDirectory() ? "a directory" : st.isFIFO() ? "a FIFO" : st.isSocket() ? "a socket" : "a device"
}

/**
 * Reads an event log line by line, as a stream, with the same verdicts as `parseEventLog`: memory
 * stays bounded by the longest line, whatever the log's length. A bad line is reported as torn
 * when it is the last line of the file. Rejects when the file cannot be read.
 */
export const scanEventLog = async (file: string, visit: EventLogVisitor): Promise<void> => {
  const kind = await notRegularFile(file)
  if (kind !== undefined) throw new Error(`not a regular file (${kind})`)
  const input = fs.createReadStream(file, { encoding: "utf8" })
  const lines = readline.createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })
  let lineNo = 0
  let pending: { line: number; raw: string } | undefined
  try {
    for await (const raw of lines) {
      lineNo++
      if (pending !== undefined) {
        await visit.bad(badLine(pending.line, pending.raw, false))
        pending = undefined
      }
      if (raw.trim() === "") continue
      const decoded = decodeEventJson(raw)
      if (Either.isRight(decoded)) await visit.event(decoded.right)
      else pending = { line: lineNo, raw }
    }
  } finally {
    lines.close()
    input.destroy()
  }
  if (pending !== undefined) await visit.bad(badLine(pending.line, pending.raw, true))
}

/** Where the config bytes a hash names are kept: `<log>.snapshots/<sha256>.yaml`. */
export const snapshotDir = (logPath: string): string => `${logPath}.snapshots`
export const snapshotPath = (logPath: string, sha256: string): string =>
  path.join(snapshotDir(logPath), `${sha256}.yaml`)

export interface EventLogService {
  /**
   * Numbers and stamps an event and queues it for the file; returns at once. Lines reach the file
   * in `seq` order, each batch of them with one fsync, on a fiber of their own: a reload never
   * waits for the disk.
   */
  readonly append: (body: EventBody) => Effect.Effect<ReloadEvent>
  /**
   * Queues config bytes to be kept under their hash beside the log (content-addressed, written
   * once). A snapshot queued before an event is on disk before that event's line.
   */
  readonly storeSnapshot: (sha256: string, bytes: Uint8Array) => Effect.Effect<void>
  /** Completes once everything queued so far is written and fsync'd (or its failure logged). */
  readonly flush: Effect.Effect<void>
  readonly file: string | undefined
  /** The highest `seq` in the file when it was opened: the events of earlier runs (0 without a file). */
  readonly priorSeq: number
}

export class EventLog extends Context.Tag("metrics-governor/EventLog")<EventLog, EventLogService>() {}

const reasonOf = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const attempt = <A>(file: string, f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (e) => new EventLogError({ file, reason: reasonOf(e) }),
  })

/** Whether the file's last byte is a newline (true for an empty or absent file). */
const endsWithNewline = async (file: string): Promise<boolean> => {
  const handle = await fs.promises.open(file, "r").catch(() => undefined)
  if (handle === undefined) return true
  try {
    const { size } = await handle.stat()
    if (size === 0) return true
    const last = Buffer.alloc(1)
    await handle.read(last, 0, 1, size - 1)
    return last[0] === 0x0a
  } finally {
    await handle.close()
  }
}

/**
 * The hashes a writer remembers having written: not written again. Bounded: past the bound the set
 * starts over, and a snapshot written again is written with the same bytes.
 */
const MAX_KNOWN_SNAPSHOTS = 4_096

/**
 * Writes the snapshots of one log: each as a temporary file, fsync'd, renamed to its hash's name.
 * Content-addressed, so a snapshot already on disk (an earlier run's) is replaced by the same bytes;
 * a snapshot this writer wrote is not written again, and the directory is made once (again when it
 * was removed). No step of it throws on the usual path (a `stat` of the missing file did, with its
 * stack, on every reload).
 */
class SnapshotWriter {
  private readonly known = new Set<string>()
  private dirMade = false

  constructor(private readonly file: string) {}

  async write(sha256: string, bytes: Uint8Array): Promise<void> {
    if (this.known.has(sha256)) return
    const target = snapshotPath(this.file, sha256)
    const tmp = `${target}.tmp-${process.pid}`
    const h = await this.open(tmp)
    try {
      await h.write(bytes)
      await h.sync()
    } finally {
      await h.close()
    }
    await fs.promises.rename(tmp, target)
    if (this.known.size >= MAX_KNOWN_SNAPSHOTS) this.known.clear()
    this.known.add(sha256)
  }

  /** Opens `tmp` for writing, making the directory first when it is not (or no longer) there. */
  private async open(tmp: string): Promise<fs.promises.FileHandle> {
    if (this.dirMade) {
      try {
        return await fs.promises.open(tmp, "w")
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e
      }
    }
    await fs.promises.mkdir(snapshotDir(this.file), { recursive: true })
    this.dirMade = true
    return fs.promises.open(tmp, "w")
  }
}

/** One piece of work for the writer, in the order it was queued. */
type Job =
  | { readonly _tag: "Line"; readonly line: string }
  | { readonly _tag: "Snapshot"; readonly sha256: string; readonly bytes: Uint8Array }
  | { readonly _tag: "Flush"; readonly done: Deferred.Deferred<void> }

/**
 * The event log service. With a file, earlier runs are read first (as a stream) so `seq` keeps
 * rising and a torn last line is fenced off by a newline; without one, events are only numbered.
 * The file must be a regular file. Nothing is kept in memory: the state lives in the reloader, as
 * the fold of the events it appends.
 */
export const make = (file: string | undefined, now: () => Date = () => new Date()) =>
  Effect.gen(function* () {
    let lastSeq = 0
    let priorSeq = 0
    let handle: fs.promises.FileHandle | undefined
    if (file !== undefined) {
      const bad: Array<BadLine> = []
      const opened = yield* attempt(file, async () => {
        await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true })
        const kind = await notRegularFile(file)
        if (kind !== undefined) throw new Error(`not a regular file (${kind})`)
        let seq = 0
        const exists = await fs.promises.stat(file).then(
          () => true,
          () => false,
        )
        if (exists) {
          await scanEventLog(file, {
            event: (e) => {
              seq = Math.max(seq, e.seq)
            },
            bad: (b) => {
              bad.push(b)
            },
          })
        }
        const fenced = await endsWithNewline(file)
        const h = await fs.promises.open(file, "a")
        if (!fenced) await h.write("\n")
        return { seq, handle: h }
      })
      handle = opened.handle
      lastSeq = opened.seq
      priorSeq = opened.seq
      for (const b of bad) yield* logError("reload event log: skipping a bad line", { file, ...b })
    }

    const jobs = yield* Queue.unbounded<Job>()
    if (file !== undefined && handle !== undefined) {
      const h = handle
      const writeLines = (lines: ReadonlyArray<string>) =>
        attempt(file, async () => {
          await h.write(lines.join(""))
          await h.sync()
        }).pipe(Effect.catchAll((e) => logError("reload event log write failed", { error: e.message, file })))
      const snapshots = new SnapshotWriter(file)
      const snapshot = (sha256: string, bytes: Uint8Array) =>
        attempt(file, () => snapshots.write(sha256, bytes)).pipe(
          Effect.catchAll((e) => logError("reload event log snapshot failed", { error: e.message, file })),
        )
      /**
       * Runs a batch of jobs: its snapshots first, in order, then all its lines in one write and one
       * fsync, then its flushes complete. A snapshot is on disk before the line of any event queued
       * after it (and, in one batch, before every line of it), and lines keep their order.
       */
      const runBatch = (batch: ReadonlyArray<Job>) =>
        Effect.gen(function* () {
          const lines: Array<string> = []
          const pending: Array<Deferred.Deferred<void>> = []
          for (const job of batch) {
            if (job._tag === "Line") lines.push(job.line)
            else if (job._tag === "Flush") pending.push(job.done)
            else yield* snapshot(job.sha256, job.bytes)
          }
          if (lines.length > 0) yield* writeLines(lines)
          for (const d of pending) yield* Deferred.succeed(d, undefined)
        })
      // The writer: what is queued is written in order; a batch, once begun, is finished. It lets
      // the event loop run once before it takes the batch, so the events and snapshots a reload
      // queues a step apart go out together (one write, one fsync).
      yield* Effect.forkScoped(
        Effect.forever(
          Effect.uninterruptibleMask((restore) =>
            Effect.gen(function* () {
              const head = yield* restore(Queue.take(jobs))
              yield* yieldToEventLoop
              const rest = yield* Queue.takeAll(jobs)
              yield* runBatch([head, ...rest])
            }),
          ),
        ),
      )
    }
    const flush =
      handle === undefined
        ? Effect.void
        : Effect.gen(function* () {
            const done = yield* Deferred.make<void>()
            yield* Queue.offer(jobs, { _tag: "Flush", done })
            yield* Deferred.await(done)
          })
    if (handle !== undefined) {
      const h = handle
      // Runs before the writer is stopped: what was appended (the `Stopped` event too) is written.
      yield* Effect.addFinalizer(() =>
        Effect.zipRight(
          flush,
          Effect.promise(() => h.close().catch(() => undefined)),
        ),
      )
    }

    const append = (body: EventBody) =>
      Effect.suspend(() => {
        lastSeq += 1
        const event = { seq: lastSeq, at: now().toISOString(), ...body } as ReloadEvent
        if (handle === undefined) return Effect.succeed(event)
        return Effect.as(Queue.offer(jobs, { _tag: "Line", line: `${JSON.stringify(event)}\n` }), event)
      })

    const storeSnapshot = (sha256: string, bytes: Uint8Array) =>
      handle === undefined || sha256 === ""
        ? Effect.void
        : Queue.offer(jobs, { _tag: "Snapshot", sha256, bytes }).pipe(Effect.asVoid)

    return { append, storeSnapshot, flush, file, priorSeq } satisfies EventLogService
  })

export const layer = (file: string | undefined) => Layer.scoped(EventLog, make(file))
