/**
 * Area 3: OTLP end to end, the cost of limits. Two governors run side by side, one with limits (one
 * rule, `max_cardinality: 10000`) and one without `-limits-config`; both export to the same
 * loopback sink (`bench/sink.ts`, 204 without decoding). Loaded one at a time, interleaved:
 *
 * - OTLP/HTTP protobuf: wrk (1 thread, 8 connections) POSTing prepared bodies of 1,000 data points;
 * - OTLP/gRPC: h2load (nghttp2's load generator, in C, as wrk is for HTTP/1.1) sending the first
 *   prepared body as a unary Export call with 8 calls in flight on one connection; the accepted rate
 *   is read from the governor's own `metrics_governor_datapoints_received_total`, since h2load sees
 *   HTTP statuses only (a gRPC status is in the trailers). The fixed-rate runs use a grpc-js client.
 *
 * `node --import tsx bench/otlp.ts` (BENCH_QUICK=1 for a short run).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as grpc from "@grpc/grpc-js"
import { RawMetricsClient } from "../test/support/grpc.js"
import {
  type AreaResult,
  areaMain,
  cpuSeconds,
  fixedRate,
  freePort,
  httpGet,
  median,
  metricSum,
  ms,
  type Proc,
  percentile,
  QUICK,
  ratio,
  runH2loadGrpc,
  runWrk,
  si,
  sleep,
  startGovernor,
  startSink,
  stopProcess,
  tempDir,
  writeWrkScript,
} from "./lib.js"
import { OTLP_HEADERS, otlpBody, RELAY_BODIES, RELAY_CONNECTIONS, RELAY_LIMITS } from "./payloads.js"

const BODIES = RELAY_BODIES
const POINTS = 1_000
const ROUNDS = QUICK ? 1 : 3
const HTTP_S = QUICK ? 3 : 6
const GRPC_S = QUICK ? 3 : 5
const FIXED_S = QUICK ? 3 : 5
const GRPC_IN_FLIGHT = 8
const CONNECTIONS = RELAY_CONNECTIONS
/** OTLP/HTTP at saturation when OTLP was decoded on the main thread and enforce() hashed every label. */
const OTLP_BEFORE_DPS = 118_000
const LIMITS = RELAY_LIMITS

type ExportFn = (req: Buffer, cb: (err: grpc.ServiceError | null, res: Buffer) => void) => void

/** Open loop: `rate` calls per second for `seconds`, latency from each call's due time. */
const grpcFixedRate = async (
  port: number,
  bodies: ReadonlyArray<Buffer>,
  rate: number,
  seconds: number,
): Promise<{ latencies: Array<number>; ok: number; failed: number }> => {
  const client = new RawMetricsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    "grpc.max_send_message_length": 64 * 1024 * 1024,
  })
  const exportCall = (client as unknown as { export: ExportFn }).export.bind(client)
  const latencies: Array<number> = []
  let ok = 0
  let failed = 0
  let outstanding = 0
  const interval = 1000 / rate
  const total = Math.floor(rate * seconds)
  const t0 = performance.now()
  await new Promise<void>((resolve) => {
    let k = 0
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - t0) / interval) + 1)
      while (k < due) {
        const at = t0 + k * interval
        const body = bodies[k % bodies.length] as Buffer
        k++
        outstanding++
        exportCall(body, (err) => {
          outstanding--
          if (err === null) {
            ok++
            latencies.push(performance.now() - at)
          } else failed++
        })
      }
      if (k >= total) resolve()
      else setTimeout(tick, Math.max(0, Math.min(5, t0 + k * interval - performance.now())))
    }
    tick()
  })
  const deadline = Date.now() + 10_000
  while (outstanding > 0 && Date.now() < deadline) await sleep(5)
  client.close()
  return { latencies, ok, failed: failed + outstanding }
}

interface Arm {
  readonly name: string
  readonly proc: Proc
  readonly httpUrl: string
  readonly grpcPort: number
  readonly statsUrl: string
}

const EXPORT_PATH = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

const otlpReceived = async (statsUrl: string): Promise<number> =>
  metricSum((await httpGet(`${statsUrl}/metrics`)).body, "metrics_governor_datapoints_received_total", [
    'protocol="otlp"',
  ])

