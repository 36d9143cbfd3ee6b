/**
 * Area 9: the durable export queue and the memory limit, remote write end to end.
 *
 * - Relay throughput at saturation: wrk (1 thread, 8 connections) POSTing prepared snappy bodies of
 *   1,000 series round robin to four servers relaying to the same loopback sink (`bench/sink.ts`,
 *   204 without decoding): the governor with its memory buffer (no queue), the governor with a
 *   durable queue (`exporters.queue`, `sync_interval: 1s`), the same with `sync_interval: 0s`
 *   (fsync before every 2xx), and vmagent (which always queues through `-remoteWrite.tmpDataPath`).
 *   Rounds interleaved (order alternating), ratios to the memory buffer within each round; server
 *   CPU, peak RSS, bytes written to the storage layer (/proc/<pid>/io `write_bytes`), and whether
 *   every accepted datapoint was delivered (the governor's counters after the drain).
 * - The memory-limit RSS curve: a governor with `-memory-limit 256MiB` relaying to a sink that
 *   answers after 200 ms, saturated by wrk (16 connections) for 20 s; RSS sampled every 100 ms,
 *   accepted and refused requests per second from its /metrics; then the drain after the load.
 *
 * `node --import tsx bench/queue.ts` (BENCH_QUICK=1 for a short run).
 */
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import {
  type AreaResult,
  areaMain,
  cpuSeconds,
  drainSinks,
  freePort,
  httpGet,
  LAUNCHER,
  MAIN,
  machineBusy,
  median,
  metricSum,
  mib,
  ms,
  type Proc,
  QUICK,
  ratio,
  relayFixture,
  rssBytes,
  runWrk,
  samplePeak,
  selfAndWrkCpu,
  si,
  sleep,
  startGovernor,
  startProcess,
  startSink,
  stopProcess,
  type WrkResult,
  waitHttpOk,
} from "./lib.js"
import { RELAY_BODIES, RELAY_SERIES_PER_REQUEST } from "./payloads.js"

const BODIES = RELAY_BODIES
const SERIES_PER_REQUEST = RELAY_SERIES_PER_REQUEST
const ROUNDS = QUICK ? 1 : 3
const SATURATION_S = QUICK ? 3 : 6
const WARMUP_S = QUICK ? 1 : 2
const CONNECTIONS = 8
/** A sink counts as quiet after this long without a new request: longer than one flush interval (1 s by default). */
const QUIET_MS = 1_200

const MiB = 2 ** 20
const MEMORY_LIMIT = 256 * MiB
const SLOW_SINK_MS = 200
const CURVE_S = QUICK ? 8 : 20
const CURVE_CONNECTIONS = 16
const CURVE_DRAIN_MAX_S = 45

const MEMORY = "governor, memory buffer"
const QUEUE_1S = "governor, queue `sync_interval: 1s`"
const QUEUE_0S = "governor, queue `sync_interval: 0s`"
const VMAGENT = "vmagent (`-remoteWrite.tmpDataPath`)"

interface Arm {
  readonly name: string
  readonly url: string
  readonly proc: Proc
  /** The governor's stats address (undefined for vmagent). */
  readonly statsUrl: string | undefined
}

interface RunRow {
  readonly dps: number
  readonly okRequests: number
  readonly statusErrors: number
  readonly socketErrors: number
  readonly p50: number
  readonly p99: number
  readonly cpu: number
  readonly peakRss: number
  /** Bytes the process caused to be written to the storage layer, from the start of the run until the sink was quiet. */
  readonly diskWritten: number
  /** Of those, bytes whose writeback was cancelled (files deleted or truncated before the flush). */
  readonly diskCancelled: number
  /** Cores the whole machine was busy during the run. */
  readonly busy: number
  /** Cores taken by processes this area did not start. */
  readonly otherLoad: number
  readonly drainMs: number
  /** Governor only: datapoints received during the run, sent by the end of the drain, and counted lost. */
  readonly received: number
  readonly sent: number
  readonly lost: number
}

/** `write_bytes` and `cancelled_write_bytes` of /proc/<pid>/io (NaN when unavailable). */
const diskIo = (pid: number | undefined): { written: number; cancelled: number } => {
  try {
    const text = fs.readFileSync(`/proc/${pid}/io`, "utf8")
    const field = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? Number.NaN)
    return { written: field("write_bytes"), cancelled: field("cancelled_write_bytes") }
  } catch {
    return { written: Number.NaN, cancelled: Number.NaN }
  }
}

