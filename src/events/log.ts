import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import { Context, Data, Effect, Either, Layer, Ref } from "effect"
import { logError } from "../telemetry/log.js"
import { decodeEventJson, type EventBody, type ReloadEvent } from "./event.js"
import { initialState, type ReloadState, step } from "./fold.js"

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

const MEMORY_EVENTS = 1_000

export interface EventLogService {
  /** Numbers, stamps and appends an event (fsync'd when a file is configured). */
  readonly append: (body: EventBody) => Effect.Effect<ReloadEvent>
  /** Keeps config bytes under their hash beside the log (content-addressed, written once). */
  readonly storeSnapshot: (sha256: string, bytes: Uint8Array) => Effect.Effect<void>
  /** The most recent events (bounded), oldest first. */
  readonly recent: Effect.Effect<ReadonlyArray<ReloadEvent>>
  /** The fold of every event this process appended, continuing from the file's earlier runs. */
  readonly state: Effect.Effect<ReloadState>
  readonly file: string | undefined
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
 * The event log service. With a file, earlier runs are read first (as a stream) so `seq` keeps
 * rising and a torn last line is fenced off by a newline; without one, events are kept in memory
 * only (bounded). The file must be a regular file. Every write is asynchronous: appending an event
 * or a snapshot never holds up the data path.
 */
export const make = (file: string | undefined, now: () => Date = () => new Date()) =>
  Effect.gen(function* () {
    let start = initialState
    let handle: fs.promises.FileHandle | undefined
    if (file !== undefined) {
      const bad: Array<BadLine> = []
      const opened = yield* attempt(file, async () => {
        await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true })
        const kind = await notRegularFile(file)
        if (kind !== undefined) throw new Error(`not a regular file (${kind})`)
        let folded = initialState
        const exists = await fs.promises.stat(file).then(
          () => true,
          () => false,
        )
        if (exists) {
          await scanEventLog(file, {
            event: (e) => {
              folded = step(folded, e)
            },
            bad: (b) => {
              bad.push(b)
            },
          })
        }
        const fenced = await endsWithNewline(file)
        const h = await fs.promises.open(file, "a")
        if (!fenced) await h.write("\n")
        return { folded, handle: h }
      })
      handle = opened.handle
      start = opened.folded
      for (const b of bad) yield* logError("reload event log: skipping a bad line", { file, ...b })
      const h = handle
      yield* Effect.addFinalizer(() => Effect.promise(() => h.close().catch(() => undefined)))
    }
    const stateRef = yield* Ref.make(start)
    const recentRef = yield* Ref.make<ReadonlyArray<ReloadEvent>>([])
    // One append at a time: lines are written and numbered in the order of the fold.
    const lock = yield* Effect.makeSemaphore(1)
    const writeLine = (line: string) =>
      handle === undefined || file === undefined
        ? Effect.void
        : attempt(file, async () => {
            await handle.write(line)
            await handle.sync()
          }).pipe(
            Effect.catchAll((e) => logError("reload event log write failed", { error: e.message, file })),
          )

    const append = (body: EventBody) =>
      Effect.gen(function* () {
        const state = yield* Ref.get(stateRef)
        const event = { seq: state.lastSeq + 1, at: now().toISOString(), ...body } as ReloadEvent
        yield* writeLine(`${JSON.stringify(event)}\n`)
        yield* Ref.set(stateRef, step(state, event))
        yield* Ref.update(recentRef, (r) =>
          r.length >= MEMORY_EVENTS ? [...r.slice(1), event] : [...r, event],
        )
        return event
      }).pipe(lock.withPermits(1), Effect.uninterruptible)

    const storeSnapshot = (sha256: string, bytes: Uint8Array) =>
      file === undefined || sha256 === ""
        ? Effect.void
        : attempt(file, async () => {
            const target = snapshotPath(file, sha256)
            const exists = await fs.promises.stat(target).then(
              () => true,
              () => false,
            )
            if (exists) return
            await fs.promises.mkdir(snapshotDir(file), { recursive: true })
            const tmp = `${target}.tmp-${process.pid}`
            const h = await fs.promises.open(tmp, "w")
            try {
              await h.write(bytes)
              await h.sync()
            } finally {
              await h.close()
            }
            await fs.promises.rename(tmp, target)
          }).pipe(
            Effect.catchAll((e) => logError("reload event log snapshot failed", { error: e.message, file })),
          )

    return {
      append,
      storeSnapshot,
      recent: Ref.get(recentRef),
      state: Ref.get(stateRef),
      file,
    } satisfies EventLogService
  })

export const layer = (file: string | undefined) => Layer.scoped(EventLog, make(file))
