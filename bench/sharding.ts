/**
 * Area 8: sharded exporters and the routing tier, remote write end to end.
 *
 * - Relay over a ring: one governor (one rule, `max_cardinality: 10000`) relaying to 1, 2 and 4
 *   loopback sinks (`bench/sink.ts`, one process per endpoint, 204 without decoding), saturated by
 *   wrk (1 thread, 8 connections) with prepared snappy bodies of 1,000 series; one governor per
 *   arm, all idle but the loaded one; rounds interleaved (the arms in turn, repeated). Every sink
 *   must receive a share; the governor's per-endpoint counters give each endpoint's share.
 * - The routing tier: a router (`-mode router`, `key: rule_group`, the same limits) in front of one
 *   governor (which relays to a sink), against the same governor loaded directly: throughput at
 *   saturation, then CPU per datapoint and latency at a fixed rate both keep up with.
 *
 * `node --import tsx bench/sharding.ts` (BENCH_QUICK=1 for a short run).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import {
  type AreaResult,
  areaMain,
  cpuSeconds,
  drainSinks,
  fixedRate,
  freePort,
  httpGet,
  machineBusy,
  median,
  metricSum,
  ms,
  type Proc,
  percentile,
  QUICK,
  ratio,
  relayFixture,
  runWrk,
  samplePeak,
  selfAndWrkCpu,
  si,
  sinkCounts,
  startGovernor,
  startSink,
  stopProcess,
} from "./lib.js"
import { PRW_HEADERS, RELAY_BODIES, RELAY_CONNECTIONS, RELAY_SERIES_PER_REQUEST } from "./payloads.js"

const BODIES = RELAY_BODIES
const SERIES_PER_REQUEST = RELAY_SERIES_PER_REQUEST
const ROUNDS = QUICK ? 1 : 3
const SATURATION_S = QUICK ? 3 : 5
const FIXED_S = QUICK ? 3 : 4
const WARMUP_S = QUICK ? 1 : 2
const CONNECTIONS = RELAY_CONNECTIONS
const SINKS = 4
/** A sink counts as quiet after this long without a new request: longer than one flush interval (1 s by default). */
const QUIET_MS = 1_200

interface Server {
  readonly name: string
  readonly url: string
  readonly statsUrl: string
  readonly proc: Proc
}

interface Sink {
  readonly url: string
  readonly write: string
  readonly proc: Proc
}

/** Waits until no sink has seen a new request for `QUIET_MS` (at most 15 s); returns how long that took. */
const drain = (sinks: ReadonlyArray<Sink>): Promise<number> =>
  drainSinks(
    sinks.map((s) => s.url),
    15_000,
    QUIET_MS,
  )

