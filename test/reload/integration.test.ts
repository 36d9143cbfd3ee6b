import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { type Governor, runCli, sleep, startGovernor, tempDir, waitFor } from "../support/governor.js"

/**
 * The reload pipeline end to end: the built program runs as a child process on real files in real
 * temporary directories, and is driven the way operators and Kubernetes drive it.
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
  const d = tempDir("mg-reload-")
  dirs.push(d)
  return d
}

/** A valid limits file with one rule per name. */
const limitsYaml = (...names: ReadonlyArray<string>): string =>
  `rules:\n${names.map((n) => `  - name: ${n}\n    max_cardinality: 10\n    action: drop\n`).join("")}`

/** Cut off mid-key, as a half-written file looks: a YAML error at line 3, column 5. */
const TRUNCATED = "rules:\n  - name: a\n    max_card"

const configYaml = (dryRun: boolean, comment = ""): string =>
  `${comment === "" ? "" : `# ${comment}\n`}limits:\n  dry_run: ${dryRun}\n`

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex")

/** A labelled counter that was never incremented is absent from /metrics: read it as 0. */
const count = async (g: Governor, series: string): Promise<number> => (await g.metric(series)) ?? 0

const attempts = (g: Governor, trigger: string, result: string): Promise<number> =>
  count(g, `metrics_governor_config_reload_attempts_total{trigger="${trigger}",result="${result}"}`)

const waitForCount = (g: Governor, series: string, value: number, timeoutMs = 5_000): Promise<true> =>
  waitFor(
    `${series} = ${value}`,
    async () => ((await count(g, series)) === value ? true : undefined),
    timeoutMs,
  )

const waitForAttempts = (
  g: Governor,
  trigger: string,
  result: string,
  value: number,
  timeoutMs = 5_000,
): Promise<true> =>
  waitForCount(
    g,
    `metrics_governor_config_reload_attempts_total{trigger="${trigger}",result="${result}"}`,
    value,
    timeoutMs,
  )

interface Status {
  readonly version: number
  readonly limits_sha256: string
  readonly config_sha256: string
  readonly rules_count: number
  readonly dry_run: boolean
  readonly dry_run_source: string
  readonly loaded_at: string
  readonly trigger: string
}

const status = async (g: Governor): Promise<Status> =>
  (await (await g.get("/api/v1/status/config")).json()) as Status

interface Attempt {
  readonly status: string
  readonly trigger: string
  readonly coalesced: number
  readonly version: number
}

const reloads = async (g: Governor): Promise<ReadonlyArray<Attempt>> =>
  ((await (await g.get("/api/v1/status/reloads")).json()) as { reloads: ReadonlyArray<Attempt> }).reloads

const postReload = async (
  g: Governor,
  token?: string,
): Promise<{ code: number; body: Record<string, unknown> }> => {
  const res = await fetch(`${g.url}/-/reload`, {
    method: "POST",
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  })
  return { code: res.status, body: (await res.json()) as Record<string, unknown> }
}

const logsWith = (g: Governor, message: string) => g.logs.filter((l) => l.message === message)

/** Triggers only through the way a test chooses; short debounce where debounce is not the point. */
const QUIET = ["-reload-watch=false", "-reload-debounce", "50ms"]

