/**
 * Area 5: reload latency.
 *
 * - SIGHUP → the new version visible at `GET /api/v1/status/config`, for limits files of 10, 100,
 *   1,000 and 10,000 rules (one governor each, **default flags**), and beside them a governor of
 *   100 rules with `-reload-debounce 0s -reload-watch=false` (how much of the latency is the
 *   debounce and the watch). Before each
 *   signal the limits file is replaced (atomic rename) by a new content: one rule's
 *   `max_cardinality` changed to a value not used before (`editedLimits`), so every reload applies
 *   and none finds a content it has seen. SIGHUPs are spaced 80 ms apart (start to start; back to
 *   back when a reload takes longer); the status endpoint is polled back to back on one keep-alive
 *   connection by a lean poller (`RawPoller`: requests written as bytes, answers parsed by hand).
 * - Beside it, Prometheus with a trivial config: SIGHUP → a new value of
 *   `prometheus_config_last_reload_success_timestamp_seconds` on its /metrics, polled back to back,
 *   with the same spacing.
 * - The watcher: limits file replaced (atomic rename) → new version, 100 rules, `-reload-debounce 50ms`.
 *
 * Reloads are interleaved in blocks across all targets, and bounded in count and in time per block.
 * `node --import tsx bench/reload.ts` (BENCH_QUICK=1 for a short run).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { parseDocument } from "yaml"
import { decodeLimits } from "../src/config/decode.js"
import {
  type AreaResult,
  areaMain,
  freePort,
  httpGet,
  median,
  metricSum,
  ms,
  type Proc,
  percentile,
  QUICK,
  RawPoller,
  ROOT,
  ratio,
  sleep,
  startGovernor,
  startProcess,
  stopProcess,
  tempDir,
  waitHttpOk,
} from "./lib.js"

const SIZES = [10, 100, 1_000, 10_000] as const
const RELOADS = QUICK ? 40 : 200
/**
 * Reloads of the targets the SIGHUP target is judged by (100 rules with default flags, Prometheus,
 * the floor): enough that their p99 (nearest rank) rests on the 7 slowest of 600, not on the 3
 * slowest of 200.
 */
const KEY_RELOADS = QUICK ? 80 : 600
/** Which slowest sample the p99 of `n` is (nearest rank): 1 for the slowest. */
const tailRank = (n: number): number => n - Math.ceil(0.99 * n) + 1
/** SIGHUPs are sent this far apart (start to start), to every target. */
const SPACING_MS = 80
const BLOCKS = 4
/** Longest time one target may take for one block of reloads. */
const BLOCK_BUDGET_MS = QUICK ? 3_000 : 15_000
const WATCH_RELOADS = QUICK ? 6 : 30
/** Quiet time before each target's block of reloads. */
const SETTLE_MS = 1_000
const FLOOR_NAME = "node, a process that only counts SIGHUPs (the floor of this measurement)"
const WATCH_DEBOUNCE_MS = 50

/** A limits file of `n` rules; `variant` changes every limit, so the two variants always differ. */
export const limitsOf = (n: number, variant: 0 | 1): string => {
  const out: Array<string> = ["rules:"]
  for (let i = 0; i < n; i++) {
    out.push(
      `  - name: rule-${i}\n    match:\n      metric_name: "svc${i}_.*"\n      labels: { env: "*" }\n` +
        `    max_cardinality: ${5000 + variant}\n    action: drop`,
    )
  }
  return `${out.join("\n")}\n`
}

/**
 * The `edit`-th content of a limits file of `n` rules: every rule as in `limitsOf(n, 0)` but rule
 * `edit % n`, whose `max_cardinality` is `5001 + edit`. Consecutive edits always differ, and no
 * content repeats: what an operator's successive edits of one rule look like.
 */
export const editedLimits = (n: number, edit: number): string => {
  const out: Array<string> = ["rules:"]
  for (let i = 0; i < n; i++) {
    out.push(
      `  - name: rule-${i}\n    match:\n      metric_name: "svc${i}_.*"\n      labels: { env: "*" }\n` +
        `    max_cardinality: ${i === edit % n ? 5001 + edit : 5000}\n    action: drop`,
    )
  }
  return `${out.join("\n")}\n`
}

/** Replaces `file` atomically (write a temporary file, rename it over). */
export const replaceFile = (file: string, text: string): void => {
  const tmp = `${file}.tmp-${process.pid}`
  fs.writeFileSync(tmp, text)
  fs.renameSync(tmp, file)
}

const statusVersion = async (statsUrl: string): Promise<number> =>
  (JSON.parse((await httpGet(`${statsUrl}/api/v1/status/config`)).body) as { version: number }).version