/** Datapoints the governor delivered to each of `endpoints`, from its /metrics. */
const endpointSent = async (s: Server, endpoints: ReadonlyArray<string>): Promise<Array<number>> => {
  const text = (await httpGet(`${s.statsUrl}/metrics`)).body
  return endpoints.map((e) =>
    metricSum(text, "metrics_governor_export_endpoint_datapoints_sent_total", [
      'protocol="prw"',
      `endpoint="${e}"`,
    ]),
  )
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`

interface RingRun {
  readonly dps: number
  readonly okRequests: number
  readonly statusErrors: number
  readonly cpu: number
  readonly sinksCpu: number
  /** CPU of the other arms' governors (idle) during the run. */
  readonly othersCpu: number
  /** Cores the whole machine was busy during the run (every process: wrk, sinks, governors, anything else). */
  readonly busy: number
  /** Cores taken by processes this area did not start: machine busy less the governors, sinks, wrk and this process. */
  readonly otherLoad: number
  readonly peakRss: number
  /** Datapoints delivered per endpoint during the run (governor counters). */
  readonly delivered: ReadonlyArray<number>
  /** Requests each sink received during the run (the sinks' own counts). */
  readonly sinkRequests: ReadonlyArray<number>
  readonly drainMs: number
}

interface TierRun {
  readonly dps: number
  readonly okDatapoints: number
  readonly statusErrors: number
  readonly routerCpuS: number
  readonly governorCpuS: number
  readonly sinkCpuS: number
  /** Cores the whole machine was busy from the start of the run until the sink was quiet. */
  readonly busy: number
  /** Cores taken by processes this area did not start over the same span. */
  readonly otherLoad: number
  readonly durationS: number
}

const run = async (): Promise<AreaResult> => {
  const load0 = os.loadavg()[0] ?? Number.NaN
  const { dir, bodies, script, limitsFile } = relayFixture("mg-bench-shard-")
  const sinks: Array<Sink> = []
  for (let i = 0; i < SINKS; i++) {
    const s = await startSink("none")
    sinks.push({ url: s.url, write: `${s.url}/api/v1/write`, proc: s.proc })
  }

  /** A governor on a free port with the limits and `config` (when given) and `flags`. */
  const start = async (name: string, config: string | undefined, flags: ReadonlyArray<string> = []) => {
    const port = await freePort()
    const args = ["-prw-listen", `127.0.0.1:${port}`, "-limits-config", limitsFile]
    if (config !== undefined) {
      const file = path.join(dir, `${name.replace(/[^a-z0-9]+/gi, "-")}.yaml`)
      fs.writeFileSync(file, config)
      args.push("-config", file)
    }
    const g = await startGovernor(name, [...args, ...flags])
    return { name, url: `http://127.0.0.1:${port}/api/v1/write`, statsUrl: g.statsUrl, proc: g.proc }
  }
  const ringConfig = (endpoints: ReadonlyArray<string>, key: string) =>
    `exporters:\n  prw:\n    sharding:\n      key: ${key}\n      endpoints: [${endpoints.join(", ")}]\n`

  // ---------------------------------------------------------------------------------------------
  // Part 1: one governor relaying to 1, 2, 4 endpoints.
  interface Arm {
    readonly label: string
    readonly endpoints: ReadonlyArray<Sink>
    readonly server: Server
  }
  const arms: Array<Arm> = [
    {
      label: "1 endpoint (`endpoint`)",
      endpoints: sinks.slice(0, 1),
      server: await start("governor, 1 endpoint", undefined, [
        "-prw-exporter-endpoint",
        (sinks[0] as Sink).write,
      ]),
    },
  ]
  for (const n of [1, 2, 4]) {
    const eps = sinks.slice(0, n)
    arms.push({
      label: `${n} endpoint${n > 1 ? "s" : ""} (ring, \`key: series\`)`,
      endpoints: eps,
      server: await start(
        `governor, ring of ${n}`,
        ringConfig(
          eps.map((s) => s.write),
          "series",
        ),
      ),
    })
  }
  const BASE = arms[0] as Arm
  for (const a of arms) {
    await runWrk({ url: a.server.url, script, connections: CONNECTIONS, threads: 1, durationS: WARMUP_S })
    await drain(sinks)
  }
  const ring: Record<string, Array<RingRun>> = Object.fromEntries(arms.map((a) => [a.label, []]))
  for (let round = 0; round < ROUNDS; round++) {
    for (const a of arms) {
      const pid = a.server.proc.child.pid
      const writes = a.endpoints.map((s) => s.write)
      const sent0 = await endpointSent(a.server, writes)
      const req0 = await Promise.all(sinks.map(async (s) => (await sinkCounts(s.url)).requests))
      const cpu0 = cpuSeconds(pid)
      const sinkCpu0 = sinks.reduce((n, s) => n + cpuSeconds(s.proc.child.pid), 0)
      const others = arms.filter((o) => o !== a).map((o) => o.server.proc.child.pid)
      const othersCpu0 = others.reduce<number>((n, p) => n + cpuSeconds(p), 0)
      const busy0 = machineBusy()
      const self0 = selfAndWrkCpu()
      const stopPeak = samplePeak(pid)
      const r = await runWrk({
        url: a.server.url,
        script,
        connections: CONNECTIONS,
        threads: 1,
        durationS: SATURATION_S,
      })
      const peakRss = await stopPeak()
      const cpu = (cpuSeconds(pid) - cpu0) / r.durationS
      const sinksCpu = (sinks.reduce((n, s) => n + cpuSeconds(s.proc.child.pid), 0) - sinkCpu0) / r.durationS
      const othersCpu = (others.reduce<number>((n, p) => n + cpuSeconds(p), 0) - othersCpu0) / r.durationS
      const busy = (machineBusy() - busy0) / r.durationS
      const selfCpu = (selfAndWrkCpu() - self0) / r.durationS
      const drainMs = await drain(sinks)
      const sent1 = await endpointSent(a.server, writes)
      const req1 = await Promise.all(sinks.map(async (s) => (await sinkCounts(s.url)).requests))
      const row: RingRun = {
        dps: r.okPerS * SERIES_PER_REQUEST,
        okRequests: r.requests - r.statusErrors,
        statusErrors: r.statusErrors,
        cpu,
        sinksCpu,
        othersCpu,
        busy,
        otherLoad: Math.max(0, busy - cpu - sinksCpu - othersCpu - selfCpu),
        peakRss,
        delivered: sent1.map((x, i) => x - (sent0[i] ?? 0)),
        sinkRequests: req1.map((x, i) => x - (req0[i] ?? 0)),
        drainMs,
      }
      ring[a.label]?.push(row)
      console.error(
        `sharding ${a.label}: ${si(row.dps)} dp/s, cpu ${cpu.toFixed(2)}, idle governors ${othersCpu.toFixed(2)}, shares ${row.delivered.map((d) => d).join("/")}`,
      )
    }
  }
  for (const a of arms) await stopProcess(a.server.proc)
  const loadMid = os.loadavg()[0] ?? Number.NaN

  // ---------------------------------------------------------------------------------------------
  // Part 2: router → governor → sink, against governor → sink.
  const sink = sinks[0] as Sink
  const governor = await start("governor behind the router", undefined, [
    "-prw-exporter-endpoint",
    sink.write,
  ])
  const router = await start("router", ringConfig([governor.url], "rule_group"), ["-mode", "router"])
  const ALONE = "governor alone"
  const CHAIN = "router → governor"
  const paths = [
    { label: ALONE, url: governor.url },
    { label: CHAIN, url: router.url },
  ]
  for (const p of paths) {
    await runWrk({ url: p.url, script, connections: CONNECTIONS, threads: 1, durationS: WARMUP_S })
    await drain([sink])
  }
  const cpus = () => ({
    busy: machineBusy(),
    self: selfAndWrkCpu(),
    sinks: sinks.reduce((n, x) => n + cpuSeconds(x.proc.child.pid), 0),
    router: cpuSeconds(router.proc.child.pid),
    governor: cpuSeconds(governor.proc.child.pid),
    sink: cpuSeconds(sink.proc.child.pid),
  })
  const tierSat: Record<string, Array<TierRun>> = { [ALONE]: [], [CHAIN]: [] }
  let routerPeak = 0
  for (let round = 0; round < ROUNDS; round++) {
    for (const p of paths) {
      const c0 = cpus()
      const t0 = Date.now()
      const stopPeak = samplePeak(router.proc.child.pid)
      const r = await runWrk({
        url: p.url,
        script,
        connections: CONNECTIONS,
        threads: 1,
        durationS: SATURATION_S,
      })
      routerPeak = Math.max(routerPeak, await stopPeak())
      // CPU is counted until the sink is quiet: what the tiers spend to deliver what they accepted.
      await drain([sink])
      const c1 = cpus()
      const okDatapoints = (r.requests - r.statusErrors) * SERIES_PER_REQUEST
      tierSat[p.label]?.push({
        dps: r.okPerS * SERIES_PER_REQUEST,
        okDatapoints,
        statusErrors: r.statusErrors,
        routerCpuS: c1.router - c0.router,
        governorCpuS: c1.governor - c0.governor,
        sinkCpuS: c1.sink - c0.sink,
        busy: (c1.busy - c0.busy) / ((Date.now() - t0) / 1000),
        otherLoad:
          Math.max(
            0,
            c1.busy -
              c0.busy -
              (c1.router - c0.router) -
              (c1.governor - c0.governor) -
              (c1.sinks - c0.sinks) -
              (c1.self - c0.self),
          ) /
          ((Date.now() - t0) / 1000),
        durationS: r.durationS,
      })
      console.error(`sharding tier ${p.label}: ${si(r.okPerS * SERIES_PER_REQUEST)} dp/s`)
    }
  }
  const satMedian = (label: string, f: (r: TierRun) => number) => median((tierSat[label] ?? []).map(f))
  const aloneDps = satMedian(ALONE, (r) => r.dps)
  const chainDps = satMedian(CHAIN, (r) => r.dps)
  const chainRatios = (tierSat[CHAIN] ?? []).map(
    (c, i) => c.dps / ((tierSat[ALONE] ?? [])[i]?.dps ?? Number.NaN),
  )

  // Fixed rate: half the lower saturation rate, so both paths keep up.
  const rate = Math.max(10, Math.floor((Math.min(aloneDps, chainDps) / SERIES_PER_REQUEST) * 0.5))
  interface FixedRun {
    p50: number
    p99: number
    failed: number
    okDatapoints: number
    routerCpuS: number
    governorCpuS: number
  }
  const tierFixed: Record<string, Array<FixedRun>> = { [ALONE]: [], [CHAIN]: [] }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? paths : [...paths].reverse()
    for (const p of order) {
      const c0 = cpus()
      const r = await fixedRate({
        url: p.url,
        bodies,
        headers: PRW_HEADERS,
        ratePerS: rate,
        durationS: FIXED_S,
        connections: 16,
      })
      // CPU over the run's window only: at a steady rate the work carried over its end matches the
      // work carried into its start, and the quiet wait afterwards would add idle time.
      const c1 = cpus()
      await drain([sink])
      tierFixed[p.label]?.push({
        p50: percentile(r.latencies, 50),
        p99: percentile(r.latencies, 99),
        failed: r.failed,
        okDatapoints: r.okDatapoints,
        routerCpuS: c1.router - c0.router,
        governorCpuS: c1.governor - c0.governor,
      })
    }
  }
  const fixedMedian = (label: string, f: (r: FixedRun) => number) => median((tierFixed[label] ?? []).map(f))
  await stopProcess(router.proc)
  await stopProcess(governor.proc)
  for (const s of sinks) await stopProcess(s.proc)
  fs.rmSync(dir, { recursive: true, force: true })
  const load1 = os.loadavg()[0] ?? Number.NaN

  // ---------------------------------------------------------------------------------------------
  // Markdown
  const perM = (cpuS: number, dp: number) => (dp > 0 ? (cpuS / dp) * 1e6 : Number.NaN)
  const md: Array<string> = []
  md.push("## 8. Sharded exporters and the routing tier")
  md.push("")
  md.push(
    "Remote write end to end, as in §2: prepared snappy bodies of " +
      `${SERIES_PER_REQUEST.toLocaleString("en")} series with one sample each (${BODIES} bodies, ` +
      `${(BODIES * SERIES_PER_REQUEST).toLocaleString("en")} distinct series, under the one rule's \`max_cardinality: 10000\`: ` +
      `nothing is dropped), \`wrk -t1 -c${CONNECTIONS}\` for ${SATURATION_S} s per run, ${ROUNDS} rounds in which every arm ` +
      "runs once in turn (a ratio is taken within its round, then the median over rounds). Each endpoint is its own sink process " +
      "(`bench/sink.ts`, 204 without decoding). The governors run with their defaults (buffer, batch size 5,000, flush interval " +
      "1 s, decoding threads). **The machine has 2 cores**: wrk, the governor (main thread and its decoding thread) and every " +
      "sink share them, so the throughput of a ring measures what the governor's one main thread can do, not what the endpoints " +
      "could take.",
  )
  md.push("")
  md.push("### Relay over a ring of 1, 2 and 4 endpoints")
  md.push("")
  md.push(
    "One governor per arm (all started beforehand, only the loaded one busy): a single `exporters.prw.endpoint` (the baseline, " +
      "as in §2), and `exporters.prw.sharding` with `key: series` over 1, 2 and 4 sinks. datapoints/s = 2xx requests/s × 1,000; " +
      "**vs 1** = that run's throughput over the baseline's in the same round; CPU = CPU seconds per second of the run from " +
      "/proc (1.0 = one core), the governor's all threads, the sinks' summed, the other arms' governors (idle meanwhile) summed; " +
      "**machine busy** = cores the whole machine was busy (/proc/stat: every process, wrk and anything else running on " +
      "the machine included; at most 2.00); **other processes** = machine busy less the governors, the sinks, wrk and the " +
      "benchmark's own process: the cores taken by load this area did not start; **share per endpoint** = each endpoint's part of " +
      "the datapoints the governor delivered during the run (its `metrics_governor_export_endpoint_datapoints_sent_total`); " +
      "**sink requests** = export requests each sink itself counted (every endpoint of the ring must get some); **delivered / " +
      "accepted** = datapoints delivered (counted after the sinks were quiet) over those wrk saw accepted (slightly above 1 when " +
      "requests still in flight when wrk stopped were accepted too).",
  )
  md.push("")
  md.push(
    "| run | endpoints | datapoints/s | vs 1 | non-2xx | governor CPU | sinks CPU | idle governors CPU | machine busy | other processes | share per endpoint | sink requests | delivered / accepted |",
  )
  md.push("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
  const vsBase = (label: string, i: number) =>
    (ring[label]?.[i]?.dps ?? Number.NaN) / (ring[BASE.label]?.[i]?.dps ?? Number.NaN)
  for (let i = 0; i < ROUNDS; i++) {
    for (const a of arms) {
      const r = ring[a.label]?.[i]
      if (r === undefined) continue
      const delivered = r.delivered.reduce((n, x) => n + x, 0)
      const shares = r.delivered.map((d) => pct(d / delivered)).join(" / ")
      const reqs = r.sinkRequests.slice(0, a.endpoints.length).join(" / ")
      md.push(
        `| ${i + 1} | ${a.label} | ${si(r.dps)} | ${a === BASE ? "1.00×" : ratio(vsBase(a.label, i))} | ${r.statusErrors} | ` +
          `${r.cpu.toFixed(2)} | ${r.sinksCpu.toFixed(2)} | ${r.othersCpu.toFixed(2)} | ${r.busy.toFixed(2)} | ${r.otherLoad.toFixed(2)} | ${shares} | ${reqs} | ` +
          `${(delivered / (r.okRequests * SERIES_PER_REQUEST)).toFixed(3)} |`,
      )
    }
  }
  md.push("")
  md.push(
    "Per arm (median over rounds; peak RSS of the governor sampled every 100 ms during its saturation runs; CPU seconds per " +
      "million datapoints accepted at saturation):",
  )
  md.push("")
  md.push(
    "| endpoints | datapoints/s | vs 1 (per round) | governor CPU (cores) | governor CPU s / M datapoints | peak RSS | share per endpoint, all runs |",
  )
  md.push("|---|---:|---|---:|---:|---:|---|")
  const summary: Array<Record<string, unknown>> = []
  let everySinkFed = true
  for (const a of arms) {
    const rs = ring[a.label] ?? []
    const dps = median(rs.map((r) => r.dps))
    const ratios = rs.map((_, i) => vsBase(a.label, i))
    const cpu = median(rs.map((r) => r.cpu))
    const cpuPerM = median(rs.map((r) => perM(r.cpu * SATURATION_S, r.dps * SATURATION_S)))
    const peak = Math.max(...rs.map((r) => r.peakRss))
    const totals = a.endpoints.map((_, e) => rs.reduce((n, r) => n + (r.delivered[e] ?? 0), 0))
    const all = totals.reduce((n, x) => n + x, 0)
    const shares = totals.map((t) => t / all)
    for (const r of rs)
      for (let e = 0; e < a.endpoints.length; e++) if ((r.sinkRequests[e] ?? 0) === 0) everySinkFed = false
    summary.push({
      label: a.label,
      endpoints: a.endpoints.length,
      dps,
      ratio: median(ratios),
      cpu,
      cpuPerM,
      peak,
      shares,
    })
    md.push(
      `| ${a.label} | ${si(dps)} | ${a === BASE ? "1.00×" : `${ratio(median(ratios))} (${ratios.map((x) => ratio(x)).join(", ")})`} | ` +
        `${cpu.toFixed(2)} | ${cpuPerM.toFixed(2)} | ${si(peak)}B | ${shares.map(pct).join(" / ")} |`,
    )
  }
  md.push("")
  const otherRange = (xs: ReadonlyArray<number>) =>
    `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} (median ${median(xs).toFixed(2)})`
  const four = summary[summary.length - 1] as {
    ratio: number
    dps: number
    cpu: number
    shares: Array<number>
  }
  const two = summary[summary.length - 2] as { ratio: number; cpu: number; shares: Array<number> }
  const ring1 = summary[1] as { ratio: number; cpu: number }
  const base = summary[0] as { dps: number; cpu: number }
  const more =
    two.ratio >= 1.1 && four.ratio >= 1.1
      ? "more endpoints relayed more"
      : two.ratio <= 0.9 && four.ratio <= 0.9
        ? "more endpoints relayed less"
        : "more endpoints relayed about as much (within the run-to-run spread)"
  md.push(
    `**Reading.** Every endpoint received data in every run${everySinkFed ? "" : " **except some (see sink requests)**"}. With ` +
      `\`key: series\` and 160 virtual nodes per endpoint the ${(BODIES * SERIES_PER_REQUEST).toLocaleString("en")} series split ` +
      `${two.shares.map(pct).join(" / ")} over 2 endpoints and ${four.shares.map(pct).join(" / ")} over 4: the split is fixed by ` +
      `the series and the endpoints' URLs (the same in every run above). Against the plain endpoint (${si(base.dps)} datapoints/s at ${base.cpu.toFixed(2)} ` +
      `cores), a ring of one endpoint (configured as sharding, forwarding each request whole as the plain endpoint does: the same work, in another process) relayed ` +
      `${ratio(ring1.ratio)}, 2 endpoints ${ratio(two.ratio)} and 4 endpoints ${ratio(four.ratio)} at ${two.cpu.toFixed(2)} and ` +
      `${four.cpu.toFixed(2)} cores: ${more}. A ring spreads the downstream's load; upstream, one governor still decodes, ` +
      "enforces and routes every request on its one main thread, and rebuilds and compresses one request per endpoint. " +
      "With 4 endpoints the 4 sink processes, the governor and wrk share the 2 cores (the sinks' CPU column is what they took); " +
      "with the endpoints on other machines only the governor's part remains. " +
      `Load average (1 min) ${load0.toFixed(2)} when this area started, ${loadMid.toFixed(2)} after these rounds; processes ` +
      `this area did not start took ${otherRange(
        Object.values(ring)
          .flat()
          .map((r) => r.otherLoad),
      )} cores during the runs: ` +
      "the machine is shared, and the per-round ratios show how far a round can move.",
  )
  md.push("")

  md.push("### The routing tier: router → governor against the governor alone")
  md.push("")
  md.push(
    "A router (`-mode router`, `exporters.prw.sharding` with `key: rule_group` and one endpoint, the same limits file: it " +
      "matches every series against the rules but enforces nothing) in front of one governor (enforcing, relaying to a sink with " +
      "`exporters.prw.endpoint`), against the same governor process loaded directly. At saturation, ratios within a round; " +
      "CPU seconds are counted from the start of a run until the sink is quiet (what each tier spent to deliver what it " +
      `accepted) and divided by the millions of datapoints accepted; machine busy = cores the whole machine was busy over the ` +
      "same span (/proc/stat, every process), other processes = what of it this area did not start. The router, the governor, the sink and wrk share the 2 cores.",
  )
  md.push("")
  md.push(
    "| run | path | datapoints/s | vs governor alone | non-2xx | router CPU s / M datapoints | governor CPU s / M datapoints | machine busy | other processes |",
  )
  md.push("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
  for (let i = 0; i < ROUNDS; i++) {
    for (const p of paths) {
      const r = tierSat[p.label]?.[i]
      if (r === undefined) continue
      md.push(
        `| ${i + 1} | ${p.label} | ${si(r.dps)} | ${p.label === ALONE ? "1.00×" : ratio(chainRatios[i] ?? Number.NaN)} | ${r.statusErrors} | ` +
          `${p.label === ALONE ? "—" : perM(r.routerCpuS, r.okDatapoints).toFixed(2)} | ${perM(r.governorCpuS, r.okDatapoints).toFixed(2)} | ${r.busy.toFixed(2)} | ${r.otherLoad.toFixed(2)} |`,
      )
    }
  }
  md.push("")
  const satRouterPerM = satMedian(CHAIN, (r) => perM(r.routerCpuS, r.okDatapoints))
  const satGovPerM = satMedian(ALONE, (r) => perM(r.governorCpuS, r.okDatapoints))
  const chainRatio = median(chainRatios)
  md.push(
    `**Saturation, median: the two-tier chain relays ${si(chainDps)} datapoints/s, the governor alone ${si(aloneDps)}: ` +
      `${ratio(chainRatio)}** (per round ${chainRatios.map((x) => ratio(x)).join(", ")}). The router spends ` +
      `${satRouterPerM.toFixed(2)} CPU s per million datapoints, the governor alone ${satGovPerM.toFixed(2)} ` +
      `(${ratio(satRouterPerM / satGovPerM)}` +
      `${(tierSat[CHAIN] ?? []).some((r) => r.statusErrors > 0) ? "; the router's CPU includes the requests it answered 503, its buffer full, which are not counted as accepted" : ""}), ` +
      `the governor behind it ${satMedian(CHAIN, (r) => perM(r.governorCpuS, r.okDatapoints)).toFixed(2)}; ` +
      `router peak RSS ${si(routerPeak)}B; processes this area did not start took ` +
      `${otherRange(
        Object.values(tierSat)
          .flat()
          .map((r) => r.otherLoad),
      )} cores during these runs. **The 2 cores bound the chain:** the router, the governor and wrk run at once on ` +
      "them, so the chain's throughput is set by the sum of both tiers' CPU per datapoint, not by the slower tier; with a " +
      "core or more per tier (as deployed, the tiers on different machines) it would be set by the slower one.",
  )
  md.push("")
  md.push(
    `Fixed rate (open loop, node generator of \`bench/lib.ts\`, up to 16 connections, latency from each request's due time): ` +
      `${rate} requests/s = ${si(rate * SERIES_PER_REQUEST)} datapoints/s (half the lower saturation rate), ${FIXED_S} s per ` +
      `run, ${ROUNDS} rounds (order alternating). CPU seconds of each process during the run's window per million datapoints accepted, medians over runs:`,
  )
  md.push("")
  md.push(
    "| path | p50 | p99 | failed requests | router CPU s / M datapoints | governor CPU s / M datapoints |",
  )
  md.push("|---|---:|---:|---:|---:|---:|")
  for (const p of paths) {
    md.push(
      `| ${p.label} | ${ms(fixedMedian(p.label, (r) => r.p50))} | ${ms(fixedMedian(p.label, (r) => r.p99))} | ` +
        `${(tierFixed[p.label] ?? []).reduce((n, r) => n + r.failed, 0)} | ` +
        `${p.label === ALONE ? "—" : fixedMedian(p.label, (r) => perM(r.routerCpuS, r.okDatapoints)).toFixed(2)} | ` +
        `${fixedMedian(p.label, (r) => perM(r.governorCpuS, r.okDatapoints)).toFixed(2)} |`,
    )
  }
  md.push("")
  const fixedRouterPerM = fixedMedian(CHAIN, (r) => perM(r.routerCpuS, r.okDatapoints))
  const fixedGovPerM = fixedMedian(ALONE, (r) => perM(r.governorCpuS, r.okDatapoints))
  const fixedGovBehind = fixedMedian(CHAIN, (r) => perM(r.governorCpuS, r.okDatapoints))
  md.push(
    `At the fixed rate the router costs ${fixedRouterPerM.toFixed(2)} CPU s per million datapoints against the governor's ` +
      `${fixedGovPerM.toFixed(2)} when loaded directly (${ratio(fixedRouterPerM / fixedGovPerM)}); behind the router the ` +
      `governor spends ${fixedGovBehind.toFixed(2)} (its requests are then the router's export batches, up to 5,000 series ` +
      "each, instead of wrk's 1,000-series requests), so the chain costs " +
      `${ratio((fixedRouterPerM + fixedGovBehind) / fixedGovPerM)} the CPU of one tier per datapoint. ` +
      "The latencies are the client's: the router answers once a request is matched and buffered; delivery to the sink then " +
      "also waits in the router's buffer and the governor's (up to a flush interval each, 1 s by default, unless a batch fills " +
      "first). At a fixed rate, CPU per datapoint is higher than at saturation for both: the per-second costs (timers, " +
      "garbage collection, thread hand-offs) are spread over fewer datapoints. " +
      `Load average (1 min) ${load1.toFixed(2)} at the end of this area.`,
  )
  md.push("")

  const fedText = summary
    .filter((s) => (s.endpoints as number) > 1)
    .map((s) => `${s.endpoints}: ${(s.shares as Array<number>).map(pct).join(" / ")}`)
    .join("; ")
  return {
    area: "sharding",
    markdown: md.join("\n"),
    targets: [
      {
        area: "8. sharding",
        target: "every endpoint of a ring receives a share",
        measured: `datapoints per endpoint ${fedText}`,
        met: everySinkFed && summary.every((s) => (s.shares as Array<number>).every((x) => x > 0)),
      },
    ],
    data: {
      ring: summary,
      ring4Ratio: four.ratio,
      ring2Ratio: two.ratio,
      ring1Ratio: ring1.ratio,
      chainRatio,
      chainDps,
      aloneDps,
      satRouterPerM,
      satGovPerM,
      fixedRate: rate,
      fixedRouterPerM,
      fixedGovPerM,
      fixedGovBehind,
      routerPeakRss: routerPeak,
    },
  }
}

areaMain(import.meta.url, run)
