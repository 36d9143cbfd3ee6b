/**
 * Shared helpers of the end-to-end benchmarks (`bench/run.ts` and the area files): statistics,
 * child processes that are always killed by PID, wrk runs with a JSON summary, an open-loop
 * fixed-rate HTTP load generator, a tight HTTP poller and the area-result contract.
 *
 * Every loop here is bounded in count and in time; every process is started on loopback.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { freePort } from "../test/support/ports.js"
import { PRW_HEADERS, prwBody, RELAY_BODIES, RELAY_LIMITS, RELAY_SERIES_PER_REQUEST } from "./payloads.js"

export { freePort }

export const ROOT = path.resolve(import.meta.dirname, "..")
/** The governor to run: `MG_BENCH_MAIN` (run.ts points it at a snapshot of dist/ taken after the build), else dist/main.js. */
export const MAIN = process.env.MG_BENCH_MAIN ?? path.join(ROOT, "dist/main.js")
/** The launcher that sizes the heap for the memory limit, as the container image starts the governor. */
export const LAUNCHER = process.env.MG_BENCH_LAUNCHER ?? path.join(ROOT, "bin/metrics-governor")
/** Short durations for development (`BENCH_QUICK=1`); the full run otherwise. */
export const QUICK = process.env.BENCH_QUICK === "1"

// ---------------------------------------------------------------------------------------------
// Statistics

export const sorted = (xs: ReadonlyArray<number>): Array<number> => [...xs].sort((a, b) => a - b)

/** Nearest-rank percentile (`p` in 0..100) of `xs`; NaN when empty. */
export const percentile = (xs: ReadonlyArray<number>, p: number): number => {
  if (xs.length === 0) return Number.NaN
  const s = sorted(xs)
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)))
  return s[rank - 1] as number
}

/**
 * A 95% interval of `percentile(b, p) / percentile(a, p)`: both samples resampled with replacement
 * `rounds` times (a seeded generator, so a run's figures can be computed again), the 2.5th and
 * 97.5th percentiles of the ratios. How far one run's ratio of two tail percentiles can be trusted.
 */
export const ratioInterval = (
  a: ReadonlyArray<number>,
  b: ReadonlyArray<number>,
  p: number,
  rounds = 1_000,
): { readonly low: number; readonly high: number } => {
  if (a.length === 0 || b.length === 0) return { low: Number.NaN, high: Number.NaN }
  let seed = 0x9e3779b9
  // mulberry32
  const random = (): number => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = seed
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const resample = (xs: ReadonlyArray<number>): Array<number> =>
    Array.from({ length: xs.length }, () => xs[Math.floor(random() * xs.length)] as number)
  const ratios = Array.from({ length: rounds }, () => percentile(resample(b), p) / percentile(resample(a), p))
  return { low: percentile(ratios, 2.5), high: percentile(ratios, 97.5) }
}

export const median = (xs: ReadonlyArray<number>): number => {
  if (xs.length === 0) return Number.NaN
  const s = sorted(xs)
  const m = s.length >> 1
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

/** `1234567` → `1.23M`, `12345` → `12.3k`. */
export const si = (x: number, digits = 3): string => {
  if (!Number.isFinite(x)) return String(x)
  const a = Math.abs(x)
  if (a >= 1e9) return `${(x / 1e9).toPrecision(digits)}G`
  if (a >= 1e6) return `${(x / 1e6).toPrecision(digits)}M`
  if (a >= 1e3) return `${(x / 1e3).toPrecision(digits)}k`
  return x.toPrecision(digits)
}

/** Bytes in MiB, as memory targets are stated. */
export const mib = (bytes: number): string =>
  Number.isFinite(bytes) ? `${(bytes / 2 ** 20).toFixed(0)} MiB` : "n/a"

export const ms = (x: number): string =>
  Number.isFinite(x) ? (x >= 100 ? `${x.toFixed(0)} ms` : `${x.toPrecision(3)} ms`) : "n/a"

export const ratio = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : "n/a")

