import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { otlpSeries, postOtlp } from "../support/data-path.js"
import { freePort, type Governor, MAIN, ROOT, startGovernor, tempDir, waitFor } from "../support/governor.js"

/**
 * Files and sizes a reload must survive without stalling the process: a FIFO in place of the
 * limits file, a file far over the size bound, and a reload of tens of thousands of rules while
 * requests keep arriving.
 */

let running: Array<Governor> = []
let dirs: Array<string> = []
afterEach(async () => {
  await Promise.all(running.map((g) => g.stop()))
  running = []
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
  dirs = []
})

const start = async (args: ReadonlyArray<string>): Promise<Governor> => {
  const g = await startGovernor({ args })
  running.push(g)
  return g
}

const dir = (): string => {
  const d = tempDir("mg-hardening-")
  dirs.push(d)
  return d
}

const limitsYaml = (...names: ReadonlyArray<string>): string =>
  `rules:\n${names.map((n) => `  - name: ${n}\n    max_cardinality: 10\n    action: drop\n`).join("")}`

/** GET with a deadline: a blocked event loop shows as a timeout, not as a hung test. */
const timedGet = async (url: string, timeoutMs: number): Promise<{ status: number; ms: number }> => {
  const t0 = performance.now()
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  await res.text()
  return { status: res.status, ms: performance.now() - t0 }
}

/** Runs the CLI with a deadline (a blocked read would otherwise hang the test); kills it after. */
const runCliTimed = (
  args: ReadonlyArray<string>,
  timeoutMs: number,
  nodeArgs: ReadonlyArray<string> = [],
): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeArgs, MAIN, ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    })
    let stdout = ""
    let stderr = ""
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, timeoutMs)
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c
    })
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c
    })
    child.on("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, timedOut })
    })
  })

const QUIET = ["-reload-watch=false", "-reload-debounce", "0s"]

describe("a FIFO in place of a config file", () => {
  it("is refused with a typed error; /live keeps answering; a later good file is applied", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    fs.writeFileSync(limits, limitsYaml("a"))
    const g = await start(["-limits-config", limits, ...QUIET])

    fs.rmSync(limits)
    execFileSync("mkfifo", [limits])
    g.signal("SIGHUP")
    const failed = await waitFor(
      "the reload to be rejected",
      () => g.logs.find((l) => l.message === "limits config reload failed, keeping current config"),
      5_000,
    )
    expect(String(failed.fields.error)).toContain(`${limits}: cannot read: not a regular file (a FIFO)`)
    // The process still answers, quickly, while the FIFO is in place.
    for (let i = 0; i < 5; i++) {
      const live = await timedGet(`${g.url}/live`, 2_000)
      expect(live.status).toBe(200)
      expect(live.ms).toBeLessThan(1_000)
    }
    expect((await g.status()).version).toBe(1)

    fs.rmSync(limits)
    fs.writeFileSync(limits, limitsYaml("a", "b"))
    g.signal("SIGHUP")
    await g.waitForVersion(2)
    expect((await g.status()).rules_count).toBe(2)
  }, 20_000)

  it("validate refuses a FIFO at once, exit 1", async () => {
    const d = dir()
    const fifo = path.join(d, "limits.yaml")
    execFileSync("mkfifo", [fifo])
    const r = await runCliTimed(["validate", "-limits-config", fifo], 10_000)
    expect(r.timedOut).toBe(false)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`${fifo}: cannot read: not a regular file (a FIFO)`)
  }, 15_000)
})

describe("the config size bound (-config-max-bytes)", () => {
  it("rejects a limits file over the default bound before reading it; no snapshot is kept", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    const log = path.join(d, "events.jsonl")
    fs.writeFileSync(limits, limitsYaml("a"))
    const g = await start(["-limits-config", limits, "-reload-event-log", log, ...QUIET])
    const snapshots = fs.readdirSync(`${log}.snapshots`).length

    // Valid YAML (one rule and a long comment), 9 MiB: over the default 8 MiB.
    const big = `${limitsYaml("a", "b")}# ${"x".repeat(9 * 1024 * 1024)}\n`
    fs.writeFileSync(limits, big)
    const t0 = Date.now()
    g.signal("SIGHUP")
    const failed = await waitFor(
      "the reload to be rejected",
      () => g.logs.find((l) => l.message === "limits config reload failed, keeping current config"),
      5_000,
    )
    expect(Date.now() - t0).toBeLessThan(3_000)
    expect(String(failed.fields.error)).toBe(
      `${limits}: limits file is ${big.length} bytes, over the limit of 8388608 (-config-max-bytes)`,
    )
    expect((await g.status()).version).toBe(1)
    expect(fs.readdirSync(`${log}.snapshots`).length).toBe(snapshots)
  }, 20_000)

  it("-config-max-bytes sets the bound; validate applies it too", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    const text = limitsYaml("a", "b", "c")
    fs.writeFileSync(limits, text)
    const small = await runCliTimed(["validate", "-limits-config", limits, "-config-max-bytes", "32"], 10_000)
    expect(small.code).toBe(1)
    expect(small.stderr).toContain(
      `${limits}: limits file is ${text.length} bytes, over the limit of 32 (-config-max-bytes)`,
    )
    const kib = await runCliTimed(["validate", "-limits-config", limits, "-config-max-bytes", "1KiB"], 10_000)
    expect(kib.code).toBe(0)
  }, 20_000)
})

