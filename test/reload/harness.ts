import * as fs from "node:fs"
import * as path from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Replayer } from "../../src/cli/replay.js"
import { sha256Hex } from "../../src/config/decode.js"
import * as Decoder from "../../src/config/decoder.js"
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
 * (in memory, or in `eventLog` when given), a fresh metrics registry, logs discarded.
 */
export const withPipeline = <A>(
  settings: ReloadSettings,
  body: (p: InProcess) => Effect.Effect<A, unknown>,
  eventLog?: string,
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
    Effect.provide(Log.layer("error", () => {})),
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