export const sleep = (msec: number) => new Promise<void>((r) => setTimeout(r, msec))

// ---------------------------------------------------------------------------------------------
// Area results

export interface TargetResult {
  readonly area: string
  readonly target: string
  readonly measured: string
  readonly met: boolean
  /** When not met: the gap and its cause. */
  readonly note?: string
}

/** What an area file writes to its `--out` file for `bench/run.ts`. */
export interface AreaResult {
  readonly area: string
  /** Markdown of the area's section (starts with a `##` heading). */
  readonly markdown: string
  readonly targets: ReadonlyArray<TargetResult>
  /** Anything `run.ts` needs from this area to render other parts (e.g. profile summaries). */
  readonly data?: Record<string, unknown>
}

/** Runs `main` when the file is executed directly and writes its result to `--out FILE` (or stdout). */
export const areaMain = (url: string, main: () => Promise<AreaResult>): void => {
  if (process.argv[1] === undefined || path.resolve(process.argv[1]) !== new URL(url).pathname) return
  const outIdx = process.argv.indexOf("--out")
  const out = outIdx >= 0 ? process.argv[outIdx + 1] : undefined
  installCleanup()
  main()
    .then(async (result) => {
      await killAll()
      const text = JSON.stringify(result, null, 2)
      if (out !== undefined) fs.writeFileSync(out, text)
      else console.log(result.markdown)
      process.exit(0)
    })
    .catch(async (e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : String(e))
      await killAll()
      process.exit(1)
    })
}

// ---------------------------------------------------------------------------------------------
// Processes

const children = new Set<ChildProcess>()

export interface Proc {
  readonly child: ChildProcess
  readonly name: string
  output: string
  readonly exited: Promise<number | null>
  exitCode: number | null | undefined
}

/** Starts a child process, tracked so that `killAll` ends it by its PID. Output is kept (bounded). */
export const startProcess = (
  name: string,
  cmd: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv } = {},
): Proc => {
  const child = spawn(cmd, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  })
  children.add(child)
  const proc: Proc = {
    child,
    name,
    output: "",
    exitCode: undefined,
    exited: new Promise((resolve) =>
      child.once("exit", (code) => {
        children.delete(child)
        proc.exitCode = code
        resolve(code)
      }),
    ),
  }
  const keep = (chunk: Buffer) => {
    // Keep the last 64 kB: enough to report why something failed, bounded under load.
    proc.output = (proc.output + chunk.toString("utf8")).slice(-65_536)
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  return proc
}

/** Ends one process by its PID: SIGTERM, then SIGKILL after `graceMs`. */
export const stopProcess = async (proc: Proc, graceMs = 5_000): Promise<void> => {
  if (proc.exitCode !== undefined) return
  proc.child.kill("SIGTERM")
  const done = await Promise.race([proc.exited.then(() => true), sleep(graceMs).then(() => false)])
  if (!done) {
    proc.child.kill("SIGKILL")
    await Promise.race([proc.exited, sleep(2_000)])
  }
}

export const killAll = async (): Promise<void> => {
  for (const c of [...children]) {
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  }
  await sleep(50)
}

let cleanupInstalled = false
/** Kills every tracked child when this process is interrupted or exits. */
export const installCleanup = (): void => {
  if (cleanupInstalled) return
  cleanupInstalled = true
  const kill = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  }
  process.on("exit", kill)
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      kill()
      process.exit(130)
    })
  }
}

export const tempDir = (prefix = "mg-bench-"): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix))

// ---------------------------------------------------------------------------------------------
// HTTP

const pollAgent = new http.Agent({ keepAlive: true, maxSockets: 4 })