describe("reload of the real program", () => {
  it("reloads on SIGHUP: version 2, the contract's log line, one sighup/applied attempt", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    fs.writeFileSync(limits, limitsYaml("a"))
    const g = await start(["-limits-config", limits, ...QUIET])
    expect((await status(g)).version).toBe(1)

    const v2 = limitsYaml("a", "b")
    fs.writeFileSync(limits, v2)
    // No watcher: nothing happens until the signal.
    await sleep(300)
    expect((await status(g)).version).toBe(1)

    g.signal("SIGHUP")
    await g.waitForVersion(2)
    const s = await status(g)
    expect(s).toMatchObject({ version: 2, limits_sha256: sha256(v2), rules_count: 2, trigger: "sighup" })
    // The log lines, events and metrics follow the new version (written behind, giving way to requests).
    await waitFor("the reload's log line", () => logsWith(g, "limits config reloaded successfully")[1])
    const hup = logsWith(g, "received SIGHUP, reloading limits config")
    expect(hup).toHaveLength(1)
    expect(hup[0]?.fields.path).toBe(limits)
    const ok = logsWith(g, "limits config reloaded successfully")
    expect(ok.map((l) => l.fields.rules_count)).toEqual([1, 2])
    expect(await attempts(g, "sighup", "applied")).toBe(1)
    expect(await attempts(g, "startup", "applied")).toBe(1)
    expect(await count(g, "metrics_governor_config_reloads_total")).toBe(1)
    expect(await count(g, "metrics_governor_config_version")).toBe(2)
    expect(await count(g, "metrics_governor_limits_rules")).toBe(2)
    expect(
      await count(g, `metrics_governor_config_info{limits_sha256="${sha256(v2)}",config_sha256=""}`),
    ).toBe(1)
  })

  it("follows a Kubernetes ConfigMap update (..data symlink swap) without any signal, twice", async () => {
    const d = dir()
    const v1 = limitsYaml("a")
    const first = "..2026_01_01_00_00_00.000000001"
    fs.mkdirSync(path.join(d, first))
    fs.writeFileSync(path.join(d, first, "limits.yaml"), v1)
    fs.symlinkSync(first, path.join(d, "..data"))
    fs.symlinkSync("..data/limits.yaml", path.join(d, "limits.yaml"))
    const g = await start([
      "-limits-config",
      path.join(d, "limits.yaml"),
      "-reload-poll-interval",
      "0",
      "-reload-debounce",
      "50ms",
    ])
    expect(await status(g)).toMatchObject({ version: 1, limits_sha256: sha256(v1) })

    /** What the kubelet's atomic writer does: new timestamped dir, `..data_tmp`, rename, clean up. */
    let current = first
    const swap = (stamp: string, content: string) => {
      const next = `..2026_01_01_00_0${stamp}_00.00000000${stamp}`
      fs.mkdirSync(path.join(d, next))
      fs.writeFileSync(path.join(d, next, "limits.yaml"), content)
      fs.symlinkSync(next, path.join(d, "..data_tmp"))
      fs.renameSync(path.join(d, "..data_tmp"), path.join(d, "..data"))
      fs.rmSync(path.join(d, current), { recursive: true })
      current = next
    }

    const v2 = limitsYaml("a", "b")
    swap("1", v2)
    await g.waitForVersion(2)
    expect(await status(g)).toMatchObject({
      version: 2,
      trigger: "watch",
      limits_sha256: sha256(v2),
      rules_count: 2,
    })
    expect(await attempts(g, "watch", "applied")).toBe(1)

    const v3 = limitsYaml("a", "b", "c")
    swap("2", v3)
    await g.waitForVersion(3)
    expect(await status(g)).toMatchObject({
      version: 3,
      trigger: "watch",
      limits_sha256: sha256(v3),
      rules_count: 3,
    })
    expect(await attempts(g, "watch", "applied")).toBe(2)
    expect(await count(g, "metrics_governor_config_reload_failures_total")).toBe(0)
    expect(fs.readdirSync(d).sort()).toEqual(["..2026_01_01_00_02_00.000000002", "..data", "limits.yaml"])
  })

  it("follows an editor-style save (write a temp file, rename it over the config)", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    fs.writeFileSync(limits, limitsYaml("a"))
    const g = await start(["-limits-config", limits, "-reload-debounce", "50ms"])

    const v2 = limitsYaml("a", "b")
    fs.writeFileSync(`${limits}.tmp`, v2)
    // The temp file alone changes the directory, not the config's content: no reload.
    await sleep(400)
    expect(await attempts(g, "watch", "applied")).toBe(0)
    expect(await attempts(g, "watch", "unchanged")).toBe(0)
    expect((await status(g)).version).toBe(1)

    fs.renameSync(`${limits}.tmp`, limits)
    await g.waitForVersion(2)
    expect(await status(g)).toMatchObject({ version: 2, trigger: "watch", limits_sha256: sha256(v2) })
    expect(await attempts(g, "watch", "applied")).toBe(1)

    // The file now is another inode than at startup: the next save is seen too.
    const v3 = limitsYaml("a", "b", "c")
    fs.writeFileSync(`${limits}.tmp`, v3)
    fs.renameSync(`${limits}.tmp`, limits)
    await g.waitForVersion(3)
    expect(await status(g)).toMatchObject({ version: 3, trigger: "watch", limits_sha256: sha256(v3) })
    expect(await attempts(g, "watch", "applied")).toBe(2)
  })

  it("rejects a half-written file (keeps the version), then applies the completed file", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    const v1 = limitsYaml("a")
    fs.writeFileSync(limits, v1)
    const g = await start(["-limits-config", limits, ...QUIET])
    expect(await count(g, "metrics_governor_config_last_reload_successful")).toBe(1)

    fs.writeFileSync(limits, TRUNCATED)
    g.signal("SIGHUP")
    await waitForAttempts(g, "sighup", "rejected", 1)
    expect(await status(g)).toMatchObject({ version: 1, limits_sha256: sha256(v1), rules_count: 1 })
    expect(await count(g, "metrics_governor_config_reload_failures_total")).toBe(1)
    expect(await count(g, "metrics_governor_config_last_reload_successful")).toBe(0)
    expect(await count(g, "metrics_governor_config_version")).toBe(1)
    expect(await count(g, "metrics_governor_config_reloads_total")).toBe(0)
    const failed = await waitFor(
      "the reload-failed log line",
      () => logsWith(g, "limits config reload failed, keeping current config")[0],
    )
    expect(failed.level).toBe("error")
    expect(failed.fields.path).toBe(limits)
    expect(failed.fields.error).toEqual(expect.stringContaining(`${limits}:3:5:`))

    const v2 = limitsYaml("a", "b")
    fs.writeFileSync(limits, v2)
    g.signal("SIGHUP")
    await g.waitForVersion(2)
    expect(await status(g)).toMatchObject({ version: 2, limits_sha256: sha256(v2), rules_count: 2 })
    await waitForAttempts(g, "sighup", "applied", 1)
    expect(await count(g, "metrics_governor_config_last_reload_successful")).toBe(1)
    expect(await count(g, "metrics_governor_config_reload_failures_total")).toBe(1)
    expect(await count(g, "metrics_governor_config_reloads_total")).toBe(1)
    expect(await attempts(g, "sighup", "applied")).toBe(1)
  })

  it("coalesces 100 SIGHUPs in 100 ms into at most 5 reloads and stays alive", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    fs.writeFileSync(limits, limitsYaml("a"))
    // Default debounce (250ms).
    const g = await start(["-limits-config", limits, "-reload-watch=false"])
    const v2 = limitsYaml("a", "b")
    fs.writeFileSync(limits, v2)

    const began = Date.now()
    for (let burst = 0; burst < 10; burst++) {
      for (let i = 0; i < 10; i++) process.kill(g.pid, "SIGHUP")
      await sleep(5)
    }
    const burstMs = Date.now() - began
    await sleep(1_000)

    expect(g.exit).toBeUndefined()
    expect((await g.get("/live")).status).toBe(200)
    const applied = await attempts(g, "sighup", "applied")
    const unchanged = await attempts(g, "sighup", "unchanged")
    expect(applied).toBe(1)
    expect(applied + unchanged, `burst took ${burstMs} ms`).toBeGreaterThanOrEqual(1)
    // Reloads start at most once per 30 ms in a storm: 100 ms of SIGHUPs make at most 5.
    expect(applied + unchanged, `burst took ${burstMs} ms`).toBeLessThanOrEqual(Math.ceil(burstMs / 30) + 1)
    if (burstMs <= 100) expect(applied + unchanged, `burst took ${burstMs} ms`).toBeLessThanOrEqual(5)
    expect(await attempts(g, "sighup", "rejected")).toBe(0)
    expect(await status(g)).toMatchObject({ version: 2, limits_sha256: sha256(v2) })
    const hups = (await reloads(g)).filter((a) => a.trigger === "sighup")
    expect(hups.length).toBe(applied + unchanged)
    expect(hups[0]?.status).toBe("applied")
    // Every signal the kernel delivered is accounted for in a batch (the kernel may merge pending ones).
    const delivered = logsWith(g, "received SIGHUP, reloading limits config").length
    expect(delivered).toBeGreaterThanOrEqual(1)
    expect(delivered).toBeLessThanOrEqual(100)
    expect(hups.reduce((n, a) => n + a.coalesced, 0)).toBe(delivered)
  })

  it("POST /-/reload is 403 when -reload-http is off", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    fs.writeFileSync(limits, limitsYaml("a"))
    const g = await start(["-limits-config", limits, ...QUIET])
    fs.writeFileSync(limits, limitsYaml("a", "b"))
    const r = await postReload(g)
    expect(r.code).toBe(403)
    await sleep(200)
    expect((await status(g)).version).toBe(1)
    expect(await attempts(g, "http", "applied")).toBe(0)
  })

  it("POST /-/reload with a bearer token: 401, 200 unchanged/applied, token rotation, 422 rejected", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    const tokenFile = path.join(d, "token")
    fs.writeFileSync(limits, limitsYaml("a"))
    fs.writeFileSync(tokenFile, "first-token\n")
    const g = await start([
      "-limits-config",
      limits,
      ...QUIET,
      "-reload-http",
      "-reload-auth-token-file",
      tokenFile,
    ])

    const none = await postReload(g)
    expect(none.code).toBe(401)
    expect(none.body.status).toBe("error")
    expect((await postReload(g, "wrong-token")).code).toBe(401)
    expect((await postReload(g, "first-token-but-longer")).code).toBe(401)
    expect(await attempts(g, "http", "unchanged")).toBe(0)

    const same = await postReload(g, "first-token")
    expect(same.code).toBe(200)
    expect(same.body).toMatchObject({ status: "unchanged", version: 1, trigger: "http" })
    expect(await attempts(g, "http", "unchanged")).toBe(1)

    const v2 = limitsYaml("a", "b")
    fs.writeFileSync(limits, v2)
    const applied = await postReload(g, "first-token")
    expect(applied.code).toBe(200)
    expect(applied.body).toMatchObject({ status: "applied", version: 2, limits_sha256: sha256(v2) })
    // The reply comes after the reload: the status already shows it.
    expect((await status(g)).version).toBe(2)

    fs.writeFileSync(tokenFile, "second-token\n")
    expect((await postReload(g, "first-token")).code).toBe(401)
    const rotated = await postReload(g, "second-token")
    expect(rotated.code).toBe(200)
    expect(rotated.body).toMatchObject({ status: "unchanged", version: 2 })

    fs.writeFileSync(limits, TRUNCATED)
    const rejected = await postReload(g, "second-token")
    expect(rejected.code).toBe(422)
    expect(rejected.body.status).toBe("rejected")
    expect(rejected.body.version).toBe(2)
    const error = rejected.body.error as { message: string; issues: Array<Record<string, unknown>> }
    expect(error.message).toContain(`${limits}:3:5:`)
    expect(error.issues[0]).toMatchObject({ file: limits, line: 3, column: 5 })
    expect(await status(g)).toMatchObject({ version: 2, limits_sha256: sha256(v2) })
    expect(await attempts(g, "http", "applied")).toBe(1)
    expect(await attempts(g, "http", "unchanged")).toBe(2)
    expect(await attempts(g, "http", "rejected")).toBe(1)
  })

  it("reloads when the trigger file is touched (created, then its mtime changed)", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    const trigger = path.join(d, "reload.trigger")
    fs.writeFileSync(limits, limitsYaml("a"))
    const g = await start(["-limits-config", limits, ...QUIET, "-reload-trigger-file", trigger])
    await sleep(200)
    expect(await attempts(g, "touch", "unchanged")).toBe(0)

    fs.closeSync(fs.openSync(trigger, "w"))
    await waitForAttempts(g, "touch", "unchanged", 1)

    const later = new Date(Date.now() + 60_000)
    fs.utimesSync(trigger, later, later)
    await waitForAttempts(g, "touch", "unchanged", 2)

    // A touch reads the files whatever the watcher thinks: a changed file is applied.
    const v2 = limitsYaml("a", "b")
    fs.writeFileSync(limits, v2)
    const evenLater = new Date(Date.now() + 120_000)
    fs.utimesSync(trigger, evenLater, evenLater)
    await g.waitForVersion(2)
    expect(await status(g)).toMatchObject({ version: 2, trigger: "touch", limits_sha256: sha256(v2) })
    await sleep(300)
    expect(await attempts(g, "touch", "unchanged")).toBe(2)
    expect(await attempts(g, "touch", "applied")).toBe(1)
  })

  it("polls: applies a change within 2 s, rejects a bad file once (not every interval)", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    fs.writeFileSync(limits, limitsYaml("a"))
    const g = await start([
      "-limits-config",
      limits,
      "-reload-watch=false",
      "-reload-poll-interval",
      "200ms",
      "-reload-debounce",
      "50ms",
    ])
    await sleep(500)
    // Polls that find the same hash do not reload at all.
    expect(await attempts(g, "poll", "unchanged")).toBe(0)

    const v2 = limitsYaml("a", "b")
    fs.writeFileSync(limits, v2)
    await g.waitForVersion(2, 2_000)
    expect(await status(g)).toMatchObject({ version: 2, trigger: "poll", limits_sha256: sha256(v2) })
    expect(await attempts(g, "poll", "applied")).toBe(1)

    fs.writeFileSync(limits, TRUNCATED)
    await waitForAttempts(g, "poll", "rejected", 1, 2_000)
    await sleep(1_000)
    expect(await attempts(g, "poll", "rejected")).toBe(1)
    expect(await count(g, "metrics_governor_config_reload_failures_total")).toBe(1)
    expect(logsWith(g, "limits config reload failed, keeping current config")).toHaveLength(1)
    expect((await status(g)).version).toBe(2)

    // Fixing the file is a new hash again: applied.
    const v3 = limitsYaml("a", "b", "c")
    fs.writeFileSync(limits, v3)
    await g.waitForVersion(3, 2_000)
    expect(await attempts(g, "poll", "applied")).toBe(2)
    expect(await count(g, "metrics_governor_config_last_reload_successful")).toBe(1)
  })

  it("writes an event log that replay folds to the live status; verify, torn lines, corruption, --at", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    const config = path.join(d, "config.yaml")
    const log = path.join(d, "log", "events.jsonl")
    fs.writeFileSync(limits, limitsYaml("a"))
    fs.writeFileSync(config, configYaml(false))
    const g = await start([
      "-config",
      config,
      "-limits-config",
      limits,
      ...QUIET,
      "-reload-http",
      "-reload-event-log",
      log,
    ])

    const v2 = limitsYaml("a", "b")
    fs.writeFileSync(limits, v2)
    expect((await postReload(g)).body).toMatchObject({ status: "applied", version: 2 })
    expect((await postReload(g)).body).toMatchObject({ status: "unchanged", version: 2 })
    fs.writeFileSync(limits, TRUNCATED)
    expect((await postReload(g)).code).toBe(422)
    const v3 = limitsYaml("a", "b", "c")
    fs.writeFileSync(limits, v3)
    fs.writeFileSync(config, configYaml(false, "edited"))
    expect((await postReload(g)).body).toMatchObject({ status: "applied", version: 3 })
    const live = await status(g)
    expect(live).toMatchObject({
      version: 3,
      limits_sha256: sha256(v3),
      config_sha256: sha256(configYaml(false, "edited")),
      rules_count: 3,
      dry_run: false,
    })

    g.signal("SIGTERM")
    expect((await g.waitForExit(5_000)).code).toBe(0)

    const lines = fs.readFileSync(log, "utf8").trimEnd().split("\n")
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
    expect(events.map((e) => e.type)).toEqual([
      "Started",
      "ReloadRequested",
      "ConfigApplied",
      "ReloadRequested",
      "ConfigApplied",
      "ReloadRequested",
      "ConfigUnchanged",
      "ReloadRequested",
      "ReloadRejected",
      "ReloadRequested",
      "ConfigApplied",
      "Stopped",
    ])
    expect(events[11]).toMatchObject({ type: "Stopped", version: 3 })
    const applied = events.filter((e) => e.type === "ConfigApplied")
    expect(applied.map((e) => e.version)).toEqual([1, 2, 3])

    // A recorded config whose verdict differs today: a copy of the log that claims the rejected
    // (truncated) bytes were applied as version 2.
    const forged = path.join(d, "forged", "events.jsonl")
    fs.mkdirSync(path.dirname(forged))
    fs.cpSync(`${log}.snapshots`, `${forged}.snapshots`, { recursive: true })
    const forgedLines = lines.map((l) => {
      const e = JSON.parse(l) as Record<string, unknown>
      return e.type === "ConfigApplied" && e.version === 2
        ? JSON.stringify({ ...e, limits_sha256: sha256(TRUNCATED) })
        : l
    })
    fs.writeFileSync(forged, `${forgedLines.join("\n")}\n`)

    const [r, verified, before, atV2, diverged] = await Promise.all([
      runCli(["replay", log]),
      runCli(["replay", log, "--verify"]),
      runCli(["replay", log, "--at", "2000-01-01T00:00:00Z"]),
      runCli(["replay", log, "--at", String(applied[1]?.at)]),
      runCli(["replay", forged, "--verify"]),
    ])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const out = r.stdout.trimEnd().split("\n")
    expect(out).toHaveLength(events.length + 2)
    const active = out.find((l) => l.startsWith("active: ")) as string
    expect(active).toBe(
      `active: version=${live.version} limits_sha256=${live.limits_sha256} config_sha256=${live.config_sha256} rules_count=3 dry_run=false applied_at=${String(applied[2]?.at)}`,
    )
    expect(out.at(-1)).toBe("reloads: applied=3 unchanged=1 rejected=1 runs=1")

    expect(verified.code).toBe(0)
    expect(verified.stdout).toContain("verify: ok")

    // --at: before startup nothing was active; at the moment v2 was applied, v2 was.
    expect(before.code).toBe(0)
    expect(before.stdout).toContain("no version active at 2000-01-01T00:00:00Z")
    expect(atV2.code).toBe(0)
    expect(atV2.stdout).toContain(`version=2 limits_sha256=${sha256(v2)}`)

    expect(diverged.code).toBe(1)
    expect(diverged.stdout).toContain(
      `DIVERGENCE seq ${String(applied[1]?.seq)}: version 2 was applied, now rejected`,
    )
    // The next event says version 2 holds v2's bytes: the forged log contradicts itself.
    const unchangedSeq = String((events.find((e) => e.type === "ConfigUnchanged") as { seq: number }).seq)
    expect(diverged.stdout).toContain(
      `DIVERGENCE seq ${unchangedSeq}: ConfigUnchanged says limits_sha256="${sha256(v2)}", the fold derives "${sha256(TRUNCATED)}"`,
    )
    expect(diverged.stdout).toContain("verify: FAILED, 2 divergence(s)")

    // A crash mid-write leaves a torn last line: reported on stderr, skipped.
    fs.appendFileSync(log, '{"seq":99,"at":"20')
    const [torn, tornVerified] = await Promise.all([
      runCli(["replay", log]),
      runCli(["replay", log, "--verify"]),
    ])
    expect(torn.code).toBe(0)
    expect(torn.stderr).toContain(`${log}:${lines.length + 1}: skipped, torn last line`)
    expect(torn.stdout).toContain(active)
    expect(tornVerified.code).toBe(0)

    // A stored snapshot whose bytes no longer match its hash.
    const snapshot = path.join(`${log}.snapshots`, `${sha256(v2)}.yaml`)
    expect(fs.readFileSync(snapshot, "utf8")).toBe(v2)
    fs.writeFileSync(snapshot, limitsYaml("x"))
    const corrupt = await runCli(["replay", log, "--verify"])
    expect(corrupt.code).toBe(1)
    expect(corrupt.stdout).toContain(
      `DIVERGENCE seq ${String(applied[1]?.seq)}: snapshot ${sha256(v2)} is corrupt`,
    )
    expect(corrupt.stdout).toContain("verify: FAILED, 1 divergence(s)")
    // Eight replay processes and a governor: slow to start on a busy machine.
  }, 90_000)

  it("-limits-dry-run wins over config.yaml, also after a reload", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    const config = path.join(d, "config.yaml")
    fs.writeFileSync(limits, limitsYaml("a"))
    fs.writeFileSync(config, configYaml(false))
    const g = await start(["-config", config, "-limits-config", limits, ...QUIET, "-limits-dry-run"])
    expect(await status(g)).toMatchObject({ version: 1, dry_run: true, dry_run_source: "flag" })
    expect(await count(g, "metrics_governor_limits_dry_run")).toBe(1)

    const edited = configYaml(false, "still false, edited")
    fs.writeFileSync(config, edited)
    g.signal("SIGHUP")
    await g.waitForVersion(2)
    expect(await status(g)).toMatchObject({
      version: 2,
      config_sha256: sha256(edited),
      dry_run: true,
      dry_run_source: "flag",
    })
    expect(await count(g, "metrics_governor_limits_dry_run")).toBe(1)
    expect(logsWith(g, "limits dry-run disabled")).toHaveLength(0)
  })

  it("without -limits-dry-run, limits.dry_run in config.yaml flips dry-run on reload", async () => {
    const d = dir()
    const limits = path.join(d, "limits.yaml")
    const config = path.join(d, "config.yaml")
    fs.writeFileSync(limits, limitsYaml("a"))
    fs.writeFileSync(config, configYaml(false))
    const g = await start(["-config", config, "-limits-config", limits, ...QUIET])
    expect(await status(g)).toMatchObject({ version: 1, dry_run: false, dry_run_source: "config" })
    expect(await count(g, "metrics_governor_limits_dry_run")).toBe(0)
    expect(logsWith(g, "limits dry-run enabled")).toHaveLength(0)

    fs.writeFileSync(config, configYaml(true))
    g.signal("SIGHUP")
    await g.waitForVersion(2)
    expect(await status(g)).toMatchObject({ version: 2, dry_run: true, dry_run_source: "config" })
    await waitForCount(g, "metrics_governor_limits_dry_run", 1)
    const enabled = await waitFor(
      "the dry-run enabled log line",
      () => logsWith(g, "limits dry-run enabled")[0],
    )
    expect(enabled.fields.dry_run).toBe(true)

    fs.writeFileSync(config, configYaml(false))
    g.signal("SIGHUP")
    await g.waitForVersion(3)
    expect(await status(g)).toMatchObject({ version: 3, dry_run: false })
    await waitForCount(g, "metrics_governor_limits_dry_run", 0)
    await waitFor("the dry-run disabled log line", () => logsWith(g, "limits dry-run disabled")[0])
    expect(logsWith(g, "limits dry-run enabled")).toHaveLength(1)
  })
})