interface Target {
  readonly name: string
  readonly proc: Proc
  /** One reload: returns its latency in ms. */
  readonly reload: () => Promise<number>
  readonly latencies: Array<number>
  /** Time of one poll of the endpoint that shows the outcome (ms), sampled. */
  readonly pollMs: Array<number>
}

/**
 * Sends SIGHUP to `pid`, then reads the outcome with `read` back to back until `seen` holds: the
 * time from the signal to the read that saw it (ms), and what that read returned. Every read's own
 * time goes to `pollMs` (the first 2,000).
 */
const signalAndPoll = async <A>(
  name: string,
  pid: number,
  read: () => Promise<A>,
  seen: (a: A) => boolean,
  pollMs: Array<number>,
): Promise<{ readonly ms: number; readonly value: A }> => {
  const t0 = performance.now()
  process.kill(pid, "SIGHUP")
  const deadline = t0 + 60_000
  for (;;) {
    const p0 = performance.now()
    const value = await read()
    const p1 = performance.now()
    if (pollMs.length < 2_000) pollMs.push(p1 - p0)
    if (seen(value)) return { ms: p1 - t0, value }
    if (p1 > deadline) throw new Error(`${name}: no reload seen after 60 s`)
  }
}

const governorTarget = async (
  dir: string,
  rules: number,
  extraFlags: ReadonlyArray<string>,
  label: string,
): Promise<Target & { statsUrl: string }> => {
  // A directory of its own, as a deployment has: another target's writes are no events for its watch.
  const own = path.join(dir, `governor-${rules}${extraFlags.length > 0 ? "-flags" : ""}`)
  fs.mkdirSync(own, { recursive: true })
  const file = path.join(own, "limits.yaml")
  fs.writeFileSync(file, editedLimits(rules, 0))
  let edit = 0
  const g = await startGovernor(`governor (${rules} rules${label})`, ["-limits-config", file, ...extraFlags])
  let version = await statusVersion(g.statsUrl)
  const poller = new RawPoller(g.statsUrl)
  const polledVersion = async () =>
    (JSON.parse(await poller.get("/api/v1/status/config")) as { version: number }).version
  const target = {
    name: `metrics-governor, ${rules.toLocaleString("en")} rules${label}`,
    proc: g.proc,
    statsUrl: g.statsUrl,
    latencies: [] as Array<number>,
    pollMs: [] as Array<number>,
    reload: async () => {
      replaceFile(file, editedLimits(rules, ++edit))
      const want = version + 1
      const seen = await signalAndPoll(
        target.name,
        g.proc.child.pid as number,
        polledVersion,
        (v) => v >= want,
        target.pollMs,
      )
      version = seen.value
      return seen.ms
    },
  }
  return target
}

const RELOAD_METRIC = "prometheus_config_last_reload_success_timestamp_seconds"