/** GET `url` on a keep-alive agent; resolves with status and body (rejects after `timeoutMs`). */
export const httpGet = (url: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const req = http.get(url, { agent: pollAgent, timeout: timeoutMs }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (c: string) => {
        body += c
      })
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
      res.on("error", reject)
    })
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)))
    req.on("error", reject)
  })

/**
 * A lean poller: one keep-alive connection, requests written as bytes and answers parsed by hand
 * (`Content-Length` or chunked), with no HTTP client between the measurement and the server. What a
 * latency measured by polling back to back resolves to is one round trip; this keeps the client's
 * own share of it (and its garbage) small. One request at a time.
 */
export class RawPoller {
  private socket: net.Socket | undefined
  private buf: Buffer = Buffer.alloc(0)
  private waiting: { resolve: (body: string) => void; reject: (e: Error) => void } | undefined
  private readonly url: URL

  constructor(base: string) {
    this.url = new URL(base)
  }

  /** The connection, opened again when the server closed it (an idle keep-alive connection). */
  private connection(): net.Socket {
    if (this.socket !== undefined && !this.socket.destroyed) return this.socket
    const socket = net.connect(Number(this.url.port), this.url.hostname)
    socket.setNoDelay(true)
    this.buf = Buffer.alloc(0)
    socket.on("data", (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
      this.answer()
    })
    const fail = (e: Error) => {
      if (this.socket === socket) this.socket = undefined
      const w = this.waiting
      this.waiting = undefined
      w?.reject(e)
    }
    socket.on("error", fail)
    socket.on("close", () => fail(new Error(`${this.url.origin}: connection closed`)))
    this.socket = socket
    return socket
  }

  /**
   * GET `path`: the body of a 200 answer (any other status is an error). Sent again once on a new
   * connection when the first attempt fails (the server may close an idle connection just then).
   */
  get(path: string): Promise<string> {
    return this.once(path).catch(() => this.once(path))
  }

  private once(path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject }
      this.connection().write(`GET ${path} HTTP/1.1\r\nHost: ${this.url.host}\r\n\r\n`)
    })
  }

  close(): void {
    this.socket?.destroy()
  }

  private answer(): void {
    const head = this.buf.indexOf("\r\n\r\n")
    if (head < 0 || this.waiting === undefined) return
    const headers = this.buf.subarray(0, head).toString("latin1")
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(headers)?.[1])
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(headers)
    let body: string
    let end: number
    if (length !== null) {
      end = head + 4 + Number(length[1])
      if (this.buf.length < end) return
      body = this.buf.subarray(head + 4, end).toString("utf8")
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(headers)) {
      const parts: Array<Buffer> = []
      let at = head + 4
      for (;;) {
        const line = this.buf.indexOf("\r\n", at)
        if (line < 0) return
        const size = Number.parseInt(this.buf.subarray(at, line).toString("latin1"), 16)
        if (this.buf.length < line + 2 + size + 2) return
        if (size === 0) {
          end = line + 4
          break
        }
        parts.push(this.buf.subarray(line + 2, line + 2 + size))
        at = line + 2 + size + 2
      }
      body = Buffer.concat(parts).toString("utf8")
    } else {
      throw new Error(`RawPoller: an answer with neither Content-Length nor chunked: ${headers}`)
    }
    this.buf = this.buf.subarray(end)
    const w = this.waiting
    this.waiting = undefined
    if (status === 200) w.resolve(body)
    else w.reject(new Error(`GET: HTTP ${status}`))
  }
}

