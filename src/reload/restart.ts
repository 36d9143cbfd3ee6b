import type { MainConfigSpec } from "../config/main-schema.js"

/** Keys of `config.yaml` that take effect on reload; every other key is read at start only. */
export const RELOADABLE_KEYS: ReadonlySet<string> = new Set([
  "limits.dry_run",
  "shutdown_timeout",
  "receivers.max_request_bytes",
  "receivers.max_decompressed_bytes",
  "receivers.max_datapoints_per_request",
  "receivers.max_elements_per_request",
  "receivers.decode_threads",
])

/** Sections of `config.yaml` every key of which takes effect on reload. */
export const RELOADABLE_SECTIONS: ReadonlyArray<string> = [
  "exporters.",
  "buffer.",
  "receivers.auth.",
  "receivers.tls.",
]

/** Whether the key path `key` takes effect on reload. */
export const reloads = (key: string): boolean =>
  RELOADABLE_KEYS.has(key) || RELOADABLE_SECTIONS.some((section) => key.startsWith(section))

const isRecord = (v: unknown): v is Readonly<Record<string, unknown>> =>
  typeof v === "object" && v !== null && !Array.isArray(v)

const sameValue = (a: unknown, b: unknown): boolean => a === b || JSON.stringify(a) === JSON.stringify(b)

/**
 * The key paths (`buffer.size`, `exporters.otlp.headers.x-tenant`) whose values differ between the
 * config a run started with and `now`, leaving out the keys that reload. A key added, removed or
 * changed counts; the list is sorted. Pure.
 */
export const restartOnlyChanges = (start: MainConfigSpec, now: MainConfigSpec): ReadonlyArray<string> => {
  const out: Array<string> = []
  const walk = (a: unknown, b: unknown, prefix: string): void => {
    if (isRecord(a) && isRecord(b)) {
      for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
        walk(a[key], b[key], prefix === "" ? key : `${prefix}.${key}`)
      }
      return
    }
    if (isRecord(a) || isRecord(b)) {
      // A whole section added or removed: each key in it counts.
      walk(isRecord(a) ? a : {}, isRecord(b) ? b : {}, prefix)
      return
    }
    if (!sameValue(a, b) && !reloads(prefix)) out.push(prefix)
  }
  walk(start, now, "")
  return out.sort()
}
