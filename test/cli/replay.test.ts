import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { MAIN, ROOT, tempDir } from "../support/governor.js"

/** `replay` on event logs written by hand: the time bound of `--verify`, size bounds, streaming. */

let dirs: Array<string> = []
afterEach(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
  dirs = []
})

const dir = (): string => {
  const d = tempDir("mg-replay-")
  dirs.push(d)
  return d
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex")

const replay = (
  args: ReadonlyArray<string>,
  nodeArgs: ReadonlyArray<string> = [],
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeArgs, MAIN, "replay", ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    })
    let stdout = ""
    let stderr = ""
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      // Keep the tail only: a long history is not the point of these tests.
      stdout = (stdout + c).slice(-20_000)
    })
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr = (stderr + c).slice(-20_000)
    })
    child.on("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

/** Writes a log of `events` (seq and paths filled in) and the snapshots named by `snapshots`. */
const writeLog = (
  d: string,
  events: ReadonlyArray<Record<string, unknown>>,
  snapshots: ReadonlyArray<string>,
): string => {
  const log = path.join(d, "events.jsonl")
  fs.mkdirSync(`${log}.snapshots`, { recursive: true })
  for (const s of snapshots) fs.writeFileSync(path.join(`${log}.snapshots`, `${sha256(s)}.yaml`), s)
  fs.writeFileSync(
    log,
    events
      .map((e, i) => JSON.stringify({ seq: i + 1, limits_path: "limits.yaml", config_path: null, ...e }))
      .join("\n")
      .concat("\n"),
  )
  return log
}

const GOOD = "rules:\n  - name: a\n    max_cardinality: 10\n"
/** Applied once, rejected by today's code (a key that no longer exists). */
const NOW_BAD = "rules:\n  - name: a\n    max_cardinality: 10\n    retired_key: 1\n"

const applied = (at: string, version: number, limits: string) => ({
  at,
  type: "ConfigApplied",
  trigger: "sighup",
  version,
  limits_sha256: sha256(limits),
  config_sha256: "",
  rules_count: 1,
  dry_run: false,
})

describe("replay", () => {
  it("--verify with --at re-validates the configs recorded up to that time only", async () => {
    const d = dir()
    const log = writeLog(
      d,
      [
        { at: "2026-01-01T00:00:00.000Z", type: "Started", pid: 1 },
        applied("2026-01-01T00:00:01.000Z", 1, GOOD),
        applied("2026-01-01T01:00:00.000Z", 2, NOW_BAD),
      ],
      [GOOD, NOW_BAD],
    )
    const early = await replay([log, "--verify", "--at", "2026-01-01T00:30:00Z"])
    expect(early.stdout).toContain("active at 2026-01-01T00:30:00Z: version=1")
    expect(early.stdout).toContain("verify: ok")
    expect(early.code).toBe(0)
    const late = await replay([log, "--verify", "--at", "2026-01-01T02:00:00Z"])
    expect(late.stdout).toContain("active at 2026-01-01T02:00:00Z: version=2")
    expect(late.stdout).toContain("DIVERGENCE seq 3: version 2 was applied, now rejected")
    expect(late.code).toBe(1)
  }, 30_000)

  it("--verify does not decode a snapshot over -config-max-bytes: it is rejected, as recorded", async () => {
    const d = dir()
    const huge = `${GOOD}# ${"x".repeat(9 * 1024 * 1024)}\n`
    const log = writeLog(
      d,
      [
        { at: "2026-01-01T00:00:00.000Z", type: "Started", pid: 1 },
        applied("2026-01-01T00:00:01.000Z", 1, GOOD),
        {
          at: "2026-01-01T00:00:02.000Z",
          type: "ReloadRejected",
          trigger: "sighup",
          version: 1,
          limits_sha256: sha256(huge),
          config_sha256: "",
          error: { message: "limits.yaml: the config decoder failed: out of memory", issues: [] },
        },
      ],
      [GOOD, huge],
    )
    const r = await replay([log, "--verify"])
    expect(r.stdout).toContain("verify: ok")
    expect(r.code).toBe(0)
  }, 30_000)

  it("streams a long log: memory does not grow with the log (130 MB of events)", async () => {
    const d = dir()
    const log = path.join(d, "events.jsonl")
    const fd = fs.openSync(log, "w")
    const n = 40_000
    let chunk = `${JSON.stringify({ seq: 1, at: "2026-01-01T00:00:00.000Z", type: "Started", pid: 1, limits_path: null, config_path: null })}\n`
    for (let i = 0; i < n; i++) {
      const message = `limits.yaml:1:1: ${i} ${"y".repeat(1_500)}`
      chunk += `${JSON.stringify({
        seq: i + 2,
        at: "2026-01-01T00:00:01.000Z",
        type: "ReloadRejected",
        trigger: "sighup",
        version: 0,
        limits_sha256: "",
        config_sha256: "",
        limits_path: "limits.yaml",
        config_path: null,
        error: { message, issues: [{ file: "limits.yaml", line: 1, column: 1, path: "", message }] },
      })}\n`
      if (chunk.length > 1 << 20) {
        fs.writeSync(fd, chunk)
        chunk = ""
      }
    }
    fs.writeSync(fd, chunk)
    fs.closeSync(fd)
    expect(fs.statSync(log).size).toBeGreaterThan(100 * 1024 * 1024)
    const head = path.join(d, "head.jsonl")
    fs.writeFileSync(head, fs.readFileSync(log, "utf8").split("\n").slice(0, 100).join("\n").concat("\n"))
    // The peak resident set of the replay process, written as it exits.
    const peak = [
      "--import",
      'data:text/javascript,process.on("exit",()=>process.stderr.write("maxrss_kb="+process.resourceUsage().maxRSS+"\\n"))',
    ]
    const rss = (stderr: string) => Number(/maxrss_kb=(\d+)/.exec(stderr)?.[1])
    const small = await replay([head], peak)
    const r = await replay([log], peak, 120_000)
    expect(r.stdout).toContain(`reloads: applied=0 unchanged=0 rejected=${n} runs=1`)
    expect(r.code).toBe(0)
    const growthMb = (rss(r.stderr) - rss(small.stderr)) / 1024
    console.log(
      `replay of ${n} events: peak RSS ${rss(r.stderr)} kB, ${growthMb.toFixed(0)} MB over a 100-line log`,
    )
    expect(growthMb).toBeLessThan(64)
  }, 180_000)
})
