import * as fs from "node:fs"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect, Either, Layer } from "effect"
import { Replayer } from "../../src/cli/replay.js"
import { sha256Hex } from "../../src/config/decode.js"
import * as Decoder from "../../src/config/decoder.js"
import { decodeConfig, type FileRead, hashesOf } from "../../src/config/load.js"
import * as EventLog from "../../src/events/log.js"
import * as Reload from "../../src/reload/reloader.js"
import { Reloader, type ReloaderService, type ReloadSettings } from "../../src/reload/reloader.js"
import * as Log from "../../src/telemetry/log.js"
import { type Instruments, Telemetry } from "../../src/telemetry/metrics.js"

/** A valid limits file whose rules are named by `names`. */
export const limitsText = (names: ReadonlyArray<string>, cardinality = 10): string =>
  names.length === 0
    ? "rules: []\n"
    : `rules:\n${names.map((n) => `  - name: ${n}\n    max_cardinality: ${cardinality}\n    action: drop\n`).join("")}`

export const hash = (text: string): string => sha256Hex(Buffer.from(text))

export interface InProcess {
  readonly reloader: ReloaderService
  readonly telemetry: Instruments
  readonly events: EventLog.EventLogService
}

/**
 * Runs `body` against a real reload pipeline in this process: real files, the real event log
 * (in memory, or in `eventLog` when given), a fresh metrics registry, logs discarded unless `logLine`
 * is given.
 */
export const withPipeline = <A>(
  settings: ReloadSettings,
  body: (p: InProcess) => Effect.Effect<A, unknown>,
  eventLog?: string,
  /** Where the log lines go (level error and above); discarded when not given. */
  logLine: (line: string) => void = () => {},
): Promise<A> =>
  Effect.gen(function* () {
    const reloader = yield* Reloader
    const telemetry = yield* Telemetry
    const events = yield* EventLog.EventLog
    return yield* body({ reloader, telemetry, events })
  }).pipe(
    Effect.provide(
      Reload.layer(settings).pipe(
        Layer.provideMerge(Decoder.inline),
        Layer.provideMerge(EventLog.layer(eventLog)),
        Layer.provideMerge(Telemetry.test),
        Layer.provideMerge(NodeContext.layer),
      ),
    ),
    Effect.provide(Log.layer("error", logLine)),
    Effect.scoped,
    Effect.runPromise,
  )

/** Writes a file the way an editor that renames does, so a reader never sees half of it. */
export const writeAtomic = (file: string, text: string): void => {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`)
  fs.writeFileSync(tmp, text)
  fs.renameSync(tmp, file)
}

/** The value of a prom-client counter or gauge without labels. */
export const value = async (metric: {
  get(): Promise<{ values: Array<{ value: number }> }>
}): Promise<number> => (await metric.get()).values[0]?.value ?? 0

/** Folds an event log as `replay` does: the state it derives, and every divergence it finds. */
export const replayLog = async (log: string) => {
  const replayer = new Replayer(log)
  const divergences: Array<{ seq: number; problem: string }> = []
  for (const e of EventLog.parseEventLog(fs.readFileSync(log, "utf8")).events) {
    divergences.push(...(await replayer.step(e)))
  }
  return { state: replayer.state, divergences }
}

/** What the in-memory "files" of `memoryDecoder` hold; a reload reads them as they are when it starts. */
export interface MemoryFiles {
  limits: string
  config: string | undefined
}

const readOf = (text: string | undefined): FileRead | undefined => {
  if (text === undefined) return undefined
  const bytes = Buffer.from(text)
  return Either.right({ bytes, sha256: sha256Hex(bytes) })
}

/**
 * A decoder that reads `files` from memory, taking no time: with it, a pipeline on the test clock is
 * exact. `fault(n)` says whether read number `n` (from 0: startup) dies instead, a defect injected.
 */
export const memoryDecoder = (files: MemoryFiles, fault: (read: number) => boolean = () => false) => {
  let reads = 0
  const read = () =>
    Effect.suspend(() => {
      if (fault(reads++)) return Effect.die(new Error("injected decoder defect"))
      const bytes = { limits: readOf(files.limits), main: readOf(files.config) }
      return Effect.succeed({ read: bytes, hashes: hashesOf(bytes) })
    })
  return Layer.succeed(Decoder.ConfigDecoder, {
    read,
    decode: (paths, bytes) => Effect.succeed(decodeConfig(paths, bytes)),
    readNow: () => {
      if (fault(reads++)) throw new Error("injected decoder defect")
      const bytes = { limits: readOf(files.limits), main: readOf(files.config) }
      return { read: bytes, hashes: hashesOf(bytes) }
    },
    decodeNow: decodeConfig,
    load: (paths) =>
      Effect.map(read(), ({ read: bytes }) => ({ read: bytes, decoded: decodeConfig(paths, bytes) })),
  })
}