/** gRPC saturation by h2load: accepted datapoints/s as the governor counted them. */
const grpcSaturation = async (a: Arm, message: Uint8Array, seconds: number, dir: string) => {
  const before = await otlpReceived(a.statsUrl)
  const r = await runH2loadGrpc({
    url: `http://127.0.0.1:${a.grpcPort}${EXPORT_PATH}`,
    message,
    streams: GRPC_IN_FLIGHT,
    durationS: seconds,
    dir,
  })
  const accepted = (await otlpReceived(a.statsUrl)) - before
  return {
    dps: accepted / r.durationS,
    p50: r.p50,
    p99: r.p99,
    // Calls answered without their datapoints being accepted (an HTTP error or a gRPC status).
    failed: Math.max(r.statusErrors, r.requests - Math.round(accepted / POINTS)),
    durationS: r.durationS,
  }
}

const run = async (): Promise<AreaResult> => {
  const dir = tempDir("mg-bench-otlp-")
  const bodies = Array.from({ length: BODIES }, (_, b) => otlpBody(b, POINTS))
  const script = writeWrkScript(
    dir,
    bodies.map((b) => b.body),
    OTLP_HEADERS,
  )
  const grpcBodies = bodies.map((b) => Buffer.from(b.body))
  const limitsFile = path.join(dir, "limits.yaml")
  fs.writeFileSync(limitsFile, LIMITS)
  const sink = await startSink("none")
  const arms: Array<Arm> = []
  for (const [name, extra] of [
    ["limits on", ["-limits-config", limitsFile]],
    ["limits off", []],
  ] as const) {
    const httpPort = await freePort()
    const grpcPort = await freePort()
    const g = await startGovernor(`governor (${name})`, [
      "-http-listen",
      `127.0.0.1:${httpPort}`,
      "-grpc-listen",
      `127.0.0.1:${grpcPort}`,
      "-exporter-endpoint",
      `${sink.url}/v1/metrics`,
      ...extra,
    ])
    arms.push({
      name,
      proc: g.proc,
      httpUrl: `http://127.0.0.1:${httpPort}/v1/metrics`,
      grpcPort,
      statsUrl: g.statsUrl,
    })
  }

  for (const a of arms) {
    await runWrk({ url: a.httpUrl, script, connections: CONNECTIONS, threads: 1, durationS: 2 })
    await grpcSaturation(a, grpcBodies[0] as Buffer, 1, dir)
    await sleep(1_000)
  }
  const http: Record<
    string,
    Array<{ dps: number; p50: number; p99: number; non2xx: number; cpu: number }>
  > = {}
  const grpcRes: Record<
    string,
    Array<{ dps: number; p50: number; p99: number; failed: number; cpu: number }>
  > = {}
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? arms : [...arms].reverse()
    for (const a of order) {
      const c0 = cpuSeconds(a.proc.child.pid)
      const r = await runWrk({
        url: a.httpUrl,
        script,
        connections: CONNECTIONS,
        threads: 1,
        durationS: HTTP_S,
      })
      const cpu = (cpuSeconds(a.proc.child.pid) - c0) / r.durationS
      const list = http[a.name] ?? []
      http[a.name] = list
      list.push({ dps: r.okPerS * POINTS, p50: r.p50, p99: r.p99, non2xx: r.statusErrors, cpu })
      console.error(`otlp http ${a.name}: ${si(r.okPerS * POINTS)} dp/s`)
      await sleep(1_000) // let the exporter drain
    }
    for (const a of order) {
      const c0 = cpuSeconds(a.proc.child.pid)
      const r = await grpcSaturation(a, grpcBodies[0] as Buffer, GRPC_S, dir)
      const cpu = (cpuSeconds(a.proc.child.pid) - c0) / r.durationS
      const list = grpcRes[a.name] ?? []
      grpcRes[a.name] = list
      list.push({ dps: r.dps, p50: r.p50, p99: r.p99, failed: r.failed, cpu })
      console.error(`otlp grpc ${a.name}: ${si(r.dps)} dp/s`)
      await sleep(1_000)
    }
  }

  // Fixed rate below saturation, interleaved: latency and server CPU per accepted datapoint.
  const lowest = Math.min(
    ...arms.flatMap((a) => [
      median((http[a.name] ?? []).map((x) => x.dps)),
      median((grpcRes[a.name] ?? []).map((x) => x.dps)),
    ]),
  )
  const rate = Math.max(5, Math.floor((lowest / POINTS) * 0.5))
  const fixed: Record<string, Array<{ p50: number; p99: number; cpuPerDp: number; failed: number }>> = {}
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? arms : [...arms].reverse()
    for (const transport of ["OTLP/HTTP", "OTLP/gRPC"] as const) {
      for (const a of order) {
        const c0 = cpuSeconds(a.proc.child.pid)
        let latencies: Array<number>
        let okDps: number
        let failed: number
        if (transport === "OTLP/HTTP") {
          const r = await fixedRate({
            url: a.httpUrl,
            bodies,
            headers: OTLP_HEADERS,
            ratePerS: rate,
            durationS: FIXED_S,
            connections: 16,
          })
          latencies = r.latencies
          okDps = r.okDatapoints
          failed = r.failed
        } else {
          const r = await grpcFixedRate(a.grpcPort, grpcBodies, rate, FIXED_S)
          latencies = r.latencies
          okDps = r.ok * POINTS
          failed = r.failed
        }
        const cpu = cpuSeconds(a.proc.child.pid) - c0
        const key = `${transport} ${a.name}`
        const list = fixed[key] ?? []
        fixed[key] = list
        list.push({
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          cpuPerDp: okDps > 0 ? (cpu * 1e6) / okDps : Number.NaN,
          failed,
        })
        await sleep(500)
      }
    }
  }
  for (const a of arms) await stopProcess(a.proc)
  await stopProcess(sink.proc)
  fs.rmSync(dir, { recursive: true, force: true })

  const med = <T>(xs: ReadonlyArray<T> | undefined, f: (x: T) => number) => median((xs ?? []).map(f))
  const md: Array<string> = []
  md.push("## 3. OTLP end to end: the cost of limits")
  md.push("")
  md.push(
    `Two governors side by side, both exporting to the same sink: **limits on** (one rule, \`max_cardinality: 10000\`, \`action: drop\`) ` +
      `and **limits off** (no \`-limits-config\`). Requests of ${POINTS.toLocaleString("en")} gauge data points (10 metrics × 100 points, ` +
      `5 attributes, one resource), ${BODIES} prepared bodies, ${(BODIES * POINTS).toLocaleString("en")} distinct series in all (nothing is dropped). ` +
      `OTLP/HTTP protobuf: \`wrk -t1 -c${CONNECTIONS}\`, ${HTTP_S} s per run. OTLP/gRPC: \`h2load -c1 -m${GRPC_IN_FLIGHT}\` (nghttp2, in C) sending the ` +
      `first prepared body as unary Export calls, ${GRPC_S} s per run; the accepted rate is the governor's own count of accepted datapoints (h2load sees HTTP statuses, not the gRPC status in the trailers). ` +
      `${ROUNDS} interleaved rounds; medians. Latencies are at saturation (closed loop), so they mostly show queueing; ` +
      "non-2xx answers (429 when the export buffer is full) are in wrk's latencies but not in datapoints/s.",
  )
  md.push("")
  md.push("| transport | governor | datapoints/s | p50 | p99 | server CPU (cores) | failed/non-2xx |")
  md.push("|---|---|---:|---:|---:|---:|---:|")
  for (const a of arms) {
    const h = http[a.name]
    md.push(
      `| OTLP/HTTP | ${a.name} | ${si(med(h, (x) => x.dps))} | ${ms(med(h, (x) => x.p50))} | ${ms(med(h, (x) => x.p99))} | ${med(h, (x) => x.cpu).toFixed(2)} | ${(h ?? []).reduce((n, x) => n + x.non2xx, 0)} |`,
    )
  }
  for (const a of arms) {
    const g = grpcRes[a.name]
    md.push(
      `| OTLP/gRPC | ${a.name} | ${si(med(g, (x) => x.dps))} | ${ms(med(g, (x) => x.p50))} | ${ms(med(g, (x) => x.p99))} | ${med(g, (x) => x.cpu).toFixed(2)} | ${(g ?? []).reduce((n, x) => n + x.failed, 0)} |`,
    )
  }
  md.push("")
  md.push(
    `**At a fixed rate** below saturation (open loop, ${rate} requests/s = ${si(rate * POINTS)} datapoints/s, half the lowest ` +
      `saturation rate above; OTLP/HTTP by the node generator of \`bench/lib.ts\` over up to 16 connections, OTLP/gRPC by ` +
      `grpc-js on one channel; latency from each request's due time; ${FIXED_S} s per run, ${ROUNDS} interleaved rounds). ` +
      "Server CPU per datapoint = CPU seconds of the governor process during the run / datapoints accepted: the cost of " +
      "handling a datapoint, with and without limits.",
  )
  md.push("")
  md.push("| transport | governor | p50 | p99 | server CPU per datapoint | failed |")
  md.push("|---|---|---:|---:|---:|---:|")
  for (const transport of ["OTLP/HTTP", "OTLP/gRPC"]) {
    for (const a of arms) {
      const f = fixed[`${transport} ${a.name}`]
      md.push(
        `| ${transport} | ${a.name} | ${ms(med(f, (x) => x.p50))} | ${ms(med(f, (x) => x.p99))} | ${med(f, (x) => x.cpuPerDp).toFixed(2)} µs | ${(f ?? []).reduce((n, x) => n + x.failed, 0)} |`,
      )
    }
  }
  md.push("")
  const fixedRatio = (transport: string, f: (x: { p99: number; cpuPerDp: number }) => number) =>
    med(fixed[`${transport} limits on`], f) / med(fixed[`${transport} limits off`], f)
  const httpCpu = fixedRatio("OTLP/HTTP", (x) => x.cpuPerDp)
  const grpcCpu = fixedRatio("OTLP/gRPC", (x) => x.cpuPerDp)
  const httpFixedP99 = fixedRatio("OTLP/HTTP", (x) => x.p99)
  const grpcFixedP99 = fixedRatio("OTLP/gRPC", (x) => x.p99)
  const httpRatio = med(http["limits on"], (x) => x.dps) / med(http["limits off"], (x) => x.dps)
  const grpcRatio = med(grpcRes["limits on"], (x) => x.dps) / med(grpcRes["limits off"], (x) => x.dps)
  const httpP99 = med(http["limits on"], (x) => x.p99) / med(http["limits off"], (x) => x.p99)
  const grpcP99 = med(grpcRes["limits on"], (x) => x.p99) / med(grpcRes["limits off"], (x) => x.p99)
  md.push(
    "**Cost of limits** (limits on / limits off): " +
      `at a fixed rate, server CPU per datapoint OTLP/HTTP ${ratio(httpCpu)}, OTLP/gRPC ${ratio(grpcCpu)}; p99 OTLP/HTTP ${ratio(httpFixedP99)}, ` +
      `OTLP/gRPC ${ratio(grpcFixedP99)}. At saturation, throughput OTLP/HTTP ${ratio(httpRatio)} (p99 ${ratio(httpP99)}), ` +
      `OTLP/gRPC ${ratio(grpcRatio)} (p99 ${ratio(grpcP99)}). At saturation both governors answer many OTLP/HTTP requests with 429 ` +
      "(export buffer full) and may use less than one core (CPU column): the accepted rate there is set by the export path's " +
      "backpressure as much as by the limits, so the fixed-rate CPU per datapoint is the cleaner measure of what limits cost.",
  )
  md.push("")
  return {
    area: "otlp",
    markdown: md.join("\n"),
    targets: (["OTLP/HTTP", "OTLP/gRPC"] as const).map((transport) => {
      const runs: ReadonlyArray<{ readonly dps: number }> | undefined =
        transport === "OTLP/HTTP" ? http["limits on"] : grpcRes["limits on"]
      const dps = med(runs, (x) => x.dps)
      return {
        area: "3. OTLP",
        target: `${transport} at saturation, limits on: ≥ 3× ${si(OTLP_BEFORE_DPS)} datapoints/s (the rate when OTLP was decoded on the main thread)`,
        measured: `${si(dps)} datapoints/s (${ratio(dps / OTLP_BEFORE_DPS)})`,
        met: dps >= 3 * OTLP_BEFORE_DPS,
      }
    }),
    data: {
      httpOn: med(http["limits on"], (x) => x.dps),
      httpOff: med(http["limits off"], (x) => x.dps),
      grpcOn: med(grpcRes["limits on"], (x) => x.dps),
      grpcOff: med(grpcRes["limits off"], (x) => x.dps),
      httpRatio,
      grpcRatio,
      httpCpu,
      grpcCpu,
      httpCpuOff: med(fixed["OTLP/HTTP limits off"], (x) => x.cpuPerDp),
      grpcCpuOff: med(fixed["OTLP/gRPC limits off"], (x) => x.cpuPerDp),
    },
  }
}

areaMain(import.meta.url, run)
