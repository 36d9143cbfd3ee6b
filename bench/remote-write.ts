/**
 * Area 2: Prometheus remote write end to end. The governor (one rule, `max_cardinality: 10000`)
 * beside vmagent (`-remoteWrite.maxHourlySeries=10000`), both relaying to the same loopback sink
 * (`bench/sink.ts`, 204 without decoding), driven by the same load:
 *
 * - saturation: wrk (1 thread, 8 connections) POSTing prepared snappy bodies of 1,000 series round
 *   robin, interleaved rounds governor / vmagent; datapoints/s = successful requests/s × 1,000;
 * - fixed rate: the open-loop node generator of `lib.ts` at half the lower saturation rate,
 *   interleaved the same way; p50/p99 from each request's due time;
 * - one CPU profile of the governor at saturation (`node --cpu-prof`), top functions by self time.
 *
 * `node --import tsx bench/remote-write.ts` (BENCH_QUICK=1 for a short run).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { defaultDecodeThreads } from "../src/protocols/prw/decode-pool.js"
import {
  type AreaResult,
  areaMain,
  cpuSeconds,
  fixedRate,
  freePort,
  median,
  mib,
  ms,
  type Proc,
  percentile,
  QUICK,
  ratio,
  relayFixture,
  rssBytes,
  runWrk,
  type SinkCounts,
  si,
  sinkCounts,
  sleep,
  startGovernor,
  startProcess,
  startSink,
  stopProcess,
  summarizeProfile,
  type WrkResult,
  waitHttpOk,
} from "./lib.js"
import { PRW_HEADERS, RELAY_BODIES, RELAY_CONNECTIONS, RELAY_SERIES_PER_REQUEST } from "./payloads.js"

const BODIES = RELAY_BODIES
const SERIES_PER_REQUEST = RELAY_SERIES_PER_REQUEST
const ROUNDS = QUICK ? 1 : 3
const SATURATION_S = QUICK ? 3 : 10
const FIXED_S = QUICK ? 3 : 6
const PROFILE_S = QUICK ? 3 : 8
const CONNECTIONS = RELAY_CONNECTIONS

const ONE_THREAD = "governor, decode_threads 0"

interface Target {
  readonly name: string
  readonly url: string
  readonly proc: Proc
}

/** Waits until the sink has seen no new request for 500 ms (at most 10 s); returns how long that took. */
const drain = async (sinkUrl: string): Promise<{ ms: number; counts: SinkCounts }> => {
  const t = Date.now()
  let last = await sinkCounts(sinkUrl)
  let quietSince = Date.now()
  while (Date.now() - t < 10_000) {
    await sleep(100)
    const now = await sinkCounts(sinkUrl)
    if (now.requests !== last.requests) {
      last = now
      quietSince = Date.now()
    } else if (Date.now() - quietSince >= 500) break
  }
  return { ms: quietSince - t, counts: last }
}