/** Waits until the sink has seen no new request for `QUIET_MS` (at most 20 s); returns how long that took. */
const drain = (sinkUrl: string): Promise<number> => drainSinks([sinkUrl], 20_000, QUIET_MS)

/** The governor's remote-write counters: datapoints received, sent, lost; requests answered 2xx; refusals by reason. */
const governorCounts = async (statsUrl: string) => {
  const text = (await httpGet(`${statsUrl}/metrics`)).body
  let ok = 0
  for (const line of text.split("\n")) {
    if (!line.startsWith("metrics_governor_receiver_requests_total{") || !line.includes('protocol="prw"'))
      continue
    if (/code="2\d\d"/.test(line)) ok += Number(line.slice(line.lastIndexOf(" ") + 1))
  }
  const p = ['protocol="prw"']
  return {
    received: metricSum(text, "metrics_governor_datapoints_received_total", p),
    sent: metricSum(text, "metrics_governor_datapoints_sent_total", p),
    lost: metricSum(text, "metrics_governor_export_datapoints_lost_total", p),
    buffered: metricSum(text, "metrics_governor_buffer_datapoints", p),
    okRequests: ok,
    refusedMemory: metricSum(text, "metrics_governor_receiver_refused_total", [...p, 'reason="memory"']),
    refusedBuffer: metricSum(text, "metrics_governor_receiver_refused_total", [...p, 'reason="buffer_full"']),
  }
}

