import { execFileSync, spawnSync } from "node:child_process"
import { afterEach, describe, expect, it } from "vitest"
import { type Governor, runCli, startGovernor, waitFor } from "../support/governor.js"

const EXAMPLES = ["-config", "deploy/examples/config.yaml", "-limits-config", "deploy/examples/limits.yaml"]

let running: Array<Governor> = []
afterEach(async () => {
  await Promise.all(running.map((g) => g.stop()))
  running = []
})
const start = async (...args: Parameters<typeof startGovernor>) => {
  const g = await startGovernor(...args)
  running.push(g)
  return g
}

const canUnshare = (): { ok: true } | { ok: false; reason: string } => {
  const r = spawnSync("unshare", ["--pid", "--fork", "--mount-proc", "true"], { encoding: "utf8" })
  if (r.error !== undefined) return { ok: false, reason: `unshare not available: ${r.error.message}` }
  return r.status === 0 ? { ok: true } : { ok: false, reason: `unshare failed: ${r.stderr.trim()}` }
}

describe("the governor as a process", () => {
  it("serves /metrics, /live and /ready, shows as metrics-governor, and exits 0 within 2 s of SIGTERM", async () => {
    const g = await start({ args: EXAMPLES })
    expect((await g.get("/live")).status).toBe(200)
    expect((await g.get("/ready")).status).toBe(200)
    const metrics = await g.metrics()
    expect(metrics).toContain("metrics_governor_config_version 1")
    expect(metrics).toContain("metrics_governor_limits_rules 5")
    expect(metrics).toContain(
      'metrics_governor_config_reload_attempts_total{trigger="startup",result="applied"} 1',
    )
    expect(execFileSync("pidof", ["metrics-governor"], { encoding: "utf8" }).split(/\s+/)).toContain(
      String(g.pid),
    )
    expect(execFileSync("pgrep", ["-f", "metrics-governor"], { encoding: "utf8" }).split(/\s+/)).toContain(
      String(g.pid),
    )
    const startup = g.logs.find((l) => l.message === "limits config reloaded successfully")
    expect(startup?.level).toBe("info")
    expect(startup?.fields.rules_count).toBe(5)

    const sent = Date.now()
    g.signal("SIGTERM")
    const exit = await g.waitForExit(2_000)
    expect(exit.code).toBe(0)
    expect(exit.at - sent).toBeLessThan(2_000)
  })

  it("exits 0 on SIGINT", async () => {
    const g = await start({ args: EXAMPLES })
    g.signal("SIGINT")
    expect((await g.waitForExit(2_000)).code).toBe(0)
  })

  it("survives SIGHUP (it reloads; it never terminates)", async () => {
    const g = await start({ args: EXAMPLES })
    for (let i = 0; i < 3; i++) g.signal("SIGHUP")
    await waitFor("a SIGHUP log line", () =>
      g.logs.some((l) => l.message === "received SIGHUP, reloading limits config") ? true : undefined,
    )
    expect(g.exit).toBeUndefined()
    expect((await g.get("/live")).status).toBe(200)
  })

  it("exits 1 with validate's message when the startup config is invalid", async () => {
    const bad = "test/fixtures/broken/typo-max-cardinality.limits.yaml"
    const g = await start({ args: ["-limits-config", bad], waitReady: false })
    const exit = await g.waitForExit(5_000)
    expect(exit.code).toBe(1)
    const v = await runCli(["validate", "-limits-config", bad])
    expect(v.code).toBe(1)
    const firstLine = v.stderr.split("\n")[0] as string
    expect(firstLine).toBe(
      `${bad}:5:5: rules[0].max_cardinalty: unknown key "max_cardinalty" (did you mean "max_cardinality"?)`,
    )
    expect(g.stderr).toContain(firstLine)
    expect(g.logs.find((l) => l.level === "error")?.message).toBe(
      "limits config reload failed, keeping current config",
    )
  })

  it("exits 2 with a usage hint on an unknown flag", async () => {
    const r = await runCli(["-no-such-flag"])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("flag provided but not defined: -no-such-flag")
    expect(r.stderr).toContain("metrics-governor --help")
  })

  it("exits 2 on an exporter endpoint that is not an http(s) URL", async () => {
    const r = await runCli([
      "-prw-exporter-endpoint",
      "127.0.0.1:9090/api/v1/write",
      "-stats-addr",
      "127.0.0.1:0",
    ])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('invalid URL "127.0.0.1:9090/api/v1/write" for flag -prw-exporter-endpoint')
  })

  it("--help lists every flag with its default", async () => {
    const r = await runCli(["--help"])
    expect(r.code).toBe(0)
    for (const [flag, def] of [
      ["-config", "none"],
      ["-limits-config", "none"],
      ["-limits-dry-run", "false"],
      ["-grpc-listen", ":4317"],
      ["-http-listen", ":4318"],
      ["-prw-listen", ":9091"],
      ["-stats-addr", ":9090"],
      ["-exporter-endpoint", "none"],
      ["-prw-exporter-endpoint", "none"],
      ["-reload-watch", "true"],
      ["-reload-poll-interval", "0s"],
      ["-reload-trigger-file", "none"],
      ["-reload-http", "false"],
      ["-reload-auth-token-file", "none"],
      ["-reload-debounce", "250ms"],
      ["-reload-event-log", "none"],
      ["-log-level", "info"],
    ] as const) {
      expect(r.stdout).toMatch(new RegExp(`  ${flag}( value| duration)?\\n.*\\(default ${def}\\)`))
    }
  })

  it("validate exits 0 with a one-line summary on the examples", async () => {
    const r = await runCli(["validate", ...EXAMPLES])
    expect(r.code).toBe(0)
    expect(r.stdout.trim().split("\n")).toHaveLength(1)
    expect(r.stdout).toMatch(
      /^ok: limits deploy\/examples\/limits.yaml: 5 rules, sha256 [0-9a-f]{64}; config /,
    )
  })

  const unshare = canUnshare()
  it.runIf(unshare.ok)("exits 0 on SIGTERM as PID 1 of its own PID namespace", async () => {
    // unshare --fork: the governor is PID 1 inside; `kill` from outside reaches it through unshare's pid.
    const g = await start({
      args: EXAMPLES,
      wrapper: ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"],
    })
    const inner = execFileSync("ps", ["-o", "pid=", "--ppid", String(g.pid)], { encoding: "utf8" }).trim()
    expect(inner).not.toBe("")
    // The real governor process (child of unshare); it is PID 1 in its namespace.
    const nspid = execFileSync("grep", ["NSpid", `/proc/${inner}/status`], { encoding: "utf8" })
    expect(nspid.trim().split(/\s+/).pop()).toBe("1")
    const sent = Date.now()
    process.kill(Number(inner), "SIGTERM")
    const exit = await g.waitForExit(2_000)
    expect(exit.code).toBe(0)
    expect(exit.at - sent).toBeLessThan(2_000)
    expect(g.logs.some((l) => l.message === "metrics-governor stopping")).toBe(true)
  })
  if (!unshare.ok) console.log(`skipping the PID 1 test: ${unshare.reason}`)
})
