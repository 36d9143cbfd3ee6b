/**
 * Area 7: cardinality tracking modes (`-cardinality-mode`). For 1M and 10M distinct series in one
 * rule: the bytes each mode's tracker holds (and per series), the count it reports against the
 * exact count, the rate at which it takes a series it never saw for a known one, and the time per
 * series added. Fingerprints are drawn from a fixed-seed generator (as the 64-bit fingerprints of
 * real series keys are spread).
 *
 * `node --import tsx bench/cardinality.ts` (BENCH_QUICK=1: 100k and 1M series).
 */
import { SeriesSet } from "../src/limits/series-set.js"
import { BloomSet, HybridSet, type SeriesTracker } from "../src/limits/tracker.js"
import { type AreaResult, areaMain, QUICK, si } from "./lib.js"

const SIZES = QUICK ? [100_000, 1_000_000] : [1_000_000, 10_000_000]
const PROBES = 200_000
const FP_RATE = 0.01
const HLL_THRESHOLD = 10_000

/** xorshift32 pairs: `(hi, lo)` with hi never 0, the same for a seed. */
const stream = (seed: number) => {
  let x = seed >>> 0 || 1
  const next = () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
  return () => {
    const hi = next() || 1
    return [hi, next()] as const
  }
}

interface Row {
  readonly mode: string
  readonly n: number
  readonly bytes: number
  readonly counted: number
  readonly fpRate: number
  readonly nsPerAdd: number
}

const measure = (mode: string, n: number, make: () => SeriesTracker): Row => {
  const t = make()
  const next = stream(n)
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) {
    const [hi, lo] = next()
    if (!t.hasHash(hi, lo)) t.addHash(hi, lo)
  }
  const ns = Number(process.hrtime.bigint() - start)
  const counted = t.size
  const bytes = t.byteLength
  // Series never added: how many are taken for known ones.
  const probe = stream(n + 7_777_777)
  let known = 0
  for (let i = 0; i < PROBES; i++) {
    const [hi, lo] = probe()
    if (t.hasHash(hi, lo)) known++
  }
  return { mode, n, bytes, counted, fpRate: known / PROBES, nsPerAdd: ns / n }
}

const main = async (): Promise<AreaResult> => {
  const rows: Array<Row> = []
  for (const n of SIZES) {
    rows.push(measure("exact", n, () => new SeriesSet()))
    rows.push(measure("bloom", n, () => BloomSet.sized(n, FP_RATE)))
    rows.push(measure("hybrid", n, () => new HybridSet(HLL_THRESHOLD)))
  }
  const md: Array<string> = []
  md.push("## 7. Cardinality tracking modes")
  md.push("")
  md.push(
    `One rule's tracker fed ${SIZES.map((n) => si(n)).join(" and ")} distinct series (fingerprints from a fixed-seed generator), ` +
      `each checked then added as \`enforce()\` does. \`bloom\` is sized for the series count at a false-positive rate of ${FP_RATE}; ` +
      `\`hybrid\` is exact for ${HLL_THRESHOLD.toLocaleString("en")} series, then a HyperLogLog (2^14 registers; with no limit set, every ` +
      `later series is counted and taken as known). "Taken as known" is measured on ${PROBES.toLocaleString("en")} series never added.`,
  )
  md.push("")
  md.push(
    "| series | mode | bytes | bytes/series | counted | error vs exact | taken as known | ns per series |",
  )
  md.push("|---:|---|---:|---:|---:|---:|---:|---:|")
  for (const r of rows) {
    const err = (r.counted - r.n) / r.n
    md.push(
      `| ${si(r.n)} | ${r.mode} | ${si(r.bytes)} | ${(r.bytes / r.n).toFixed(2)} | ${si(r.counted)} | ${(err * 100).toFixed(2)}% | ` +
        `${(r.fpRate * 100).toFixed(2)}% | ${r.nsPerAdd.toFixed(0)} |`,
    )
  }
  md.push("")
  return { area: "cardinality", markdown: md.join("\n"), targets: [], data: { rows } }
}

areaMain(import.meta.url, main)