/** Polls `check` until it returns a value, at most `timeoutMs`. */
export const waitFor = async <A>(
  what: string,
  check: () => Promise<A | undefined>,
  timeoutMs = 10_000,
  everyMs = 20,
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let v: A | undefined
    try {
      v = await check()
    } catch {
      v = undefined
    }
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

/** Waits until `url` answers 2xx. */
export const waitHttpOk = (what: string, url: string, proc?: Proc, timeoutMs = 15_000) =>
  waitFor(
    what,
    async () => {
      if (proc !== undefined && proc.exitCode !== undefined) {
        throw new Error(`${proc.name} exited (${proc.exitCode}): ${proc.output.slice(-2000)}`)
      }
      const r = await httpGet(url, 1_000)
      return r.status >= 200 && r.status < 300 ? true : undefined
    },
    timeoutMs,
    50,
  ).catch((e: unknown) => {
    throw new Error(`${e instanceof Error ? e.message : String(e)}; ${proc?.output.slice(-2000) ?? ""}`)
  })

/** The sum of the samples of `name` whose label text contains every `labels` pair, on a /metrics page. */
export const metricSum = (text: string, name: string, labels: ReadonlyArray<string> = []): number => {
  let sum = 0
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue
    const rest = line.slice(name.length)
    if (!(rest.startsWith("{") || rest.startsWith(" "))) continue
    if (!labels.every((l) => rest.includes(l))) continue
    const v = Number(
      rest
        .slice(rest.lastIndexOf(rest.startsWith("{") ? "}" : " ") + 1)
        .trim()
        .split(" ")[0],
    )
    if (Number.isFinite(v)) sum += v
  }
  return sum
}

// ---------------------------------------------------------------------------------------------
// The governor and the sink

/**
 * Starts the governor with the given flags (all receivers off unless given) and waits for /ready:
 * through the launcher, as the container image and the `metrics-governor` command start it (the
 * heap's start size set), or, with `nodeFlags` (a profiler), as `node NODE_FLAGS dist/main.js`.
 */
export const startGovernor = async (
  name: string,
  flags: ReadonlyArray<string>,
  nodeFlags: ReadonlyArray<string> = [],
): Promise<{ proc: Proc; statsUrl: string }> => {
  const statsPort = await freePort()
  const args = [
    ...(nodeFlags.length > 0 ? [...nodeFlags, MAIN] : []),
    "-stats-addr",
    `127.0.0.1:${statsPort}`,
    "-grpc-listen",
    "",
    "-prw-listen",
    "",
    "-http-listen",
    "",
    "-log-level",
    "warn",
    ...flags,
  ]
  const proc = startProcess(name, nodeFlags.length > 0 ? process.execPath : LAUNCHER, args)
  const statsUrl = `http://127.0.0.1:${statsPort}`
  await waitHttpOk(`${name} /ready`, `${statsUrl}/ready`, proc, 30_000)
  return { proc, statsUrl }
}

export interface SinkCounts {
  readonly requests: number
  readonly bytes: number
  readonly datapoints: number
  readonly errors: number
}

/** Starts `bench/sink.ts` in its own process: 204 to every POST; `decode` counts remote-write datapoints. */
export const startSink = async (
  decode: "none" | "prw",
): Promise<{ proc: Proc; url: string; port: number }> => {
  const port = await freePort()
  const proc = startProcess("sink", process.execPath, [
    "--import",
    "tsx",
    path.join(ROOT, "bench/sink.ts"),
    String(port),
    decode,
  ])
  const url = `http://127.0.0.1:${port}`
  await waitHttpOk("sink", `${url}/count`, proc)
  return { proc, url, port }
}

export const sinkCounts = async (url: string): Promise<SinkCounts> =>
  JSON.parse((await httpGet(`${url}/count`)).body) as SinkCounts

// ---------------------------------------------------------------------------------------------
// wrk

export interface WrkResult {
  readonly requests: number
  readonly durationS: number
  /** Answers that were not 2xx/3xx. */
  readonly statusErrors: number
  readonly socketErrors: number
  /** Successful requests per second. */
  readonly okPerS: number
  /** Latency percentiles, ms. */
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
}

/**
 * Writes a wrk Lua script that POSTs the given bodies round robin (each thread starts at another
 * one) with `headers`, and prints a JSON summary line in `done`.
 */