const run = async (): Promise<AreaResult> => {
  const { dir, bodies, script, limitsFile } = relayFixture("mg-bench-prw-")
  const sink = await startSink("none")
  const sinkWrite = `${sink.url}/api/v1/write`

  const govPort = await freePort()
  const gov = await startGovernor("governor", [
    "-prw-listen",
    `127.0.0.1:${govPort}`,
    "-prw-exporter-endpoint",
    sinkWrite,
    "-limits-config",
    limitsFile,
  ])
  // The same governor with its limits and everything else, but decoding on the main thread.
  const oneThreadConfig = path.join(dir, "one-thread.yaml")
  fs.writeFileSync(oneThreadConfig, "receivers:\n  decode_threads: 0\n")
  const gov0Port = await freePort()
  const gov0 = await startGovernor("governor (decode_threads 0)", [
    "-config",
    oneThreadConfig,
    "-prw-listen",
    `127.0.0.1:${gov0Port}`,
    "-prw-exporter-endpoint",
    sinkWrite,
    "-limits-config",
    limitsFile,
  ])
  const vmPort = await freePort()
  const vm = startProcess("vmagent", "vmagent", [
    `-httpListenAddr=127.0.0.1:${vmPort}`,
    `-remoteWrite.url=${sinkWrite}`,
    "-remoteWrite.maxHourlySeries=10000",
    `-remoteWrite.tmpDataPath=${path.join(dir, "vmagent-data")}`,
    "-loggerLevel=ERROR",
  ])
  await waitHttpOk("vmagent /health", `http://127.0.0.1:${vmPort}/health`, vm)
  const targets: Array<Target> = [
    { name: "governor", url: `http://127.0.0.1:${govPort}/api/v1/write`, proc: gov.proc },
    { name: "vmagent", url: `http://127.0.0.1:${vmPort}/api/v1/write`, proc: vm },
  ]

  const oneThread: Target = {
    name: ONE_THREAD,
    url: `http://127.0.0.1:${gov0Port}/api/v1/write`,
    proc: gov0.proc,
  }
  const idleRss = { governor: rssBytes(gov.proc.child.pid), vmagent: rssBytes(vm.child.pid) }
  /** Highest RSS seen during the saturation runs, sampled every 100 ms. */
  const peakRss: Record<string, number> = { governor: 0, vmagent: 0 }
  const sampleRss = (t: Target) => {
    let stop = false
    const done = (async () => {
      while (!stop) {
        peakRss[t.name] = Math.max(peakRss[t.name] ?? 0, rssBytes(t.proc.child.pid))
        await sleep(100)
      }
    })()
    return async () => {
      stop = true
      await done
    }
  }
  // Warm-up: JIT, connection pools, vmagent's series tracker.
  for (const t of [...targets, oneThread]) {
    await runWrk({ url: t.url, script, connections: CONNECTIONS, threads: 1, durationS: 2 })
    await drain(sink.url)
  }

  // Saturation, interleaved.
  const sat: Record<
    string,
    Array<WrkResult & { cpu: number; sinkCpu: number; drainMs: number; sinkRequests: number }>
  > = { governor: [], vmagent: [], [ONE_THREAD]: [] }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [...targets, oneThread] : [oneThread, ...targets].reverse()
    for (const t of order) {
      const before = await sinkCounts(sink.url)
      const cpu0 = cpuSeconds(t.proc.child.pid)
      const sinkCpu0 = cpuSeconds(sink.proc.child.pid)
      const stopSampling = sampleRss(t)
      const r = await runWrk({
        url: t.url,
        script,
        connections: CONNECTIONS,
        threads: 1,
        durationS: SATURATION_S,
      })
      await stopSampling()
      const cpu = (cpuSeconds(t.proc.child.pid) - cpu0) / r.durationS
      const sinkCpu = (cpuSeconds(sink.proc.child.pid) - sinkCpu0) / r.durationS
      const d = await drain(sink.url)
      sat[t.name]?.push({
        ...r,
        cpu,
        sinkCpu,
        drainMs: d.ms,
        sinkRequests: d.counts.requests - before.requests,
      })
      console.error(
        `prw saturation ${t.name}: ${si(r.okPerS * SERIES_PER_REQUEST)} dp/s, cpu ${cpu.toFixed(2)}`,
      )
    }
  }
  // The same saturation with twice the connections (governor and vmagent), interleaved.
  const sat16: Record<string, Array<WrkResult & { cpu: number }>> = { governor: [], vmagent: [] }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse()
    for (const t of order) {
      const cpu0 = cpuSeconds(t.proc.child.pid)
      const stopSampling = sampleRss(t)
      const r = await runWrk({
        url: t.url,
        script,
        connections: CONNECTIONS * 2,
        threads: 1,
        durationS: SATURATION_S,
      })
      await stopSampling()
      sat16[t.name]?.push({ ...r, cpu: (cpuSeconds(t.proc.child.pid) - cpu0) / r.durationS })
      await drain(sink.url)
      console.error(
        `prw saturation -c${CONNECTIONS * 2} ${t.name}: ${si(r.okPerS * SERIES_PER_REQUEST)} dp/s`,
      )
    }
  }
  const sat16Median = (name: string, f: (r: WrkResult & { cpu: number }) => number) =>
    median((sat16[name] ?? []).map(f))
  const gov16 = sat16Median("governor", (r) => r.okPerS * SERIES_PER_REQUEST)
  const vm16 = sat16Median("vmagent", (r) => r.okPerS * SERIES_PER_REQUEST)
  /** Non-2xx answers of the governor at saturation, both connection counts, as a share of its answers. */
  const govAnswers = [...(sat.governor ?? []), ...(sat16.governor ?? [])]
  const non2xxShare =
    govAnswers.reduce((n, r) => n + r.statusErrors, 0) /
    Math.max(
      1,
      govAnswers.reduce((n, r) => n + r.requests, 0),
    )

  const satMedian = (
    name: string,
    f: (r: WrkResult & { cpu: number; sinkCpu: number; drainMs: number }) => number,
  ) => median((sat[name] ?? []).map(f))
  const govDps = satMedian("governor", (r) => r.okPerS * SERIES_PER_REQUEST)
  const vmDps = satMedian("vmagent", (r) => r.okPerS * SERIES_PER_REQUEST)
  const ratioRuns = (sat.governor ?? []).map(
    (g, i) => (g.okPerS / ((sat.vmagent ?? [])[i]?.okPerS ?? Number.NaN)) as number,
  )

  // Fixed rate, interleaved: half the lower saturation rate, so both keep up.
  const rate = Math.max(10, Math.floor((Math.min(govDps, vmDps) / SERIES_PER_REQUEST) * 0.5))
  const fixed: Record<string, Array<{ p50: number; p99: number; failed: number; ok: number }>> = {
    governor: [],
    vmagent: [],
  }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse()
    for (const t of order) {
      const r = await fixedRate({
        url: t.url,
        bodies,
        headers: PRW_HEADERS,
        ratePerS: rate,
        durationS: FIXED_S,
        connections: 16,
      })
      fixed[t.name]?.push({
        p50: percentile(r.latencies, 50),
        p99: percentile(r.latencies, 99),
        failed: r.failed,
        ok: r.ok,
      })
      await drain(sink.url)
    }
  }
  const fixedMedian = (name: string, f: (r: { p50: number; p99: number }) => number) =>
    median((fixed[name] ?? []).map(f))

  const govRss = rssBytes(gov.proc.child.pid)
  const vmRss = rssBytes(vm.child.pid)
  await stopProcess(gov0.proc)
  await stopProcess(gov.proc)
  await stopProcess(vm)

  // One CPU profile of the governor at saturation.
  const profDir = path.join(dir, "profile")
  fs.mkdirSync(profDir)
  const profPort = await freePort()
  const prof = await startGovernor(
    "governor (profiled)",
    [
      "-prw-listen",
      `127.0.0.1:${profPort}`,
      "-prw-exporter-endpoint",
      sinkWrite,
      "-limits-config",
      limitsFile,
    ],
    ["--cpu-prof", `--cpu-prof-dir=${profDir}`],
  )
  const profUrl = `http://127.0.0.1:${profPort}/api/v1/write`
  await runWrk({ url: profUrl, script, connections: CONNECTIONS, threads: 1, durationS: 2 })
  const profRun = await runWrk({
    url: profUrl,
    script,
    connections: CONNECTIONS,
    threads: 1,
    durationS: PROFILE_S,
  })
  await stopProcess(prof.proc, 15_000)
  await stopProcess(sink.proc)
  // One profile per thread (CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile): thread 0 is the main one.
  const profFiles = fs.readdirSync(profDir).filter((f) => f.endsWith(".cpuprofile"))
  const profFile = profFiles.find((f) => f.split(".")[4] === "0")
  const workerFile = profFiles.find((f) => f.split(".")[4] !== "0")
  const workerProfile =
    workerFile === undefined ? undefined : summarizeProfile(path.join(profDir, workerFile))
  const profile = profFile === undefined ? undefined : summarizeProfile(path.join(profDir, profFile))
  fs.rmSync(dir, { recursive: true, force: true })

  const md: Array<string> = []
  md.push("## 2. Remote write end to end: governor vs vmagent")
  md.push("")
  md.push(
    `Both relay to the same sink (\`bench/sink.ts\`: node:http, 204 without decoding, in its own process). ` +
      `The governor runs with one rule (\`max_cardinality: 10000\`, \`action: drop\`) and its defaults: buffer and exporter settings, and ` +
      `\`receivers.decode_threads\` = one thread per core, at most 4 (here ${defaultDecodeThreads()}: ` +
      "bodies are decompressed and scanned in that many worker threads, the limits enforced on the main thread); " +
      `vmagent \`-remoteWrite.maxHourlySeries=10000\` with its defaults. A third server, the same governor with ` +
      "`receivers.decode_threads: 0` (decoding on the main thread), joins the saturation rounds. " +
      `Load: ${BODIES} prepared snappy bodies of ` +
      `${SERIES_PER_REQUEST.toLocaleString("en")} series with one sample each (${(BODIES * SERIES_PER_REQUEST).toLocaleString("en")} ` +
      "distinct series in all, under both limits: nothing is dropped), sent round robin. " +
      `Saturation: \`wrk -t1 -c${CONNECTIONS}\` for ${SATURATION_S} s per run, ${ROUNDS} interleaved rounds (order alternating); ` +
      "datapoints/s = 2xx requests/s × 1,000; non-2xx answers (the governor's 503 when its export buffer is full) are not counted " +
      "as throughput but are in wrk's latencies. Every run is followed by a wait until the sink is quiet (the relay kept up when that is short). " +
      "CPU = CPU seconds of the process per second of the run (from /proc; 1.0 = one core). " +
      "All three servers run all the time; only one is loaded at a time. wrk, the sink and the server share the machine's cores.",
  )
  md.push("")
  md.push(
    "| run | server | datapoints/s | wrk p50 | wrk p99 | non-2xx | server CPU (cores) | sink CPU | sink quiet after |",
  )
  md.push("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
  for (let i = 0; i < ROUNDS; i++) {
    for (const name of ["governor", "vmagent", ONE_THREAD]) {
      const r = sat[name]?.[i]
      if (r === undefined) continue
      md.push(
        `| ${i + 1} | ${name} | ${si(r.okPerS * SERIES_PER_REQUEST)} | ${ms(r.p50)} | ${ms(r.p99)} | ${r.statusErrors} | ${r.cpu.toFixed(2)} | ${r.sinkCpu.toFixed(2)} | ${r.drainMs} ms |`,
      )
    }
  }
  md.push("")
  const satRatio = govDps / vmDps
  md.push(
    `**Saturation throughput, median: governor ${si(govDps)} datapoints/s, vmagent ${si(vmDps)} datapoints/s: ratio ${ratio(satRatio)}** ` +
      `(per-round ratios ${ratioRuns.map((x) => ratio(x)).join(", ")}). ` +
      `Target ≥ 0.5× vmagent: **${satRatio >= 0.5 ? "met" : "not met"}**. ` +
      `Server CPU at saturation (median): governor ${satMedian("governor", (r) => r.cpu).toFixed(2)} cores, vmagent ${satMedian("vmagent", (r) => r.cpu).toFixed(2)} cores. ` +
      `RSS (sampled every 100 ms during the saturation runs; idle before them; after them): governor peak ${mib(peakRss.governor ?? 0)}, idle ${mib(idleRss.governor)}, after ${mib(govRss)}; ` +
      `vmagent peak ${mib(peakRss.vmagent ?? 0)}, idle ${mib(idleRss.vmagent)}, after ${mib(vmRss)}. ` +
      `Target peak ≤ 256 MiB: **${(peakRss.governor ?? 0) <= 256 * 2 ** 20 ? "met" : "not met"}**.`,
  )
  md.push("")
  const perMillion = (cores: number, dps: number) => (cores / (dps / 1e6)).toFixed(2)
  md.push(
    `**CPU per datapoint:** governor ${perMillion(
      satMedian("governor", (r) => r.cpu),
      govDps,
    )} CPU seconds per million datapoints, ` +
      `vmagent ${perMillion(
        satMedian("vmagent", (r) => r.cpu),
        vmDps,
      )} (medians of the saturation runs above).`,
  )
  md.push("")
  md.push(
    `**With \`-c${CONNECTIONS * 2}\`** (the same load with twice the connections, ${ROUNDS} interleaved rounds): governor ` +
      `${si(gov16)} datapoints/s, vmagent ${si(vm16)}: ratio ${ratio(gov16 / vm16)} ` +
      `(per round ${(sat16.governor ?? []).map((g, i) => ratio(g.okPerS / ((sat16.vmagent ?? [])[i]?.okPerS ?? Number.NaN))).join(", ")}). ` +
      `Non-2xx answers of the governor with the fast sink, both connection counts: ${govAnswers.reduce((n, r) => n + r.statusErrors, 0)} of ` +
      `${govAnswers.reduce((n, r) => n + r.requests, 0)} (${(non2xxShare * 100).toFixed(2)}%; target < 1%: ` +
      `**${non2xxShare < 0.01 ? "met" : "not met"}**).`,
  )
  md.push("")
  const oneDps = satMedian(ONE_THREAD, (r) => r.okPerS * SERIES_PER_REQUEST)
  md.push(
    `**Decoding threads, measured in the same rounds:** the governor with \`receivers.decode_threads: 0\` (everything on the ` +
      `main thread) relays ${si(oneDps)} datapoints/s at ${satMedian(ONE_THREAD, (r) => r.cpu).toFixed(2)} cores; with the default ` +
      `${si(govDps)} at ${satMedian("governor", (r) => r.cpu).toFixed(2)} cores: ${ratio(govDps / oneDps)} the throughput.`,
  )
  md.push("")
  md.push(
    `Fixed rate (open loop, node generator of \`bench/lib.ts\`, up to 16 connections, latency from each request's due time): ` +
      `${rate} requests/s = ${si(rate * SERIES_PER_REQUEST)} datapoints/s (half the lower saturation rate), ${FIXED_S} s per run, ${ROUNDS} interleaved rounds.`,
  )
  md.push("")
  md.push("| server | p50 (median of runs) | p99 (median of runs) | failed requests |")
  md.push("|---|---:|---:|---:|")
  for (const name of ["governor", "vmagent"]) {
    md.push(
      `| ${name} | ${ms(fixedMedian(name, (r) => r.p50))} | ${ms(fixedMedian(name, (r) => r.p99))} | ${(fixed[name] ?? []).reduce((n, r) => n + r.failed, 0)} |`,
    )
  }
  md.push("")
  const p99Ratio = fixedMedian("governor", (r) => r.p99) / fixedMedian("vmagent", (r) => r.p99)
  md.push(`p99 ratio governor / vmagent at the fixed rate: ${ratio(p99Ratio)}.`)
  md.push("")
  if (profile !== undefined) {
    md.push(
      `### What bounds the governor (CPU profile)\n\nOne run of ${PROFILE_S} s at saturation under \`node --cpu-prof\` ` +
        `(${si(profRun.okPerS * SERIES_PER_REQUEST)} datapoints/s while profiled; the whole process life, startup and a 2 s warm-up included; the main thread was idle ` +
        `${(profile.idleShare * 100).toFixed(1)}% of the samples). Self time of the main thread, top functions ` +
        "(paths are the built `dist/` files; `(native / V8)` includes GC and native code such as snappy):",
    )
    md.push("")
    md.push("| self time | function | where |")
    md.push("|---:|---|---|")
    for (const f of profile.functions.slice(0, 15)) {
      md.push(`| ${(f.share * 100).toFixed(1)}% | \`${f.name}\` | ${f.where} |`)
    }
    md.push("")
    md.push("By file:")
    md.push("")
    md.push("| self time | file |")
    md.push("|---:|---|")
    for (const f of profile.files.slice(0, 12)) md.push(`| ${(f.share * 100).toFixed(1)}% | ${f.where} |`)
    md.push("")
  }
  if (workerProfile !== undefined) {
    md.push(
      `The decoding thread in the same run (idle ${(workerProfile.idleShare * 100).toFixed(1)}% of its samples), top functions by self time:`,
    )
    md.push("")
    md.push("| self time | function | where |")
    md.push("|---:|---|---|")
    for (const f of workerProfile.functions.slice(0, 8)) {
      md.push(`| ${(f.share * 100).toFixed(1)}% | \`${f.name}\` | ${f.where} |`)
    }
    md.push("")
  }
  return {
    area: "prw",
    markdown: md.join("\n"),
    targets: [
      {
        area: "2. remote write",
        target: "≥ 0.5× vmagent's throughput",
        measured: `${ratio(satRatio)} (${si(govDps)} vs ${si(vmDps)} datapoints/s)`,
        met: satRatio >= 0.5,
      },
      {
        area: "2. remote write",
        target: `≥ 0.5× vmagent's throughput at -c${CONNECTIONS * 2}`,
        measured: `${ratio(gov16 / vm16)} (${si(gov16)} vs ${si(vm16)} datapoints/s)`,
        met: gov16 / vm16 >= 0.5,
      },
      {
        area: "2. remote write",
        target: "< 1% non-2xx answers with a fast sink",
        measured: `${(non2xxShare * 100).toFixed(2)}%`,
        met: non2xxShare < 0.01,
      },
      {
        area: "2. remote write",
        target: "peak RSS ≤ 256 MiB at saturation",
        measured: `${mib(peakRss.governor ?? 0)} (vmagent ${mib(peakRss.vmagent ?? 0)})`,
        met: (peakRss.governor ?? 0) <= 256 * 2 ** 20,
      },
    ],
    data: {
      governorDps: govDps,
      vmagentDps: vmDps,
      ratio: satRatio,
      governorDps16: gov16,
      vmagentDps16: vm16,
      non2xxShare,
      governorCpu: satMedian("governor", (r) => r.cpu),
      oneThreadDps: oneDps,
      oneThreadCpu: satMedian(ONE_THREAD, (r) => r.cpu),
      workerIdle: workerProfile?.idleShare,
      vmagentCpu: satMedian("vmagent", (r) => r.cpu),
      fixedRate: rate,
      governorRss: govRss,
      vmagentRss: vmRss,
      governorPeakRss: peakRss.governor ?? 0,
      governorIdleRss: idleRss.governor,
      vmagentPeakRss: peakRss.vmagent ?? 0,
      p99Ratio,
      profileTop: profile?.functions.slice(0, 15),
      profileFiles: profile?.files.slice(0, 12),
      profileIdle: profile?.idleShare,
    },
  }
}

areaMain(import.meta.url, run)