/** A downstream in this process that answers every POST 204 after `delayMs`, counting requests and bytes. */
const startSlowSink = async (delayMs: number) => {
  const counts = { requests: 0, bytes: 0 }
  const server = http.createServer((req, res) => {
    let bytes = 0
    req.on("data", (c: Buffer) => {
      bytes += c.length
    })
    req.on("end", () => {
      setTimeout(() => {
        counts.requests++
        counts.bytes += bytes
        res.statusCode = 204
        res.end()
      }, delayMs)
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return {
    counts,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/write`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

const mb = (bytes: number) => (Number.isFinite(bytes) ? (bytes / 1e6).toFixed(1) : "n/a")

interface Second {
  readonly s: number
  min: number
  max: number
  accepted: number
  refusedMemory: number
  refusedBuffer: number
  buffered: number
}

interface Curve {
  /** Started through the launcher (heap sized for the limit, MALLOC_ARENA_MAX=2), as the container image starts it. */
  readonly arenas: boolean
  readonly idle: number
  readonly seconds: ReadonlyArray<Second>
  readonly loadEndMs: number
  readonly emptyAtMs: number
  readonly peakUnderLoad: number
  readonly peak: number
  readonly rssAtEmpty: number
  readonly rssAfter: number
  readonly wrk: WrkResult
  readonly counts: Awaited<ReturnType<typeof governorCounts>>
}

/**
 * A governor with `-memory-limit 256MiB` relaying to a sink that answers after 200 ms, saturated by
 * wrk for `CURVE_S`; RSS every 100 ms, counters every second; then the drain and 5 s more.
 */
const memoryCurve = async (script: string, limitsFile: string, arenas: boolean): Promise<Curve> => {
  const slow = await startSlowSink(SLOW_SINK_MS)
  const curvePort = await freePort()
  const statsPort = await freePort()
  const limitedProc = startProcess(
    "governor -memory-limit 256MiB",
    arenas ? LAUNCHER : process.execPath,
    [
      ...(arenas ? [] : [MAIN]),
      "-stats-addr",
      `127.0.0.1:${statsPort}`,
      "-grpc-listen",
      "",
      "-http-listen",
      "",
      "-log-level",
      "warn",
      "-prw-listen",
      `127.0.0.1:${curvePort}`,
      "-prw-exporter-endpoint",
      slow.url,
      "-limits-config",
      limitsFile,
      "-memory-limit",
      "256MiB",
    ],
    { env: process.env },
  )
  const limited = { proc: limitedProc, statsUrl: `http://127.0.0.1:${statsPort}` }
  await waitHttpOk("governor -memory-limit /ready", `${limited.statsUrl}/ready`, limitedProc, 30_000)
  const lpid = limited.proc.child.pid
  const idle = rssBytes(lpid)
  const samples: Array<{ t: number; rss: number }> = []
  const seconds: Array<Second> = []
  let sampling = true
  const t0 = Date.now()
  const sampler = (async () => {
    let last = await governorCounts(limited.statsUrl)
    let nextTick = t0 + 1000
    let cur: Second = {
      s: 1,
      min: Infinity,
      max: 0,
      accepted: 0,
      refusedMemory: 0,
      refusedBuffer: 0,
      buffered: 0,
    }
    while (sampling) {
      const rss = rssBytes(lpid)
      samples.push({ t: Date.now() - t0, rss })
      cur.min = Math.min(cur.min, rss)
      cur.max = Math.max(cur.max, rss)
      if (Date.now() >= nextTick) {
        const c = await governorCounts(limited.statsUrl)
        cur.accepted = c.okRequests - last.okRequests
        cur.refusedMemory = c.refusedMemory - last.refusedMemory
        cur.refusedBuffer = c.refusedBuffer - last.refusedBuffer
        cur.buffered = c.buffered
        last = c
        seconds.push(cur)
        cur = {
          s: cur.s + 1,
          min: Infinity,
          max: 0,
          accepted: 0,
          refusedMemory: 0,
          refusedBuffer: 0,
          buffered: 0,
        }
        nextTick += 1000
      }
      await sleep(100)
    }
  })()
  const wrk = await runWrk({
    url: `http://127.0.0.1:${curvePort}/api/v1/write`,
    script,
    connections: CURVE_CONNECTIONS,
    threads: 1,
    durationS: CURVE_S,
  })
  const loadEndMs = Date.now() - t0
  // The drain: until the buffer is empty, then 5 s more of RSS.
  let emptyAtMs = Number.NaN
  const drainDeadline = Date.now() + CURVE_DRAIN_MAX_S * 1000
  while (Date.now() < drainDeadline) {
    const c = await governorCounts(limited.statsUrl)
    if (c.buffered === 0) {
      emptyAtMs = Date.now() - t0
      break
    }
    await sleep(200)
  }
  const rssAtEmpty = rssBytes(lpid)
  await sleep(5_000)
  sampling = false
  await sampler
  const rssAfter = rssBytes(lpid)
  const counts = await governorCounts(limited.statsUrl)
  await stopProcess(limited.proc)
  await slow.close()
  const during = samples.filter((x) => x.t <= loadEndMs)
  const curve: Curve = {
    arenas,
    idle,
    seconds,
    loadEndMs,
    emptyAtMs,
    peakUnderLoad: Math.max(...during.map((x) => x.rss)),
    peak: Math.max(...samples.map((x) => x.rss)),
    rssAtEmpty,
    rssAfter,
    wrk,
    counts,
  }
  console.error(
    `queue curve (${arenas ? "launcher" : "plain node"}): peak ${mib(curve.peak)}, after ${mib(rssAfter)}, refused ${counts.refusedMemory}/${counts.refusedBuffer}`,
  )
  return curve
}

const run = async (): Promise<AreaResult> => {
  const load0 = os.loadavg()[0] ?? Number.NaN
  const { dir, script, limitsFile } = relayFixture("mg-bench-queue-")
  const sink = await startSink("none")
  const sinkWrite = `${sink.url}/api/v1/write`

  const governor = async (name: string, config: string | undefined): Promise<Arm> => {
    const port = await freePort()
    const args = [
      "-prw-listen",
      `127.0.0.1:${port}`,
      "-prw-exporter-endpoint",
      sinkWrite,
      "-limits-config",
      limitsFile,
    ]
    if (config !== undefined) {
      const file = path.join(dir, `${name.replace(/[^a-z0-9]+/gi, "-")}.yaml`)
      fs.writeFileSync(file, config)
      args.push("-config", file)
    }
    const g = await startGovernor(name, args)
    return { name, url: `http://127.0.0.1:${port}/api/v1/write`, proc: g.proc, statsUrl: g.statsUrl }
  }
  const queueConfig = (sub: string, sync: string) =>
    `exporters:\n  queue:\n    path: ${path.join(dir, sub)}\n    sync_interval: ${sync}\n`
  const vmPort = await freePort()
  const vm = startProcess("vmagent", "vmagent", [
    `-httpListenAddr=127.0.0.1:${vmPort}`,
    `-remoteWrite.url=${sinkWrite}`,
    "-remoteWrite.maxHourlySeries=10000",
    `-remoteWrite.tmpDataPath=${path.join(dir, "vmagent-data")}`,
    "-loggerLevel=ERROR",
  ])
  await waitHttpOk("vmagent /health", `http://127.0.0.1:${vmPort}/health`, vm)
  const arms: Array<Arm> = [
    await governor(MEMORY, undefined),
    await governor(QUEUE_1S, queueConfig("queue-1s", "1s")),
    await governor(QUEUE_0S, queueConfig("queue-0s", "0s")),
    { name: VMAGENT, url: `http://127.0.0.1:${vmPort}/api/v1/write`, proc: vm, statsUrl: undefined },
  ]
  const idleRss: Record<string, number> = Object.fromEntries(
    arms.map((a) => [a.name, rssBytes(a.proc.child.pid)]),
  )
  for (const a of arms) {
    await runWrk({ url: a.url, script, connections: CONNECTIONS, threads: 1, durationS: WARMUP_S })
    await drain(sink.url)
  }

  const sat: Record<string, Array<RunRow>> = Object.fromEntries(arms.map((a) => [a.name, []]))
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? arms : [...arms].reverse()
    for (const a of order) {
      const pid = a.proc.child.pid
      const before = a.statsUrl === undefined ? undefined : await governorCounts(a.statsUrl)
      const cpu0 = cpuSeconds(pid)
      const allPids = [...arms.map((x) => x.proc.child.pid), sink.proc.child.pid]
      const all0 = allPids.reduce<number>((n, p) => n + cpuSeconds(p), 0)
      const io0 = diskIo(pid)
      const busy0 = machineBusy()
      const self0 = selfAndWrkCpu()
      const stopPeak = samplePeak(pid)
      const r: WrkResult = await runWrk({
        url: a.url,
        script,
        connections: CONNECTIONS,
        threads: 1,
        durationS: SATURATION_S,
      })
      const peakRss = await stopPeak()
      const cpu = (cpuSeconds(pid) - cpu0) / r.durationS
      const ours = (allPids.reduce<number>((n, p) => n + cpuSeconds(p), 0) - all0) / r.durationS
      const busy = (machineBusy() - busy0) / r.durationS
      const selfCpu = (selfAndWrkCpu() - self0) / r.durationS
      const drainMs = await drain(sink.url)
      const io1 = diskIo(pid)
      const after = a.statsUrl === undefined ? undefined : await governorCounts(a.statsUrl)
      const row: RunRow = {
        dps: r.okPerS * SERIES_PER_REQUEST,
        okRequests: r.requests - r.statusErrors,
        statusErrors: r.statusErrors,
        socketErrors: r.socketErrors,
        p50: r.p50,
        p99: r.p99,
        cpu,
        peakRss,
        diskWritten: io1.written - io0.written,
        diskCancelled: io1.cancelled - io0.cancelled,
        busy,
        otherLoad: Math.max(0, busy - ours - selfCpu),
        drainMs,
        received: after !== undefined && before !== undefined ? after.received - before.received : Number.NaN,
        sent: after !== undefined && before !== undefined ? after.sent - before.sent : Number.NaN,
        lost: after !== undefined && before !== undefined ? after.lost - before.lost : Number.NaN,
      }
      sat[a.name]?.push(row)
      console.error(
        `queue ${a.name}: ${si(row.dps)} dp/s, cpu ${cpu.toFixed(2)}, peak ${si(peakRss)}B, disk ${mb(row.diskWritten)} MB, machine ${busy.toFixed(2)} (other ${row.otherLoad.toFixed(2)})`,
      )
    }
  }
  const finalRss: Record<string, number> = Object.fromEntries(
    arms.map((a) => [a.name, rssBytes(a.proc.child.pid)]),
  )
  for (const a of arms) await stopProcess(a.proc)
  await stopProcess(sink.proc)
  const loadMid = os.loadavg()[0] ?? Number.NaN

  const ratios = (name: string) =>
    (sat[name] ?? []).map((r, i) => r.dps / ((sat[MEMORY] ?? [])[i]?.dps ?? Number.NaN))
  const med = (name: string, f: (r: RunRow) => number) => median((sat[name] ?? []).map(f))
  const perM = (bytes: number, okRequests: number) => bytes / ((okRequests * SERIES_PER_REQUEST) / 1e6)

  // ---------------------------------------------------------------------------------------------
  // The memory-limit RSS curve: as the container image runs it (the launcher), then as a plain node process.
  const curves: Array<Curve> = []
  for (const arenas of [true, false]) curves.push(await memoryCurve(script, limitsFile, arenas))
  fs.rmSync(dir, { recursive: true, force: true })
  const load1 = os.loadavg()[0] ?? Number.NaN

  // ---------------------------------------------------------------------------------------------
  // The section.
  const names = arms.map((a) => a.name)
  const md: Array<string> = []
  md.push("## 9. Durable export queue and memory limit")
  md.push("")
  md.push(
    "**Relay throughput with a durable queue.** Four servers relay remote write to the same sink (`bench/sink.ts`: node:http, " +
      "204 without decoding, in its own process): the governor with its memory buffer (no `exporters.queue`), the governor with " +
      "a durable queue (`exporters.queue.path` on the local ext4 disk, `max_bytes` and `full_behavior` defaults) and " +
      "`sync_interval: 1s`, the same with `sync_interval: 0s` (fsync before every 2xx), and vmagent with " +
      "`-remoteWrite.tmpDataPath` (vmagent always has its persistent queue; it keeps blocks in memory and writes them to its " +
      "files when the downstream falls behind or at shutdown). Each governor has one rule (`max_cardinality: 10000`, " +
      "`action: drop`), vmagent `-remoteWrite.maxHourlySeries=10000`. Load: " +
      `${BODIES} prepared snappy bodies of ${SERIES_PER_REQUEST.toLocaleString("en")} series with one sample each, round robin, ` +
      `\`wrk -t1 -c${CONNECTIONS}\` for ${SATURATION_S} s per run, ${ROUNDS} interleaved rounds (order alternating), ` +
      "every run followed by a wait until the sink is quiet. datapoints/s = 2xx requests/s × 1,000; vs memory = the ratio to " +
      "the memory buffer's run of the same round. CPU = CPU seconds of the server per second of the run (1.0 = one core). " +
      "Disk = `write_bytes` of /proc/<pid>/io from the start of the run until the sink was quiet (bytes the process caused to be " +
      "written to the storage layer; in parentheses `cancelled_write_bytes`, pages of files deleted before they were flushed), " +
      "per million datapoints accepted. Delivered = datapoints the governor counted sent by the end of the drain / received " +
      "during the run (its own counters; lost = `metrics_governor_export_datapoints_lost_total`). Machine busy = cores the " +
      "whole machine was busy during the run (/proc/stat), other = what of it this area did not start. All four servers run " +
      "all the time; only one is loaded at a time.",
  )
  md.push("")
  md.push(
    "| run | server | datapoints/s | vs memory | wrk p50 | wrk p99 | non-2xx | CPU (cores) | peak RSS | disk MB / M datapoints | delivered / received (lost) | sink quiet after | machine busy (other) |",
  )
  md.push("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  for (let i = 0; i < ROUNDS; i++) {
    for (const name of names) {
      const r = sat[name]?.[i]
      if (r === undefined) continue
      const delivered = Number.isFinite(r.received) ? `${si(r.sent)} / ${si(r.received)} (${r.lost})` : "—"
      md.push(
        `| ${i + 1} | ${name} | ${si(r.dps)} | ${name === MEMORY ? "1.00×" : ratio(ratios(name)[i] ?? Number.NaN)} | ${ms(r.p50)} | ${ms(r.p99)} | ` +
          `${r.statusErrors} | ${r.cpu.toFixed(2)} | ${si(r.peakRss)}B | ${mb(perM(r.diskWritten, r.okRequests))} (${mb(perM(r.diskCancelled, r.okRequests))}) | ` +
          `${delivered} | ${r.drainMs} ms | ${r.busy.toFixed(2)} (${r.otherLoad.toFixed(2)}) |`,
      )
    }
  }
  md.push("")
  const memDps = med(MEMORY, (r) => r.dps)
  const q1Ratio = median(ratios(QUEUE_1S))
  const q0Ratio = median(ratios(QUEUE_0S))
  const vmRatio = median(ratios(VMAGENT))
  const q1VsVm = median(
    (sat[QUEUE_1S] ?? []).map((r, i) => r.dps / ((sat[VMAGENT] ?? [])[i]?.dps ?? Number.NaN)),
  )
  const everyDelivered = [MEMORY, QUEUE_1S, QUEUE_0S].every((n) =>
    (sat[n] ?? []).every((r) => r.sent === r.received && r.lost === 0),
  )
  const otherLoads = Object.values(sat)
    .flat()
    .map((r) => r.otherLoad)
  md.push(
    `**Saturation, medians over the rounds: memory buffer ${si(memDps)} datapoints/s; durable queue \`sync_interval: 1s\` ` +
      `${si(med(QUEUE_1S, (r) => r.dps))} (${ratio(q1Ratio)} the memory buffer; per round ${ratios(QUEUE_1S)
        .map((x) => ratio(x))
        .join(
          ", ",
        )}), \`sync_interval: 0s\` ${si(med(QUEUE_0S, (r) => r.dps))} (${ratio(q0Ratio)}; per round ${ratios(
        QUEUE_0S,
      )
        .map((x) => ratio(x))
        .join(", ")}); vmagent ${si(med(VMAGENT, (r) => r.dps))} (${ratio(vmRatio)}).** The queue with ` +
      `\`sync_interval: 1s\` relays ${ratio(q1VsVm)} vmagent's throughput in the same rounds. ` +
      `Server CPU (median): memory buffer ${med(MEMORY, (r) => r.cpu).toFixed(2)}, queue 1s ${med(QUEUE_1S, (r) => r.cpu).toFixed(2)}, ` +
      `queue 0s ${med(QUEUE_0S, (r) => r.cpu).toFixed(2)}, vmagent ${med(VMAGENT, (r) => r.cpu).toFixed(2)} cores. ` +
      `Peak RSS (highest of the runs; idle before them / after them): ${names
        .map(
          (n) =>
            `${n.replace(/`/g, "")} ${si(Math.max(...(sat[n] ?? []).map((r) => r.peakRss)))}B (${si(idleRss[n] ?? Number.NaN)}B / ${si(finalRss[n] ?? Number.NaN)}B)`,
        )
        .join("; ")}. ` +
      `Every datapoint the governors accepted was delivered by the end of each drain, none lost: **${everyDelivered ? "yes" : "no"}**. ` +
      `Processes this area did not start took ${Math.min(...otherLoads).toFixed(2)}–${Math.max(...otherLoads).toFixed(2)} cores ` +
      `during these runs (load average, 1 min: ${load0.toFixed(2)} at the start of the area, ${loadMid.toFixed(2)} after these runs); ` +
      "wrk, the sink and the server share the 2 cores.",
  )
  md.push("")

  md.push(
    `**The memory limit under saturation.** A governor with \`-memory-limit 256MiB\` (and the same rule) relays to a sink ` +
      `in the benchmark's process that answers every request ${SLOW_SINK_MS} ms after reading it, so the exporter falls behind ` +
      `and the buffer fills; \`wrk -t1 -c${CURVE_CONNECTIONS}\` sends the same bodies for ${CURVE_S} s, then the load stops ` +
      "and the governor drains. Run twice, one after the other: through the launcher `bin/metrics-governor`, as the container " +
      "image (`deploy/Dockerfile`) starts it (the main thread's heap sized for the limit: `--max-old-space-size=128 " +
      "--max-semi-space-size=2`, and `MALLOC_ARENA_MAX=2`), then as a plain `node dist/main.js` (V8's default heap sizes, " +
      "no `MALLOC_ARENA_MAX`), for comparison. RSS is read from /proc/<pid>/status every " +
      "100 ms (min and max per second below); accepted = requests answered 2xx, refused = " +
      "`metrics_governor_receiver_refused_total` by reason, per second, from the governor's /metrics; buffered = " +
      "`metrics_governor_buffer_datapoints` at the end of the second; rows marked drain are after the load.",
  )
  md.push("")
  for (const c of curves) {
    md.push(
      `${c.arenas ? "Through the launcher (as the container image)" : "Plain `node dist/main.js` (for comparison)"}, idle RSS before the load ${mib(c.idle)}:`,
    )
    md.push("")
    md.push(
      "| second | RSS min | RSS max | accepted req/s | refused: memory | refused: buffer_full | buffered datapoints |",
    )
    md.push("|---:|---:|---:|---:|---:|---:|---:|")
    for (const x of c.seconds) {
      const phase = (x.s - 1) * 1000 >= c.loadEndMs ? " (drain)" : ""
      md.push(
        `| ${x.s}${phase} | ${mib(x.min)} | ${mib(x.max)} | ${x.accepted} | ${x.refusedMemory} | ${x.refusedBuffer} | ${x.buffered.toLocaleString("en")} |`,
      )
    }
    md.push("")
    md.push(
      `**Peak RSS ${mib(c.peakUnderLoad)} under load (${mib(c.peak)} with the drain) against a limit of 256 MiB: ` +
        `${c.peak <= MEMORY_LIMIT ? "under it" : "over it"}** (${((c.peak / MEMORY_LIMIT) * 100).toFixed(0)}% of the limit). ` +
        `wrk: ${si(c.wrk.okPerS * SERIES_PER_REQUEST)} datapoints/s accepted, ${c.wrk.statusErrors} non-2xx answers, ` +
        `${c.wrk.socketErrors} socket errors; in all ${c.counts.refusedMemory} requests refused for memory and ` +
        `${c.counts.refusedBuffer} with the buffer full. ` +
        (Number.isFinite(c.emptyAtMs)
          ? `The load stopped at ${(c.loadEndMs / 1000).toFixed(1)} s and the buffer was empty at ${(c.emptyAtMs / 1000).toFixed(1)} s ` +
            `(${((c.emptyAtMs - c.loadEndMs) / 1000).toFixed(1)} s of drain); RSS ${mib(c.rssAtEmpty)} then, ${mib(c.rssAfter)} 5 s later. `
          : `The buffer was not empty ${CURVE_DRAIN_MAX_S} s after the load stopped. `) +
        `Delivered: ${si(c.counts.sent)} of ${si(c.counts.received)} datapoints received, ${c.counts.lost} lost.`,
    )
    md.push("")
  }
  md.push(
    "The governor refuses new requests from 80% of the limit (205 MiB) until it is back under 75%, asks for a collection from " +
      "65% and always admits one request when none is in flight ([memory.md](memory.md)); after a burst the process keeps " +
      `pages it no longer uses, so RSS stays high once the buffer is empty. Load average (1 min) ${load1.toFixed(2)} at the end of this area.`,
  )
  md.push("")
  const image = curves.find((c) => c.arenas) as Curve
  const plain = curves.find((c) => !c.arenas) as Curve
  const drained = curves.every(
    (c) => Number.isFinite(c.emptyAtMs) && c.counts.lost === 0 && c.counts.sent === c.counts.received,
  )

  return {
    area: "queue",
    markdown: md.join("\n"),
    targets: [
      {
        area: "9. queue",
        target:
          "peak RSS ≤ 256 MiB with -memory-limit 256MiB, saturated, slow downstream (through the launcher, as the image)",
        measured: `peak ${mib(image.peak)} (${((image.peak / MEMORY_LIMIT) * 100).toFixed(0)}% of the limit; plain node, V8's default heap: ${mib(plain.peak)})`,
        met: image.peak <= MEMORY_LIMIT,
      },
      {
        area: "9. queue",
        target: "the memory-limited governor drains its buffer after the load, nothing lost",
        measured: curves
          .map(
            (c) =>
              `${c.arenas ? "launcher" : "plain node"}: ${Number.isFinite(c.emptyAtMs) ? `empty ${((c.emptyAtMs - c.loadEndMs) / 1000).toFixed(1)} s after the load` : "not empty"}, ${c.counts.lost} lost`,
          )
          .join("; "),
        met: drained,
      },
      {
        area: "9. queue",
        target: "every datapoint accepted at saturation delivered (memory buffer, durable queue 1s and 0s)",
        measured: `sent == received and 0 lost after every run: ${everyDelivered ? "yes" : "no"}; durable queue 1s / memory buffer ${ratio(q1Ratio)}, 0s ${ratio(q0Ratio)}`,
        met: everyDelivered,
      },
    ],
    data: {
      memoryDps: memDps,
      queue1sRatio: q1Ratio,
      queue0sRatio: q0Ratio,
      vmagentRatio: vmRatio,
      queue1sVsVmagent: q1VsVm,
      peakRss: image.peak,
      peakRssPlain: plain.peak,
      curves,
    },
  }
}

areaMain(import.meta.url, run)