export const writeWrkScript = (
  dir: string,
  bodies: ReadonlyArray<Uint8Array>,
  headers: Readonly<Record<string, string>>,
): string => {
  const files = bodies.map((b, i) => {
    const f = path.join(dir, `body-${i}.bin`)
    fs.writeFileSync(f, b)
    return f
  })
  const lua = `
local files = { ${files.map((f) => JSON.stringify(f)).join(", ")} }
local headers = { ${Object.entries(headers)
    .map(([k, v]) => `[${JSON.stringify(k)}] = ${JSON.stringify(v)}`)
    .join(", ")} }
local reqs = {}
local idx = 0
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("start", counter)
end
function init(args)
  for i, f in ipairs(files) do
    local fh = assert(io.open(f, "rb"))
    local body = fh:read("*all")
    fh:close()
    reqs[i] = wrk.format("POST", wrk.path, headers, body)
  end
  idx = (start or 0) % #reqs
end
function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"status":%d,"socket":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`
  const script = path.join(dir, "post.lua")
  fs.writeFileSync(script, lua)
  return script
}

/** Runs wrk against `url` and returns its summary. */
export const runWrk = async (options: {
  readonly url: string
  readonly script: string
  readonly connections: number
  readonly threads: number
  readonly durationS: number
}): Promise<WrkResult> => {
  const proc = startProcess("wrk", "wrk", [
    "-t",
    String(options.threads),
    "-c",
    String(options.connections),
    "-d",
    `${options.durationS}s`,
    "--timeout",
    "10s",
    "-s",
    options.script,
    options.url,
  ])
  const code = await Promise.race([proc.exited, sleep((options.durationS + 30) * 1000).then(() => "timeout")])
  if (code === "timeout") {
    await stopProcess(proc)
    throw new Error(`wrk did not finish: ${proc.output}`)
  }
  const line = proc.output.split("\n").find((l) => l.startsWith("WRKJSON "))
  if (line === undefined) throw new Error(`wrk printed no summary (exit ${code}): ${proc.output}`)
  const j = JSON.parse(line.slice(8)) as Record<string, number>
  const requests = j.requests as number
  const durationS = (j.duration_us as number) / 1e6
  const statusErrors = j.status as number
  return {
    requests,
    durationS,
    statusErrors,
    socketErrors: j.socket as number,
    okPerS: (requests - statusErrors) / durationS,
    p50: (j.p50 as number) / 1000,
    p90: (j.p90 as number) / 1000,
    p99: (j.p99 as number) / 1000,
    max: (j.max as number) / 1000,
  }
}

export interface H2loadResult {
  /** Requests answered (any status), and those whose HTTP status was not 2xx. */
  readonly requests: number
  readonly statusErrors: number
  readonly durationS: number
  /** Per-request latency from h2load's log, ms. */
  readonly p50: number
  readonly p99: number
}

/**
 * gRPC load with h2load (Debian's `nghttp2-client`, written in C): `streams` calls in flight on
 * one HTTP/2 connection for `durationS` seconds, each the same unary call whose request is
 * `message` (framed here: the 5-byte gRPC prefix). h2load sees HTTP statuses only; the gRPC status
 * is in the trailers, so callers count what the server accepted from its own metrics.
 */
