import { Either } from "effect"
import { expect } from "vitest"
import { decodeLimits } from "../../src/config/decode.js"
import { type ArraySeriesBatch, arrayBatch, stripLabelsOf } from "../../src/limits/batch.js"
import { enforce } from "../../src/limits/enforce.js"
import { fingerprintSeries } from "../../src/limits/fingerprint.js"
import { type ConfigVersion, nextVersion } from "../../src/reload/version.js"

/** A config version made the way the reloader makes one: real YAML, decoded, compiled, reconciled. */
export const versionOf = (
  limitsYaml: string,
  options: { readonly dryRun?: boolean; readonly previous?: ConfigVersion } = {},
): ConfigVersion => {
  const decoded = decodeLimits("limits.yaml", Buffer.from(limitsYaml))
  if (Either.isLeft(decoded)) {
    expect.fail(
      `limits do not decode: ${decoded.left.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
    )
  }
  return nextVersion(options.previous, {
    limits: decoded.right,
    main: undefined,
    dryRunFlag: options.dryRun ?? false,
    trigger: "startup",
    now: 0,
  })
}

/** The key of a series in the version's match cache: its fingerprint, `[hi, lo]`. */
export const cacheKeyOf = (name: string, labels: ReadonlyArray<string>): [number, number] => {
  const fp = new Uint32Array(2)
  fingerprintSeries(name, labels, fp)
  return [fp[0] as number, fp[1] as number]
}

/** One entry of a batch: metric name, labels, datapoints. */
export type Entry = readonly [name: string, labels: Readonly<Record<string, string>>, datapoints: number]

/** The batch view of `entries`, labels flattened and sorted by key as adapters deliver them. */
export const batchOf = (entries: ReadonlyArray<Entry>): ArraySeriesBatch =>
  arrayBatch(
    entries.map(([name]) => name),
    entries.map(([, labels]) =>
      Object.keys(labels)
        .sort()
        .flatMap((k) => [k, labels[k] as string]),
    ),
    Uint32Array.from(entries.map(([, , d]) => d)),
  )

/** Runs one batch and returns the verdict as plain arrays and the counts by rule name. */
export const run = (version: ConfigVersion, nowMs: number, entries: ReadonlyArray<Entry>) => {
  const { verdict, counts } = enforce(version, nowMs, batchOf(entries))
  return {
    pass: [...verdict.pass],
    strip: [...verdict.strip],
    rule: verdict.rule.map((r) => r?.name),
    // The compiled rule rides along with shaped rules' counts (for their labels): not a count.
    counts: Object.fromEntries(counts.map(({ compiled: _, ...c }) => [c.rule, c])),
    order: counts.map((c) => c.rule),
    stripLabels: entries.map((_, i) =>
      verdict.strip[i] === 1 ? [...stripLabelsOf(verdict, i)].sort() : undefined,
    ),
  }
}

/** Counts with every field, zeros filled in. */
export const counts = (
  rule: string,
  action: string,
  c: Partial<{
    passed: number
    dropped: number
    wouldDrop: number
    cardinalityExceeded: number
    datapointsExceeded: number
  }>,
) => ({
  rule,
  action,
  passed: 0,
  dropped: 0,
  wouldDrop: 0,
  cardinalityExceeded: 0,
  datapointsExceeded: 0,
  ...c,
})

/** A series of metric `m` told apart by label `id`. */
export const s = (id: string | number, dps = 1, extra: Record<string, string> = {}): Entry => [
  "m",
  { id: String(id), ...extra },
  dps,
]
