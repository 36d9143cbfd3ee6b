/**
 * Throughput of the limits engine: `npx vitest bench bench/enforce.bench.ts`.
 *
 * 100 rules (an anchored regex and a label condition each), batches of 1,000 entries with one
 * datapoint and 6 labels each (as OTLP delivers them), 20,000 distinct series; the match cache is
 * warm, as it is in steady state.
 */
import { Either } from "effect"
import { bench, describe } from "vitest"
import { decodeLimits } from "../src/config/decode.js"
import type { ArraySeriesBatch } from "../src/limits/batch.js"
import { enforce } from "../src/limits/enforce.js"
import { type ConfigVersion, nextVersion } from "../src/reload/version.js"
import { enforceBatches } from "./payloads.js"

const RULES = 100
const SERIES = 20_000
const BATCH = 1_000

const limitsYaml = (action: string, extra = ""): string => {
  const rules = Array.from(
    { length: RULES },
    (_, i) =>
      `  - name: rule-${i}\n    match:\n      metric_name: "svc${i}_.*"\n      labels: { env: "*" }\n` +
      `    max_cardinality: 100000\n    max_datapoints_rate: 100000000\n    action: ${action}\n${extra}`,
  )
  return `defaults:\n  max_cardinality: 100000\n  action: drop\nrules:\n${rules.join("")}`
}

const versionOf = (yaml: string, dryRun = false): ConfigVersion => {
  const decoded = decodeLimits("limits.yaml", Buffer.from(yaml))
  if (Either.isLeft(decoded)) throw new Error(decoded.left.message)
  return nextVersion(undefined, {
    limits: decoded.right,
    main: undefined,
    dryRunFlag: dryRun,
    trigger: "startup",
    now: 0,
  })
}

/** Batches covering SERIES series: metric `svc{k}_requests_total`, 6 labels. */
const batches: Array<ArraySeriesBatch> = enforceBatches(RULES, SERIES, BATCH)

const runAll = (v: ConfigVersion, now: number) => {
  for (const batch of batches) enforce(v, now, batch)
}

const drop = versionOf(limitsYaml("drop"))
const adaptive = versionOf(limitsYaml("adaptive", "    group_by: [service]\n"))
const dry = versionOf(limitsYaml("drop"), true)
const t0 = 1_700_000_040_000
for (const v of [drop, adaptive, dry]) runAll(v, t0) // warm the match caches

describe(`enforce: ${SERIES / BATCH} batches x ${BATCH} datapoints, ${RULES} rules, cache warm`, () => {
  bench("drop", () => runAll(drop, t0 + 1))
  bench("adaptive, group_by [service]", () => runAll(adaptive, t0 + 1))
  bench("drop, dry-run", () => runAll(dry, t0 + 1))
  bench("drop, cold cache (new version per run)", () => runAll(versionOf(limitsYaml("drop")), t0 + 1))
})