/** `n` rules, each with its own regex; `variant` changes every limit. */
const manyRules = (n: number, variant: number): string => {
  const out: Array<string> = ["rules:"]
  for (let i = 0; i < n; i++) {
    out.push(
      `  - name: rule-${i}\n    match:\n      metric_name: "svc${i}_.*"\n      labels: { env: "*" }\n` +
        `    max_cardinality: ${5000 + variant}\n    action: drop`,
    )
  }
  return `${out.join("\n")}\n`
}

describe("a large reload and the data path", () => {
  it("requests keep their latency while 20,000 rules are reloaded", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    fs.writeFileSync(limits, manyRules(20_000, 0))
    const port = await freePort()
    // Startup decodes 20,000 rules: longer than `startGovernor`'s own wait on a busy machine.
    const g = await startGovernor({
      args: ["-limits-config", limits, "-http-listen", `127.0.0.1:${port}`, ...QUIET],
      waitReady: false,
    })
    running.push(g)
    await waitFor(
      "the governor to be ready",
      async () => ((await g.get("/ready").catch(() => undefined))?.status === 200 ? true : undefined),
      60_000,
      100,
    )
    const body = otlpSeries("load_total", 5)
    for (let i = 0; i < 20; i++) expect((await postOtlp(port, body)).status).toBe(200)

    // New regexes too (a different pattern per rule), so the reload compiles every one of them.
    fs.writeFileSync(limits, manyRules(20_000, 1).replaceAll('_.*"', '_[a-z].*"'))
    let stop = false
    const latencies: Array<number> = []
    const startedAt: Array<number> = []
    const load = (async () => {
      const until = Date.now() + 60_000
      while (!stop && Date.now() < until && latencies.length < 5_000) {
        const t0 = performance.now()
        const r = await postOtlp(port, body)
        startedAt.push(t0)
        latencies.push(performance.now() - t0)
        expect(r.status).toBe(200)
        await new Promise((res) => setTimeout(res, 5))
      }
    })()
    await new Promise((res) => setTimeout(res, 200))
    const before = latencies.length
    const hup = performance.now()
    g.signal("SIGHUP")
    await g.waitForVersion(2, 60_000)
    const applied = performance.now() - hup
    await new Promise((res) => setTimeout(res, 200))
    stop = true
    await load
    const during = latencies.slice(before)
    expect(during.length).toBeGreaterThan(10)
    const max = Math.max(...latencies)
    const worst = latencies
      .map((l, i) => ({ l, at: (startedAt[i] as number) - hup }))
      .sort((a, b) => b.l - a.l)
      .slice(0, 5)
      .map((w) => `${w.l.toFixed(0)} ms at ${w.at.toFixed(0)}`)
    console.log(
      `20k-rule reload applied ${applied.toFixed(0)} ms after SIGHUP; ${latencies.length} requests, ${during.length} from SIGHUP on, max ${max.toFixed(1)} ms; worst: ${worst.join(", ")}`,
    )
    // Before sliced compilation the whole compile held the event loop: the slowest request took
    // 1.6-3.0 s (2.3 s elsewhere), half of the reload's duration. Sliced, it took
    // 180-340 ms on a shared 2-CPU machine at a load average of 7. Beside the rest of the suite, the
    // machine is so loaded that the reload takes 20-30 s, and a request can wait up to 1.5 s for a
    // CPU (while the decoder thread works and the main thread is idle); there the bound is a tenth
    // of the reload's duration, which the broken code fails as well.
    const bound = Math.max(1_000, applied / 10)
    console.log(
      `bound ${bound.toFixed(0)} ms; slowest request / reload duration = ${(max / applied).toFixed(3)}`,
    )
    expect(max).toBeLessThan(bound)
  }, 180_000)
})
