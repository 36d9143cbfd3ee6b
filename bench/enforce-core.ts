/**
 * Area 1: the enforcement core. Datapoints per second through `enforce()` on one core (this
 * process, one thread), for 1, 100 and 1,000 rules, with and without `group_by`, with the match
 * cache and the series sets hot (steady state: every series already matched and counted in this
 * window) and cold (a new config version: empty match cache and empty series sets, so every series
 * is matched against the rules and inserted).
 *
 * Baseline, measured in the same rounds on the same batches: a plain loop that only builds each
 * series key (`seriesKey`: name and labels joined) and adds it to a `Set<string>` (hot: the set
 * already holds every key; cold: a new set per pass).
 *
 * `node --import tsx bench/enforce-core.ts` (BENCH_QUICK=1 for a short run).
 */
import { Either } from "effect"
import { decodeLimits } from "../src/config/decode.js"
import type { ArraySeriesBatch, SeriesBatch } from "../src/limits/batch.js"
import { enforce } from "../src/limits/enforce.js"
import { fingerprintSeries } from "../src/limits/fingerprint.js"
import { seriesKey } from "../src/limits/match.js"
import { type ConfigVersion, nextVersion } from "../src/reload/version.js"
import { type AreaResult, areaMain, median, QUICK, ratio, si } from "./lib.js"
import { enforceBatches } from "./payloads.js"

const SERIES = 20_000
const BATCH = 1_000
const ROUNDS = QUICK ? 2 : 7
/** Minimum time of one measurement (one case in one round). */
const SLICE_MS = QUICK ? 60 : 150
const TARGET = 5_000_000

type Decoded = Parameters<typeof nextVersion>[1]["limits"]

const limitsYaml = (rules: number, groupBy: boolean): string => {
  const out: Array<string> = []
  for (let i = 0; i < rules; i++) {
    out.push(
      `  - name: rule-${i}\n    match:\n      metric_name: "svc${i}_.*"\n      labels: { env: "*" }\n` +
        `    max_cardinality: 1000000\n    max_datapoints_rate: 1000000000\n    action: drop\n` +
        (groupBy ? "    group_by: [service]\n" : ""),
    )
  }
  return `defaults:\n  max_cardinality: 1000000\n  action: drop\nrules:\n${out.join("")}`
}

const decode = (yaml: string): Decoded => {
  const d = decodeLimits("limits.yaml", Buffer.from(yaml))
  if (Either.isLeft(d)) throw new Error(d.left.message)
  return d.right
}

const versionOf = (limits: Decoded): ConfigVersion =>
  nextVersion(undefined, { limits, main: undefined, dryRunFlag: false, trigger: "startup", now: 0 })

/** SERIES distinct series in batches of BATCH entries, one datapoint each, 6 labels (as OTLP delivers). */
const makeBatches = (rules: number): Array<ArraySeriesBatch> => enforceBatches(rules, SERIES, BATCH)

const NOW = 1_700_000_040_000

interface Case {
  readonly name: string
  readonly rules: number
  readonly groupBy: boolean
  readonly cache: "hot" | "cold"
  /** Who computes each series' fingerprint: `enforce()` from the labels (OTLP/JSON), or the decoder (remote write, OTLP protobuf). */
  readonly fp: "enforce" | "decoder"
  /** One measurement: datapoints processed and milliseconds spent. */
  readonly measure: () => { dps: number; ms: number }
  readonly rates: Array<number>
}

/** Repeats `pass` (over all batches) until SLICE_MS has passed. */
const timed = (pass: () => number): { dps: number; ms: number } => {
  let dps = 0
  const t = performance.now()
  let elapsed = 0
  do {
    dps += pass()
    elapsed = performance.now() - t
  } while (elapsed < SLICE_MS)
  return { dps, ms: elapsed }
}

/**
 * Cold: a new version (empty match cache, empty series sets), then batches one by one until
 * SLICE_MS has passed or every batch is done; versions are made outside the timer when possible.
 */
const timedCold = (
  limits: Decoded,
  batches: ReadonlyArray<ArraySeriesBatch>,
): { dps: number; ms: number } => {
  let dps = 0
  let elapsed = 0
  while (elapsed < SLICE_MS) {
    const v = versionOf(limits)
    const t = performance.now()
    for (const batch of batches) {
      enforce(v, NOW, batch)
      dps += batch.length
      if (elapsed + (performance.now() - t) >= SLICE_MS) break
    }
    elapsed += performance.now() - t
  }
  return { dps, ms: elapsed }
}