export const runH2loadGrpc = async (options: {
  readonly url: string
  readonly message: Uint8Array
  readonly streams: number
  readonly durationS: number
  readonly dir: string
}): Promise<H2loadResult> => {
  const n = options.message.byteLength
  const framed = Buffer.concat([
    Buffer.from([0, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]),
    options.message,
  ])
  const bodyFile = path.join(options.dir, `h2load-${n}.bin`)
  if (!fs.existsSync(bodyFile)) fs.writeFileSync(bodyFile, framed)
  const logFile = path.join(options.dir, "h2load.log")
  fs.rmSync(logFile, { force: true })
  const t0 = performance.now()
  const proc = startProcess("h2load", "h2load", [
    "-c",
    "1",
    "-m",
    String(options.streams),
    "-D",
    String(options.durationS),
    "-d",
    bodyFile,
    "-H",
    "content-type: application/grpc",
    "-H",
    "te: trailers",
    `--log-file=${logFile}`,
    options.url,
  ])
  const code = await Promise.race([proc.exited, sleep((options.durationS + 30) * 1000).then(() => "timeout")])
  const durationS = (performance.now() - t0) / 1000
  if (code === "timeout") {
    await stopProcess(proc)
    throw new Error(`h2load did not finish: ${proc.output}`)
  }
  if (code !== 0) throw new Error(`h2load failed (exit ${code}): ${proc.output}`)
  // One line per request: start (µs since the epoch), HTTP status, µs to the end of the response.
  const lines = fs
    .readFileSync(logFile, "utf8")
    .split("\n")
    .filter((l) => l.length > 0)
  const latencies: Array<number> = []
  let statusErrors = 0
  for (const line of lines) {
    const [, status, us] = line.split("\t")
    if (!/^2/.test(status ?? "")) statusErrors++
    latencies.push(Number(us) / 1000)
  }
  return {
    requests: lines.length,
    statusErrors,
    durationS,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  }
}

// ---------------------------------------------------------------------------------------------
// Open-loop fixed-rate load

export interface FixedRateResult {
  readonly sent: number
  readonly ok: number
  readonly failed: number
  /** Datapoints in requests answered 2xx. */
  readonly okDatapoints: number
  /** Latency of each finished request from its scheduled start (includes queueing: no coordinated omission), ms. */
  readonly latencies: Array<number>
  /** Status codes / errors of failed requests, counted. */
  readonly failures: Record<string, number>
  readonly durationS: number
}

/**
 * Sends `ratePerS` POSTs per second for `durationS` seconds over at most `connections` keep-alive
 * connections, round robin over `bodies`. Latency is measured from when each request was due, so a
 * slow server is charged for the requests that had to wait. Stops waiting for stragglers after 10 s.
 */
export const fixedRate = async (options: {
  readonly url: string
  readonly bodies: ReadonlyArray<{ readonly body: Uint8Array; readonly datapoints: number }>
  readonly headers: Readonly<Record<string, string>>
  readonly ratePerS: number
  readonly durationS: number
  readonly connections: number
  /** The phase a request belongs to, asked when it is sent. */
  readonly phaseOf?: () => string
  /** Stop early (before `durationS`) once this returns true. */
  readonly until?: () => boolean
}): Promise<FixedRateResult & { readonly byPhase: Record<string, Array<number>> }> => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections })
  const u = new URL(options.url)
  const latencies: Array<number> = []
  const byPhase: Record<string, Array<number>> = {}
  const failures: Record<string, number> = {}
  let sent = 0
  let ok = 0
  let failed = 0
  let okDatapoints = 0
  let outstanding = 0
  const interval = 1000 / options.ratePerS
  const total = Math.floor(options.ratePerS * options.durationS)
  const t0 = performance.now()
  const fail = (why: string) => {
    failed++
    failures[why] = (failures[why] ?? 0) + 1
  }
  const send = (k: number) => {
    const due = t0 + k * interval
    const item = options.bodies[k % options.bodies.length] as { body: Uint8Array; datapoints: number }
    const phase = options.phaseOf?.() ?? "all"
    outstanding++
    sent++
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: "POST",
        agent,
        headers: { ...options.headers, "content-length": item.body.length },
        timeout: 10_000,
      },
      (res) => {
        res.resume()
        res.on("end", () => {
          outstanding--
          const lat = performance.now() - due
          const status = res.statusCode ?? 0
          if (status >= 200 && status < 300) {
            ok++
            okDatapoints += item.datapoints
            latencies.push(lat)
            let list = byPhase[phase]
            if (list === undefined) {
              list = []
              byPhase[phase] = list
            }
            list.push(lat)
          } else fail(`HTTP ${status}`)
        })
      },
    )
    req.on("timeout", () => req.destroy(new Error("timeout")))
    req.on("error", (e) => {
      outstanding--
      fail(e.message)
    })
    req.end(item.body)
  }
  await new Promise<void>((resolve) => {
    let k = 0
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - t0) / interval) + 1)
      while (k < due) send(k++)
      if (k >= total || options.until?.() === true) resolve()
      else setTimeout(tick, Math.max(0, Math.min(5, t0 + k * interval - performance.now())))
    }
    tick()
  })
  const durationS = (performance.now() - t0) / 1000
  const deadline = Date.now() + 10_000
  while (outstanding > 0 && Date.now() < deadline) await sleep(5)
  if (outstanding > 0) failures.unfinished = outstanding
  agent.destroy()
  return { sent, ok, failed: failed + outstanding, okDatapoints, latencies, failures, durationS, byPhase }
}

