import * as fs from "node:fs"
import * as path from "node:path"
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

/** Parses a whole event log. Bad lines are reported, not fatal. Pure. */
export const parseEventLog = (text: string): { events: Array<ReloadEvent>; bad: Array<BadLine> } => {
  const events: Array<ReloadEvent> = []
  const bad: Array<BadLine> = []
  const lines = text.split("\n")
  if (lines[lines.length - 1] === "") lines.pop()
  lines.forEach((raw, i) => {
    if (raw.trim() === "") return
    const decoded = decodeEventJson(raw)
    if (Either.isRight(decoded)) events.push(decoded.right)
    else
      bad.push({
        line: i + 1,
        text: raw.length > 120 ? `${raw.slice(0, 120)}…` : raw,
        reason: i === lines.length - 1 ? "torn last line (incomplete write)" : "not a valid event",
      })
  })
  return { events, bad }
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

const attempt = <A>(file: string, f: () => A) =>
  Effect.try({
    try: f,
    catch: (e) => new EventLogError({ file, reason: e instanceof Error ? e.message : String(e) }),
  })

/**
 * The event log service. With a file, earlier runs are read first so `seq` keeps rising and a torn
 * last line is fenced off by a newline; without one, events are kept in memory only (bounded).
 */
export const make = (file: string | undefined, now: () => Date = () => new Date()) =>
  Effect.gen(function* () {
    let start = initialState
    let fd: number | undefined
    if (file !== undefined) {
      const opened = yield* attempt(file, () => {
        fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true })
        const existing = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : ""
        const handle = fs.openSync(file, "a")
        if (existing.length > 0 && !existing.endsWith("\n")) fs.writeSync(handle, "\n")
        return { existing, handle }
      })
      fd = opened.handle
      const { events, bad } = parseEventLog(opened.existing)
      for (const b of bad) yield* logError("reload event log: skipping a bad line", { file, ...b })
      for (const e of events) start = step(start, e)
      const handle = fd
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.closeSync(handle)))
    }
    const stateRef = yield* Ref.make(start)
    const recentRef = yield* Ref.make<ReadonlyArray<ReloadEvent>>([])
    const writeLine = (line: string) =>
      fd === undefined || file === undefined
        ? Effect.void
        : attempt(file, () => {
            fs.writeSync(fd as number, line)
            fs.fsyncSync(fd as number)
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
      }).pipe(Effect.uninterruptible)

    const storeSnapshot = (sha256: string, bytes: Uint8Array) =>
      file === undefined || sha256 === ""
        ? Effect.void
        : attempt(file, () => {
            const target = snapshotPath(file, sha256)
            if (fs.existsSync(target)) return
            fs.mkdirSync(snapshotDir(file), { recursive: true })
            const tmp = `${target}.tmp-${process.pid}`
            const h = fs.openSync(tmp, "w")
            try {
              fs.writeSync(h, bytes)
              fs.fsyncSync(h)
            } finally {
              fs.closeSync(h)
            }
            fs.renameSync(tmp, target)
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