const prometheusTarget = async (dir: string): Promise<Target> => {
  const file = path.join(dir, "prometheus.yml")
  const variants = ["global:\n  scrape_interval: 15s\n", "global:\n  scrape_interval: 16s\n"] as const
  fs.writeFileSync(file, variants[0])
  const port = await freePort()
  const proc = startProcess("prometheus", "prometheus", [
    `--config.file=${file}`,
    `--storage.tsdb.path=${path.join(dir, "prometheus-data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=error",
  ])
  const url = `http://127.0.0.1:${port}`
  await waitHttpOk("prometheus /-/ready", `${url}/-/ready`, proc, 30_000)
  const poller = new RawPoller(url)
  const stamp = async () => metricSum(await poller.get("/metrics"), RELOAD_METRIC)
  let last = await stamp()
  let n = 0
  const target: Target = {
    name: "Prometheus (trivial config)",
    proc,
    latencies: [],
    pollMs: [],
    reload: async () => {
      replaceFile(file, variants[++n % 2] as string)
      const seen = await signalAndPoll(
        "prometheus",
        proc.child.pid as number,
        stamp,
        (s) => s !== last,
        target.pollMs,
      )
      last = seen.value
      return seen.ms
    },
  }
  return target
}

/**
 * The floor of the measurement: a Node.js process that only counts SIGHUPs and shows the count as
 * `version` (`bench/sighup-floor.mjs`), signalled and polled exactly as the governor is.
 */
const floorTarget = async (): Promise<Target> => {
  const port = await freePort()
  const proc = startProcess("node floor", process.execPath, [
    path.join(ROOT, "bench/sighup-floor.mjs"),
    String(port),
  ])
  const url = `http://127.0.0.1:${port}`
  await waitHttpOk("node floor", `${url}/api/v1/status/config`, proc, 30_000)
  const poller = new RawPoller(url)
  const polledVersion = async () =>
    (JSON.parse(await poller.get("/api/v1/status/config")) as { version: number }).version
  let version = await polledVersion()
  const target: Target = {
    name: FLOOR_NAME,
    proc,
    latencies: [],
    pollMs: [],
    reload: async () => {
      const want = version + 1
      const seen = await signalAndPoll(
        "node floor",
        proc.child.pid as number,
        polledVersion,
        (v) => v >= want,
        target.pollMs,
      )
      version = seen.value
      return seen.ms
    },
  }
  return target
}

const run = async (): Promise<AreaResult> => {
  const dir = tempDir("mg-bench-reload-")
  const targets: Array<Target & { statsUrl?: string; rules?: number; noDebounce?: boolean; key?: boolean }> =
    []
  // The reported targets run with default flags; the one with the flags of earlier runs
  // (`-reload-debounce 0s -reload-watch=false`) shows the share of the debounce and the watch.
  for (const rules of SIZES) targets.push({ ...(await governorTarget(dir, rules, [], "")), rules })
  targets.push({
    ...(await governorTarget(
      dir,
      100,
      ["-reload-debounce", "0s", "-reload-watch=false"],
      ", `-reload-debounce 0s -reload-watch=false`",
    )),
    rules: 100,
    noDebounce: true,
  })
  targets.push({ ...(await prometheusTarget(dir)), key: true })
  targets.push({ ...(await floorTarget()), key: true })
  for (const t of targets) if (t.rules === 100 && t.noDebounce !== true) t.key = true
  const wanted = (t: { key?: boolean }) => (t.key === true ? KEY_RELOADS : RELOADS)

  // Interleaved blocks: every target does its share of reloads in each block, bounded in time.
  for (let block = 0; block < BLOCKS; block++) {
    for (const t of block % 2 === 0 ? targets : [...targets].reverse()) {
      const perBlock = Math.ceil(wanted(t) / BLOCKS)
      // What the previous target left running (its last books, a collection) ends before this one starts.
      await sleep(SETTLE_MS)
      const start = performance.now()
      for (let i = 0; i < perBlock && t.latencies.length < wanted(t); i++) {
        const r0 = performance.now()
        t.latencies.push(await t.reload())
        if (performance.now() - start > BLOCK_BUDGET_MS) break
        const wait = r0 + SPACING_MS - performance.now()
        if (wait > 0) await sleep(wait)
      }
      console.error(`reload ${t.name}: ${t.latencies.length} reloads, p50 ${ms(median(t.latencies))}`)
    }
  }
  // The governor's own account of each reload (trigger to decision), from its last 100 attempts.
  const internal: Record<string, number> = {}
  for (const t of targets) {
    if (t.statsUrl === undefined) continue
    const body = JSON.parse((await httpGet(`${t.statsUrl}/api/v1/status/reloads`)).body) as {
      reloads: Array<{ status: string; trigger: string; duration_seconds: number }>
    }
    const d = body.reloads.filter((r) => r.trigger === "sighup").map((r) => r.duration_seconds * 1000)
    internal[t.name] = median(d)
  }
  for (const t of targets) await stopProcess(t.proc)

  // The watcher: atomic rename → new version, 100 rules, -reload-debounce 50ms.
  const wfile = path.join(dir, "watched", "limits.yaml")
  fs.mkdirSync(path.dirname(wfile))
  const wvariants = [limitsOf(100, 0), limitsOf(100, 1)] as const
  fs.writeFileSync(wfile, wvariants[0])
  const w = await startGovernor("governor (watch)", [
    "-limits-config",
    wfile,
    "-reload-debounce",
    `${WATCH_DEBOUNCE_MS}ms`,
  ])
  await sleep(500)
  let wversion = await statusVersion(w.statsUrl)
  const watchLat: Array<number> = []
  const watchDeadline = performance.now() + (QUICK ? 10_000 : 30_000)
  for (let i = 0; i < WATCH_RELOADS && performance.now() < watchDeadline; i++) {
    replaceFile(wfile, wvariants[wversion % 2] as string)
    const t0 = performance.now()
    const want = wversion + 1
    for (;;) {
      const v = await statusVersion(w.statsUrl)
      if (v >= want) {
        wversion = v
        watchLat.push(performance.now() - t0)
        break
      }
      if (performance.now() - t0 > 10_000) throw new Error("watch: no new version after 10 s")
    }
    await sleep(WATCH_DEBOUNCE_MS * 3) // quiet spell: each change is its own reload
  }
  await stopProcess(w.proc)
  fs.rmSync(dir, { recursive: true, force: true })

  // Where a reload's time goes: decoding the limits file in this process (same code as a reload:
  // YAML parse, schema, rule compilation), beside the YAML parse alone. Bounded: 10 runs or 10 s.
  const inProcess: Array<{ rules: number; decode: number; yaml: number; runs: number }> = []
  for (const rules of SIZES) {
    const text = Buffer.from(limitsOf(rules, 0))
    decodeLimits("limits.yaml", text)
    // Each run decodes a new content (one rule edited), as each reload above does.
    const edits = Array.from({ length: 10 }, (_, i) => Buffer.from(editedLimits(rules, 1_000_000 + i)))
    const decode: Array<number> = []
    const yaml: Array<number> = []
    const until = performance.now() + (QUICK ? 3_000 : 10_000)
    for (let i = 0; i < 10 && performance.now() < until; i++) {
      const t0 = performance.now()
      decodeLimits("limits.yaml", edits[i] as Buffer)
      const t1 = performance.now()
      parseDocument(text.toString("utf8"))
      yaml.push(performance.now() - t1)
      decode.push(t1 - t0)
    }
    inProcess.push({ rules, decode: median(decode), yaml: median(yaml), runs: decode.length })
  }

  const prom = targets.find((t) => t.name.startsWith("Prometheus")) as Target
  const floor = targets.find((t) => t.name === FLOOR_NAME) as Target
  const floorP99 = percentile(floor.latencies, 99)
  const promP50 = median(prom.latencies)
  const promP99 = percentile(prom.latencies, 99)
  const md: Array<string> = []
  md.push("## 5. Reload latency")
  md.push("")
  md.push(
    "**SIGHUP → new version visible.** One governor per size, started together, each with its limits file in a directory of its own (as in a deployment: another target's writes are no events for its watch), with **default flags** (so " +
      "`-reload-debounce 250ms` and `-reload-watch` on), and a governor of 100 rules with `-reload-debounce 0s -reload-watch=false` " +
      "(the flags of earlier runs) beside them; " +
      "before each SIGHUP the limits file is atomically replaced by a new content: one rule's `max_cardinality` set to a value " +
      "not used before, as successive edits of one rule look, so every reload applies and no content repeats. " +
      `SIGHUPs are ${SPACING_MS} ms apart (start to start; back to back when a reload takes longer). ` +
      "Latency = from `kill(pid, SIGHUP)` to the first `GET /api/v1/status/config` that shows the next " +
      "`version`, polled back to back on one keep-alive connection by a lean poller (requests written as bytes, answers parsed by hand: no HTTP client between the measurement and the server; Prometheus is polled the same way). Rules are an anchored regex, a label condition and a limit each. " +
      `Prometheus ${"(Debian's package)"} with a trivial config (two variants of \`scrape_interval\`, alternated) in the same rounds and spacing: ` +
      `SIGHUP → a new value of \`${RELOAD_METRIC}\` on \`/metrics\`, polled back to back. ` +
      "Beside them, **the floor of the measurement**: a Node.js process that does nothing but count SIGHUPs and answer the same " +
      "`GET /api/v1/status/config` with the count as `version` (`bench/sighup-floor.mjs`), signalled and polled the same way: " +
      "what the signal's delivery, the event loop's turn and the polls cost on this machine, with no reload at all. " +
      `Up to ${RELOADS} reloads per target (${KEY_RELOADS} for the three the target is judged by: 100 rules with default flags, Prometheus and the floor, so that their p99 (nearest rank) has ${tailRank(KEY_RELOADS) - 1} slower reloads above it rather than ${tailRank(RELOADS) - 1}) in ${BLOCKS} interleaved blocks, each block bounded to ${BLOCK_BUDGET_MS / 1000} s per target ` +
      `(so the largest files get fewer reloads: see n) and started after ${SETTLE_MS / 1000} s of quiet, so that what the previous target left running (its last books, a collection) is not counted against the next. ` +
      '"Governor\'s own duration" is the median `duration_seconds` of its SIGHUP ' +
      "attempts (`/api/v1/status/reloads`): from the trigger's arrival in the pipeline to the decision (debounce wait, files read, decoded, decided), " +
      "so it leaves out the signal's delivery, the swap and the poll. " +
      '"One poll" is the time of one request to the endpoint that shows the outcome: the resolution of the measurement.',
  )
  md.push("")
  md.push(
    "| target | n | p50 | p99 | max | ratio p50 to Prometheus | governor's own duration (p50) | one poll (p50) |",
  )
  md.push("|---|---:|---:|---:|---:|---:|---:|---:|")
  for (const t of targets) {
    md.push(
      `| ${t.name} | ${t.latencies.length} | ${ms(median(t.latencies))} | ${ms(percentile(t.latencies, 99))} | ${ms(Math.max(...t.latencies))} | ` +
        `${ratio(median(t.latencies) / promP50)} | ${internal[t.name] === undefined ? "—" : ms(internal[t.name] as number)} | ${ms(median(t.pollMs))} |`,
    )
  }
  md.push("")
  const hundred = targets.find((t) => t.rules === 100 && t.noDebounce !== true) as Target
  const hundred0 = targets.find((t) => t.noDebounce === true) as Target
  const p99at100 = percentile(hundred.latencies, 99)
  const sighupMet = p99at100 <= 5
  md.push(
    `Target p99 ≤ 5 ms at 100 rules, default flags: **${sighupMet ? "met" : "not met"}** (p50 ${ms(median(hundred.latencies))}, ` +
      `p99 ${ms(p99at100)}, max ${ms(Math.max(...hundred.latencies))}; with \`-reload-debounce 0s -reload-watch=false\`: p50 ${ms(median(hundred0.latencies))}, ` +
      `p99 ${ms(percentile(hundred0.latencies, 99))}, max ${ms(Math.max(...hundred0.latencies))}; ` +
      `Prometheus p50 ${ms(promP50)}, p99 ${ms(promP99)}, max ${ms(Math.max(...prom.latencies))}; ` +
      `the floor, a process that only counts SIGHUPs: p50 ${ms(median(floor.latencies))}, p99 ${ms(floorP99)}, max ${ms(Math.max(...floor.latencies))}).`,
  )
  md.push("")
  md.push(
    "Where the time goes: `decodeLimits` (what a reload runs: the fast YAML path, which parses the rules list item by item and " +
      "reuses the items whose text is unchanged, schema validation, rule compilation; " +
      "each run a new content with one rule edited, so the other rules' parses, decodes and compiled forms come from the caches that " +
      "every reload shares, as after any earlier reload of the file; on the main thread for files up to 96 KiB, about 800 rules, in a worker thread above) timed in the " +
      "benchmark process, medians, beside the full YAML parser alone (`yaml`'s `parseDocument`, which gives positions and which " +
      "files with errors or unusual YAML go through). `node --import tsx bench/reload-stages.ts` gives every stage of one reload:",
  )
  md.push("")
  md.push("| rules | decodeLimits | full YAML parser alone (timed separately) | runs |")
  md.push("|---:|---:|---:|---:|")
  for (const r of inProcess) {
    md.push(`| ${r.rules.toLocaleString("en")} | ${ms(r.decode)} | ${ms(r.yaml)} | ${r.runs} |`)
  }
  md.push("")
  const wp50 = median(watchLat)
  const wp99 = percentile(watchLat, 99)
  const watchMet = wp99 <= 100
  md.push(
    `**Watcher: file replaced (atomic rename) → new version.** 100 rules, **\`-reload-debounce ${WATCH_DEBOUNCE_MS}ms\`** (the default is 250 ms, ` +
      `and the watch waits for one debounce of quiet after the last event, so with the default expect about 200 ms more), ` +
      `${watchLat.length} changes ${WATCH_DEBOUNCE_MS * 3} ms apart: p50 ${ms(wp50)}, p99 ${ms(wp99)}, max ${ms(Math.max(...watchLat))}. ` +
      `Target ≤ 100 ms after the write: **${watchMet ? "met" : "not met"}**.`,
  )
  md.push("")
  return {
    area: "reload",
    markdown: md.join("\n"),
    targets: [
      {
        area: "5. reload (SIGHUP)",
        target: "p99 ≤ 5 ms at 100 rules",
        measured: `p99 ${ms(p99at100)} (Prometheus p99 ${ms(promP99)}; a process that only counts SIGHUPs p99 ${ms(floorP99)})`,
        met: sighupMet,
      },
      {
        area: "5. reload (watch)",
        target: "≤ 100 ms after the write (-reload-debounce 50ms)",
        measured: `p99 ${ms(wp99)}, p50 ${ms(wp50)}`,
        met: watchMet,
      },
    ],
    data: {
      sighup: Object.fromEntries(
        targets.map((t) => [
          t.name,
          { p50: median(t.latencies), p99: percentile(t.latencies, 99), n: t.latencies.length },
        ]),
      ),
      watch: { p50: wp50, p99: wp99 },
      inProcess,
    },
  }
}

areaMain(import.meta.url, run)