/** The batch as remote write delivers it: each series' fingerprint computed by the decoder. */
const withFingerprints = (batch: ArraySeriesBatch): SeriesBatch => {
  const hi = new Uint32Array(batch.length)
  const lo = new Uint32Array(batch.length)
  const fp = new Uint32Array(2)
  for (let i = 0; i < batch.length; i++) {
    fingerprintSeries(batch.names[i] as string, batch.labels[i] as ReadonlyArray<string>, fp)
    hi[i] = fp[0] as number
    lo[i] = fp[1] as number
  }
  return { ...batch, hi, lo }
}

const run = async (): Promise<AreaResult> => {
  const cases: Array<Case> = []
  const baselines: Record<string, Case> = {}
  const batchesByRules = new Map<number, Array<ArraySeriesBatch>>()
  for (const rules of [1, 100, 1_000]) {
    const batches = makeBatches(rules)
    batchesByRules.set(rules, batches)
    for (const groupBy of [false, true]) {
      const limits = decode(limitsYaml(rules, groupBy))
      const hot = versionOf(limits)
      for (const b of batches) enforce(hot, NOW, b) // warm: match cache and series sets full
      const label = `${rules} rule${rules === 1 ? "" : "s"}${groupBy ? ", group_by [service]" : ""}`
      const fpBatches = batches.map(withFingerprints)
      cases.push({
        name: `${label}, fingerprints from the decoder`,
        rules,
        groupBy,
        cache: "hot",
        fp: "decoder",
        rates: [],
        measure: () =>
          timed(() => {
            for (const b of fpBatches) enforce(hot, NOW, b)
            return SERIES
          }),
      })
      cases.push({
        name: label,
        rules,
        groupBy,
        cache: "hot",
        fp: "enforce",
        rates: [],
        measure: () =>
          timed(() => {
            for (const b of batches) enforce(hot, NOW, b)
            return SERIES
          }),
      })
      cases.push({
        name: label,
        rules,
        groupBy,
        cache: "cold",
        fp: "enforce",
        rates: [],
        measure: () => timedCold(limits, batches),
      })
    }
  }
  // The batches differ between rule counts only in their metric names; the baseline uses those of
  // 100 rules (key lengths within a few characters of the others).
  const baseBatches = batchesByRules.get(100) as Array<ArraySeriesBatch>
  const warmSet = new Set<string>()
  const keysInto = (set: Set<string>) => {
    for (const b of baseBatches) {
      const names = b.names
      const labels = b.labels
      for (let i = 0; i < b.length; i++)
        set.add(seriesKey(names[i] as string, labels[i] as ReadonlyArray<string>))
    }
    return SERIES
  }
  keysInto(warmSet)
  baselines.hot = {
    name: "baseline: seriesKey + Set<string>.add",
    rules: 0,
    groupBy: false,
    cache: "hot",
    fp: "enforce",
    rates: [],
    measure: () => timed(() => keysInto(warmSet)),
  }
  baselines.cold = {
    name: "baseline: seriesKey + Set<string>.add",
    rules: 0,
    groupBy: false,
    cache: "cold",
    fp: "enforce",
    rates: [],
    measure: () => timed(() => keysInto(new Set<string>())),
  }
  const all = [...cases, baselines.hot, baselines.cold]
  // Warm-up (JIT), then interleaved rounds: every case once per round, rotating the start.
  for (const c of all) c.measure()
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < all.length; k++) {
      const c = all[(k + round) % all.length] as Case
      const { dps, ms } = c.measure()
      c.rates.push(dps / (ms / 1000))
    }
  }

  const baseHot = median((baselines.hot as Case).rates)
  const baseCold = median((baselines.cold as Case).rates)
  const rows = cases.map((c) => {
    const rate = median(c.rates)
    const base = c.cache === "hot" ? baseHot : baseCold
    return { c, rate, vsBase: rate / base, spread: [Math.min(...c.rates), Math.max(...c.rates)] }
  })
  const md: Array<string> = []
  md.push("## 1. Enforcement core")
  md.push("")
  md.push(
    `\`enforce()\` in one thread, batches of ${BATCH.toLocaleString("en")} entries with one datapoint and 6 labels each, ` +
      `${SERIES.toLocaleString("en")} distinct series, action \`drop\` with limits that are never reached (every rule has an ` +
      "anchored regex and a label condition, as in `bench/enforce.bench.ts`; `defaults` catches the rest). " +
      "**Hot**: the version's match cache and series sets already hold every series (steady state within a window). " +
      "**Cold**: a new config version per pass (empty match cache, empty series sets: every series is matched against the rules " +
      "and inserted — the first batches after a reload or a new window with new series). " +
      `Medians of ${ROUNDS} interleaved rounds of ≥ ${SLICE_MS} ms per case; the baseline is measured in the same rounds: ` +
      "a plain loop that builds each series key (`seriesKey`: name and labels joined) and adds it to a `Set<string>` " +
      "(hot: the set already holds every key; cold: a new set per pass).",
  )
  md.push("")
  md.push(
    "| rules | group_by | cache | fingerprint | datapoints/s (median) | min–max of rounds | ratio to baseline |",
  )
  md.push("|---:|---|---|---|---:|---:|---:|")
  for (const r of rows) {
    md.push(
      `| ${r.c.rules.toLocaleString("en")} | ${r.c.groupBy ? "[service]" : "—"} | ${r.c.cache} | ${r.c.fp === "decoder" ? "from the decoder" : "in `enforce()`"} | ${si(r.rate)} | ${si(r.spread[0] as number)}–${si(r.spread[1] as number)} | ${ratio(r.vsBase)} |`,
    )
  }
  md.push(`| baseline | — | hot | — | ${si(baseHot)} | | 1.00× |`)
  md.push(`| baseline | — | cold | — | ${si(baseCold)} | | 1.00× |`)
  md.push("")
  const hotRows = rows.filter((r) => r.c.cache === "hot")
  const range = (rs: typeof rows) => {
    const rates = rs.map((r) => r.rate)
    return `${si(Math.min(...rates))}–${si(Math.max(...rates))}`
  }
  const byDecoder = hotRows.filter((r) => r.c.fp === "decoder")
  const inEnforce = hotRows.filter((r) => r.c.fp === "enforce")
  const metRows = hotRows.filter((r) => r.rate >= TARGET)
  const met = metRows.length === hotRows.length
  const metWhere = byDecoder
    .filter((r) => r.rate >= TARGET)
    .map(
      (r) =>
        `${r.c.rules.toLocaleString("en")} rule${r.c.rules === 1 ? "" : "s"}${r.c.groupBy ? " with group_by" : ""}`,
    )
  const hundred = rows.find(
    (r) => r.c.cache === "hot" && r.c.rules === 100 && !r.c.groupBy && r.c.fp === "decoder",
  )
  md.push(
    `Target ≥ 5M datapoints/s on one core on the cached (hot) path: **${met ? "met" : metRows.length > 0 ? "met in part" : "not met"}** — ` +
      `${metRows.length} of ${hotRows.length} hot rows. With fingerprints from the decoder (remote write): ${range(byDecoder)} ` +
      `datapoints/s (100 rules, no group_by: ${si(hundred?.rate ?? Number.NaN)}, ${ratio((hundred?.rate ?? Number.NaN) / TARGET)} of the target; ` +
      `at or above it: ${metWhere.length > 0 ? metWhere.join(", ") : "none"}). With fingerprints computed in \`enforce()\` (OTLP/JSON): ${range(inEnforce)}.`,
  )
  md.push("")
  return {
    area: "enforce",
    markdown: md.join("\n"),
    targets: [
      {
        area: "1. enforcement core",
        target: "≥ 5M datapoints/s on one core, cached path",
        measured:
          `remote write (fingerprints from the decoder) ${range(byDecoder)}, met for ${metWhere.length > 0 ? metWhere.join(", ") : "none"}; ` +
          `OTLP/JSON (fingerprints in enforce) ${range(inEnforce)} datapoints/s`,
        met,
      },
    ],
    data: {
      baselineHot: baseHot,
      baselineCold: baseCold,
      rows: rows.map((r) => ({
        rules: r.c.rules,
        groupBy: r.c.groupBy,
        cache: r.c.cache,
        fp: r.c.fp,
        rate: r.rate,
        vsBaseline: r.vsBase,
      })),
    },
  }
}

areaMain(import.meta.url, run)