// ---------------------------------------------------------------------------------------------
// Machine

export const machine = async (): Promise<{ cpu: string; cores: number; ramGiB: number; node: string }> => {
  let cpu = os.cpus()[0]?.model ?? "unknown"
  try {
    const out = await new Promise<string>((resolve) => {
      const p = spawn("lscpu", [], { stdio: ["ignore", "pipe", "ignore"] })
      let s = ""
      p.stdout.on("data", (c: Buffer) => {
        s += c.toString()
      })
      p.on("close", () => resolve(s))
      p.on("error", () => resolve(""))
    })
    const m = /^Model name:\s*(.+)$/m.exec(out)
    if (m?.[1] !== undefined) cpu = m[1].trim()
  } catch {
    // keep os.cpus()
  }
  return { cpu, cores: os.cpus().length, ramGiB: os.totalmem() / 2 ** 30, node: process.version }
}

// ---------------------------------------------------------------------------------------------
// CPU

/** CPU seconds (user + system) a process has used so far, from /proc (0 when unavailable). */
export const cpuSeconds = (pid: number | undefined): number => {
  if (pid === undefined) return 0
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

/** Resident set size of a process, bytes (NaN when unavailable). */
export const rssBytes = (pid: number | undefined): number => {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m?.[1] === undefined ? Number.NaN : Number(m[1]) * 1024
  } catch {
    return Number.NaN
  }
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: { functionName: string; url: string; lineNumber: number }
  readonly children?: ReadonlyArray<number>
}

/**
 * Self time by function and by file of a V8 `.cpuprofile` (from `node --cpu-prof`): the share of
 * samples each function was on top of the stack.
 */
