/**
 * Area 4: memory per tracked series at 1 million series. The heap delta (V8 heap + memory outside
 * it, such as typed-array stores; after `global.gc()`) of a `SeriesSet` holding 1M series, beside a
 * `Set<string>` of the same 1M series keys (the keys retained by the set, as they would be), and a
 * `Set<string>` over keys that already exist elsewhere (its table alone). Interleaved rounds, medians.
 *
 * `node --expose-gc --import tsx bench/memory.ts` (BENCH_QUICK=1 for a short run).
 */
import { seriesKey } from "../src/limits/match.js"
import { SeriesSet } from "../src/limits/series-set.js"
import { type AreaResult, areaMain, median, QUICK, ratio } from "./lib.js"
import { benchSeries } from "./payloads.js"

const N = 1_000_000
const ROUNDS = QUICK ? 1 : 3
const TARGET = 16

const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g === undefined) throw new Error("run with node --expose-gc")
  for (let i = 0; i < 3; i++) g()
}

const used = (): number => {
  const m = process.memoryUsage()
  return m.heapUsed + m.external
}

/** The series key of series `i`: a metric name and 6 labels, about 100 characters. */
const key = (i: number): string => {
  const s = benchSeries(i, 100)
  return seriesKey(s.name, s.labels)
}

/** Bytes retained by whatever `build` returns, per series. */
const measure = (build: () => unknown): { perSeries: number; keep: unknown } => {
  gc()
  const before = used()
  const keep = build()
  gc()
  const after = used()
  return { perSeries: (after - before) / N, keep }
}

const run = async (): Promise<AreaResult> => {
  let keyChars = 0
  for (let i = 0; i < 1000; i++) keyChars += key(i * 997).length
  const results: Record<string, Array<number>> = { seriesSet: [], setOwned: [], setTable: [] }
  let tableBytes = 0
  let capacity = 0
  for (let round = 0; round < ROUNDS; round++) {
    {
      const r = measure(() => {
        const s = new SeriesSet()
        for (let i = 0; i < N; i++) s.add(key(i))
        return s
      })
      const s = r.keep as SeriesSet
      if (s.size !== N) throw new Error(`SeriesSet holds ${s.size} series, expected ${N}`)
      tableBytes = s.byteLength
      capacity = s.capacity
      results.seriesSet?.push(r.perSeries)
    }
    {
      const r = measure(() => {
        const s = new Set<string>()
        for (let i = 0; i < N; i++) s.add(key(i))
        return s
      })
      if ((r.keep as Set<string>).size !== N) throw new Error("Set size")
      results.setOwned?.push(r.perSeries)
    }
    {
      gc()
      const keys = Array.from({ length: N }, (_, i) => key(i))
      const r = measure(() => {
        const s = new Set<string>()
        for (let i = 0; i < N; i++) s.add(keys[i] as string)
        return s
      })
      if ((r.keep as Set<string>).size !== N) throw new Error("Set size")
      results.setTable?.push(r.perSeries)
      keys.length = 0
    }
  }
  const ss = median(results.seriesSet ?? [])
  const owned = median(results.setOwned ?? [])
  const table = median(results.setTable ?? [])
  const met = ss <= TARGET
  const md: Array<string> = []
  md.push("## 4. Memory per tracked series (1M series)")
  md.push("")
  md.push(
    `Heap delta (\`process.memoryUsage()\`: \`heapUsed + external\`, after \`global.gc()\` three times; \`node --expose-gc\`) of a structure ` +
      `holding ${N.toLocaleString("en")} distinct series, divided by ${N.toLocaleString("en")}. Series keys are \`seriesKey\` of a metric name ` +
      `and 6 labels (${(keyChars / 1000).toFixed(0)} characters on average). ${ROUNDS} interleaved rounds, medians.`,
  )
  md.push("")
  md.push("| structure | bytes per series | ratio to Set<string> with its keys |")
  md.push("|---|---:|---:|")
  md.push(
    `| \`SeriesSet\` (64-bit fingerprints, open addressing) | ${ss.toFixed(1)} | ${ratio(ss / owned)} |`,
  )
  md.push(
    `| \`Set<string>\` holding its keys (the keys exist only in the set) | ${owned.toFixed(1)} | 1.00× |`,
  )
  md.push(
    `| \`Set<string>\` table alone (keys held elsewhere too) | ${table.toFixed(1)} | ${ratio(table / owned)} |`,
  )
  md.push("")
  md.push(
    `The \`SeriesSet\` table at 1M series: ${capacity.toLocaleString("en")} slots, ${(tableBytes / 2 ** 20).toFixed(1)} MiB ` +
      `(${(tableBytes / N).toFixed(1)} bytes/series, load ${((N / capacity) * 100).toFixed(0)}%; the documented range is 10.7–16 bytes). ` +
      `Target ≤ 16 bytes/series: **${met ? "met" : "not met"}** (${ss.toFixed(1)} measured).`,
  )
  md.push("")
  return {
    area: "memory",
    markdown: md.join("\n"),
    targets: [
      {
        area: "4. memory",
        target: "≤ 16 bytes per tracked series at 1M series",
        measured: `${ss.toFixed(1)} bytes/series (Set<string>: ${owned.toFixed(0)}; ratio ${ratio(ss / owned)})`,
        met,
      },
    ],
    data: { seriesSet: ss, setOwned: owned, setTable: table },
  }
}

areaMain(import.meta.url, run)
