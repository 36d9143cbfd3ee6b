import * as fs from "node:fs"
import * as path from "node:path"
import { Clock, Data, Effect, Queue, Schedule, Stream } from "effect"
import { type ContentHashes, DEFAULT_CONFIG_MAX_BYTES, readAndHash } from "../config/load.js"
import { logDebug, logInfo, logWarn } from "../telemetry/log.js"
import type { ReloaderService } from "./reloader.js"
import { onSighups } from "./sighup.js"
import type { Trigger } from "./trigger.js"

/** A directory watch could not be set up or died; it is set up again after a pause. */
export class WatchError extends Data.TaggedError("WatchError")<{
  readonly dir: string
  readonly reason: string
}> {
  override get message(): string {
    return `watch ${this.dir}: ${this.reason}`
  }
}

export interface TriggerSettings {
  readonly watch: boolean
  readonly pollIntervalMs: number
  readonly triggerFile: string | undefined
  readonly debounceMs: number
  /** How often a live watch checks that its directory is still the one it watches. */
  readonly watchCheckMs?: number
  /** Pause before a dead watch is set up again. */
  readonly watchRetryMs?: number
}

/**
 * The current content hashes of both files, exactly as a reload would read them (the same
 * non-blocking, bounded read): a file the reload would refuse hashes as `MISSING_HASH`, as the reload
 * records it, so a refused file does not trigger again until it changes.
 */
export const currentHashes = (
  files: { limits: string | undefined; config: string | undefined },
  maxBytes: number = DEFAULT_CONFIG_MAX_BYTES,
): Effect.Effect<ContentHashes> =>
  Effect.map(readAndHash({ limits: files.limits, config: files.config }, maxBytes), (r) => r.hashes)

const inodeOf = (dir: string): string | undefined => {
  try {
    const s = fs.statSync(dir)
    return `${s.dev}:${s.ino}`
  } catch {
    return undefined
  }
}

/**
 * Events in one directory (names of the entries that changed). Watches the directory, not the file,
 * so an editor's rename and a ConfigMap `..data` symlink swap are both seen. Fails when the watch dies
 * or the directory is replaced, so the caller can set it up again. The events of one read of the
 * watch (a rename or a `..data` swap makes several) go on as one chunk.
 */
export const directoryEvents = (dir: string, checkMs: number): Stream.Stream<string, WatchError> =>
  // `asyncPush`: an event is a synchronous offer to the stream's mailbox (about 0.1 ms of the main
  // thread per file change; `Stream.async` ran a fiber per emission, about 0.5 ms).
  Stream.asyncPush<string, WatchError>(
    (emit) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const inode = inodeOf(dir)
          let watcher: fs.FSWatcher | undefined
          let timer: NodeJS.Timeout | undefined
          let burst: Array<string> | undefined
          const flush = () => {
            const names = burst as Array<string>
            burst = undefined
            emit.array(names)
          }
          try {
            watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
              if (burst === undefined) {
                burst = []
                setImmediate(flush)
              }
              burst.push(name ?? "")
            })
            watcher.on("error", (e) => emit.fail(new WatchError({ dir, reason: e.message })))
            timer = setInterval(() => {
              if (inodeOf(dir) !== inode)
                emit.fail(new WatchError({ dir, reason: "directory replaced or removed" }))
            }, checkMs)
            timer.unref()
          } catch (e) {
            emit.fail(new WatchError({ dir, reason: e instanceof Error ? e.message : String(e) }))
          }
          return { watcher, timer }
        }),
        ({ watcher, timer }) =>
          Effect.sync(() => {
            if (timer !== undefined) clearInterval(timer)
            watcher?.close()
          }),
      ),
    { bufferSize: "unbounded" },
  )

/** `directoryEvents`, set up again whenever it dies. Never fails. */
export const resilientEvents = (dir: string, checkMs: number, retryMs: number): Stream.Stream<string> =>
  directoryEvents(dir, checkMs).pipe(
    Stream.tapError((e) => logWarn("config watch lost, setting it up again", { dir, error: e.reason })),
    Stream.retry(Schedule.spaced(retryMs)),
    Stream.catchAll(() => Stream.empty),
  )

const changedSinceLastAttempt = (
  reloader: ReloaderService,
  files: { limits: string | undefined; config: string | undefined },
) =>
  Effect.gen(function* () {
    const now = yield* currentHashes(
      { limits: files.limits, config: files.config },
      reloader.settings.maxBytes,
    )
    const last = yield* reloader.lastAttempted
    return now.limits !== last.limits || now.config !== last.config
  })

/**
 * File-watch triggers from directory events: any entry may matter (Kubernetes swaps `..data`,
 * editors rename temporary files), so once the directories have been quiet for `debounceMs` (a
 * multi-step write has ended), `changed` (the content hashes against the last attempt's) decides.
 * The debounce applies here only: explicit triggers start a reload at once.
 */