export const summarizeProfile = (
  file: string,
): {
  readonly totalMs: number
  readonly functions: Array<{ name: string; where: string; share: number }>
  readonly files: Array<{ where: string; share: number }>
  readonly idleShare: number
} => {
  const p = JSON.parse(fs.readFileSync(file, "utf8")) as {
    nodes: ReadonlyArray<ProfileNode>
    samples: ReadonlyArray<number>
    startTime: number
    endTime: number
  }
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const counts = new Map<number, number>()
  for (const s of p.samples) counts.set(s, (counts.get(s) ?? 0) + 1)
  const total = p.samples.length
  const fn = new Map<string, { name: string; where: string; n: number }>()
  const files = new Map<string, number>()
  let idle = 0
  const short = (url: string): string => {
    if (url === "") return "(native / V8)"
    let u = url.replace(/^file:\/\//, "")
    // The snapshot of dist/ that run.ts makes (node_modules/.cache/mg-bench/dist/…) is the governor's own code.
    const snap = u.indexOf("/.cache/mg-bench/dist/")
    if (snap >= 0) u = path.join(ROOT, u.slice(snap + "/.cache/mg-bench/".length))
    const nm = u.indexOf("node_modules/")
    if (nm >= 0) {
      const rest = u.slice(nm + 13).split("/")
      return `${rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]} (dependency)`
    }
    if (u.startsWith(ROOT)) return u.slice(ROOT.length + 1)
    return u
  }
  for (const [id, n] of counts) {
    const node = byId.get(id)
    if (node === undefined) continue
    const name = node.callFrame.functionName || "(anonymous)"
    if (name === "(idle)") idle += n
    const where = short(node.callFrame.url)
    const key = `${name}@${where}:${node.callFrame.lineNumber}`
    const e = fn.get(key) ?? { name, where: `${where}:${node.callFrame.lineNumber + 1}`, n: 0 }
    e.n += n
    fn.set(key, e)
    files.set(where, (files.get(where) ?? 0) + n)
  }
  return {
    totalMs: (p.endTime - p.startTime) / 1000,
    functions: [...fn.values()]
      .sort((a, b) => b.n - a.n)
      .map((e) => ({ name: e.name, where: e.where, share: e.n / total })),
    files: [...files.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([where, n]) => ({ where, share: n / total })),
    idleShare: idle / total,
  }
}

/** CPU seconds the whole machine has been busy (all cores, all processes), from /proc/stat. */
export const machineBusy = (): number => {
  try {
    const f = (fs.readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number)
    const total = f.slice(0, 8).reduce((n, x) => n + x, 0)
    return (total - (f[3] ?? 0) - (f[4] ?? 0)) / 100
  } catch {
    return Number.NaN
  }
}

/** CPU seconds of this process and of its children that ended (wrk runs), from /proc/self/stat. */
export const selfAndWrkCpu = (): number => {
  try {
    const stat = fs.readFileSync("/proc/self/stat", "utf8")
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // utime, stime, cutime, cstime: fields 14 to 17 of stat, 11 to 14 after the command name.
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100
  } catch {
    return Number.NaN
  }
}

/** Samples the RSS of `pid` every 100 ms until stopped; resolves with the highest value seen. */
export const samplePeak = (pid: number | undefined) => {
  let stop = false
  let peak = 0
  const done = (async () => {
    while (!stop) {
      peak = Math.max(peak, rssBytes(pid) || 0)
      await sleep(100)
    }
  })()
  return async () => {
    stop = true
    await done
    return peak
  }
}

/**
 * Waits until none of the sinks at `urls` has seen a new request for `quietMs` (at most `maxMs`);
 * returns how long that took.
 */
export const drainSinks = async (
  urls: ReadonlyArray<string>,
  maxMs: number,
  quietMs: number,
): Promise<number> => {
  const total = async () => {
    let n = 0
    for (const u of urls) n += (await sinkCounts(u)).requests
    return n
  }
  const t = Date.now()
  let last = await total()
  let quietSince = Date.now()
  while (Date.now() - t < maxMs) {
    await sleep(100)
    const now = await total()
    if (now !== last) {
      last = now
      quietSince = Date.now()
    } else if (Date.now() - quietSince >= quietMs) break
  }
  return quietSince - t
}

/**
 * The relay load of the end-to-end areas, prepared in a new temporary directory: the wrk script
 * that sends the `RELAY_BODIES` remote-write bodies (snappy-compressed, also returned) round robin,
 * and the limits file of the one rule (`RELAY_LIMITS`).
 */
export const relayFixture = (prefix: string) => {
  const dir = tempDir(prefix)
  const now = Date.now()
  const bodies = Array.from({ length: RELAY_BODIES }, (_, b) => prwBody(b, RELAY_SERIES_PER_REQUEST, now))
  const script = writeWrkScript(
    dir,
    bodies.map((b) => b.body),
    PRW_HEADERS,
  )
  const limitsFile = path.join(dir, "limits.yaml")
  fs.writeFileSync(limitsFile, RELAY_LIMITS)
  return { dir, bodies, script, limitsFile }
}
