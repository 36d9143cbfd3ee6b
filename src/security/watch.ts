import { createHash } from "node:crypto"
import * as path from "node:path"
import { Duration, Effect, Stream } from "effect"
import { resilientEvents } from "../reload/triggers.js"
import { logError, logInfo } from "../telemetry/log.js"
import type { Instruments } from "../telemetry/metrics.js"
import { type Refreshable, readSecretFile, SecretFileError } from "./material.js"

export interface SecretWatchSettings {
  /** Quiet time after the last event in a directory before the files are re-read (a Secret swap makes several). */
  readonly debounceMs?: number
  readonly watchCheckMs?: number
  readonly watchRetryMs?: number
}

/** What the files hold now, to report a refused content once rather than at every event. */
const contentStamp = (files: ReadonlyArray<string>): string => {
  const h = createHash("sha256")
  for (const f of files) {
    const bytes = readSecretFile(f)
    h.update(bytes instanceof SecretFileError ? `missing:${f}` : bytes)
    h.update("\0")
  }
  return h.digest("hex")
}

/**
 * Re-reads every item when its files' directories change: the same resilient directory watch as the
 * config files (a Kubernetes `..data` symlink swap and an editor's rename are both seen). Material
 * that loads applies at once (logged at info); material that does not keeps the previous one, is
 * logged at error and counted in `metrics_governor_tls_reload_failures_total{file}`, once per
 * content. Runs until interrupted.
 */
export const watchSecretFiles = (
  items: ReadonlyArray<Refreshable>,
  telemetry: Instruments,
  settings: SecretWatchSettings = {},
): Effect.Effect<void> => {
  const files = items.flatMap((i) => i.files)
  if (files.length === 0) return Effect.void
  const dirs = [...new Set(files.map((f) => path.dirname(path.resolve(f))))]
  const refused = new Map<Refreshable, string>()
  const refreshAll = Effect.forEach(
    items,
    (item) =>
      Effect.suspend(() => {
        const errors = item.refresh()
        if (errors.length === 0) {
          if (refused.delete(item)) return logInfo("secret files load again", { files: item.files })
          return Effect.void
        }
        const stamp = contentStamp(item.files)
        if (refused.get(item) === stamp) return Effect.void
        refused.set(item, stamp)
        return Effect.forEach(errors, (e) =>
          Effect.zipRight(
            Effect.sync(() => telemetry.tlsReloadFailures.inc({ file: e.file })),
            logError("secret file changed but does not load; the previous material stays in force", {
              file: e.file,
              error: e.reason,
            }),
          ),
        )
      }),
    { discard: true },
  )
  const events = Stream.mergeAll(
    dirs.map((d) => resilientEvents(d, settings.watchCheckMs ?? 2_000, settings.watchRetryMs ?? 1_000)),
    { concurrency: "unbounded" },
  )
  return events.pipe(
    Stream.debounce(Duration.millis(settings.debounceMs ?? 100)),
    Stream.runForEach(() => refreshAll),
  )
}