export const watchTriggers = <R>(
  events: Stream.Stream<string, never, R>,
  debounceMs: number,
  changed: Effect.Effect<boolean>,
): Stream.Stream<"watch", never, R> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const out = yield* Queue.unbounded<"watch">()
      const wake = yield* Effect.makeLatch(false)
      // An event costs a clock read and a latch: a burst of them (a ConfigMap swap makes several)
      // is not pushed through a stream operator one by one.
      let last = 0
      let seen = 0
      let handled = 0
      yield* Effect.forkScoped(
        Stream.runForEachChunk(events, () =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            last = now
            seen++
            return wake.open
          }),
        ),
      )
      yield* Effect.forkScoped(
        Effect.forever(
          Effect.gen(function* () {
            yield* wake.await
            yield* wake.close
            if (seen === handled) return
            // Quiet for the debounce since the last event: then the content decides.
            for (;;) {
              const wait = last + debounceMs - (yield* Clock.currentTimeMillis)
              if (wait <= 0) break
              yield* Effect.sleep(wait)
            }
            handled = seen
            if (yield* changed) yield* Queue.offer(out, "watch" as const)
          }),
        ),
      )
      return Stream.fromQueue(out)
    }),
  )

/** Poll triggers: every `intervalMs`, a reload when `changed` says the content hashes differ. */
export const pollTriggers = (intervalMs: number, changed: Effect.Effect<boolean>): Stream.Stream<"poll"> =>
  Stream.fromSchedule(Schedule.spaced(intervalMs)).pipe(
    Stream.filterEffect(() => changed),
    Stream.as("poll" as const),
  )

/**
 * The file triggers as one stream of trigger names: the file watch, the poll and the touch file.
 * (SIGHUP has a path of its own, see `runTriggers`; `POST /-/reload` calls the reloader directly,
 * as it waits for its own outcome.)
 */
export const triggers = (reloader: ReloaderService, settings: TriggerSettings): Stream.Stream<Trigger> => {
  const files = { limits: reloader.settings.paths.limits, config: reloader.settings.paths.config }
  const configFiles = [files.limits, files.config].filter((f): f is string => f !== undefined)
  const checkMs = settings.watchCheckMs ?? 2_000
  const retryMs = settings.watchRetryMs ?? 1_000
  const sources: Array<Stream.Stream<Trigger>> = []

  if (settings.watch && configFiles.length > 0) {
    const dirs = [...new Set(configFiles.map((f) => path.dirname(path.resolve(f))))]
    // One directory (the usual case) needs no merge: an event passes through one stage fewer.
    const events =
      dirs.length === 1
        ? resilientEvents(dirs[0] as string, checkMs, retryMs)
        : Stream.mergeAll(
            dirs.map((d) => resilientEvents(d, checkMs, retryMs)),
            { concurrency: "unbounded" },
          )
    sources.push(
      watchTriggers(events, settings.debounceMs, changedSinceLastAttempt(reloader, files)).pipe(
        Stream.tap(() => logDebug("config file content changed", { files: configFiles })),
      ),
    )
  }

  if (settings.pollIntervalMs > 0 && configFiles.length > 0) {
    sources.push(pollTriggers(settings.pollIntervalMs, changedSinceLastAttempt(reloader, files)))
  }

  const triggerFile = settings.triggerFile
  if (triggerFile !== undefined) {
    const name = path.basename(triggerFile)
    // Only the file's metadata is looked at (its content is ignored), with an asynchronous stat:
    // a trigger file that is a FIFO or on a stalled mount never blocks the main thread.
    const stamp = Effect.promise(() =>
      fs.promises.stat(triggerFile).then(
        (s) => `${s.ino}:${s.mtimeMs}:${s.ctimeMs}`,
        () => "missing",
      ),
    )
    sources.push(
      Stream.unwrap(
        Effect.map(stamp, (initial) => {
          let last = initial
          return resilientEvents(path.dirname(path.resolve(triggerFile)), checkMs, retryMs).pipe(
            Stream.filter((n) => n === "" || n === name),
            Stream.filterEffect(() =>
              Effect.map(stamp, (now) => {
                const changed = now !== last && now !== "missing"
                last = now
                return changed
              }),
            ),
            Stream.as("touch" as const),
          )
        }),
      ),
    )
  }

  return Stream.mergeAll(sources, { concurrency: "unbounded" })
}

/** Feeds every trigger (SIGHUP and the file triggers) into the reloader until interrupted. */
export const runTriggers = (reloader: ReloaderService, settings: TriggerSettings) => {
  const path = reloader.settings.paths.limits ?? reloader.settings.paths.config ?? ""
  // SIGHUP goes to the pipeline on a path of its own, straight from the signal's callback: no
  // stream, no merge with the other sources on its way; when the pipeline is idle, it is decided
  // right in the callback (`submitNowSync`), with no fiber started on the way.
  const announce = logInfo("received SIGHUP, reloading limits config", { path })
  const onSighup = onSighups(() => reloader.submitNowSync("sighup", announce))
  const others = triggers(reloader, settings).pipe(Stream.runForEach((t) => reloader.submit(t)))
  return Effect.all([onSighup, others], { concurrency: "unbounded", discard: true })
}
