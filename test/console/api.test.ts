import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { splitLines } from "../../src/console/line-diff.js"
import { freePort, type Governor, startGovernor, tempDir, waitFor } from "../support/governor.js"
import { applyUnifiedDiff } from "../support/line-diff.js"
import { pushRemoteWrite } from "../support/remote-write.js"

/**
 * The console's APIs end to end (docs/console.md): the built program as a child process, on real files
 * in a temporary directory, with an event log.
 */

let running: Array<Governor> = []
let dirs: Array<string> = []
afterEach(async () => {
  await Promise.all(running.map((g) => g.stop()))
  running = []
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
  dirs = []
})

const limitsYaml = (rules: Record<string, number>): string =>
  `rules:\n${Object.entries(rules)
    .map(([n, c]) => `  - name: ${n}\n    max_cardinality: ${c}\n    action: drop\n`)
    .join("")}`
const CONFIG = "limits:\n  dry_run: false\n"

interface Setup {
  readonly dir: string
  readonly limits: string
  readonly config: string
  readonly log: string
}

const setup = (first: string): Setup => {
  const dir = tempDir("mg-console-")
  dirs.push(dir)
  const s = {
    dir,
    limits: path.join(dir, "limits.yaml"),
    config: path.join(dir, "config.yaml"),
    log: path.join(dir, "events.jsonl"),
  }
  fs.writeFileSync(s.limits, first)
  fs.writeFileSync(s.config, CONFIG)
  return s
}

const start = async (s: Setup, extra: ReadonlyArray<string> = ["-reload-http"]): Promise<Governor> => {
  const g = await startGovernor({
    args: [
      "-limits-config",
      s.limits,
      "-config",
      s.config,
      "-reload-event-log",
      s.log,
      "-reload-watch=false",
      ...extra,
    ],
  })
  running.push(g)
  return g
}

const getJson = async <A = Record<string, unknown>>(
  g: Governor,
  p: string,
): Promise<{ status: number; body: A }> => {
  const res = await g.get(p)
  return { status: res.status, body: (await res.json()) as A }
}

const post = async (g: Governor, p: string, headers: Record<string, string> = {}) => {
  const res = await fetch(`${g.url}${p}`, { method: "POST", headers })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

/** Writes the limits file and reloads with SIGHUP; waits for `version`. */
const reloadTo = async (g: Governor, s: Setup, text: string, version: number) => {
  fs.writeFileSync(s.limits, text)
  g.signal("SIGHUP")
  await g.waitForVersion(version, 15_000)
}

interface Versions {
  current_run: number
  versions: Array<{
    run: number
    version: number
    trigger: string
    limits_sha256: string
    rules_count: number
  }>
}
interface Rules {
  version: number
  rules: Array<{ name: string; max_cardinality: number; action: string }>
}
const limitsOf = (r: Rules) =>
  r.rules.map(({ name, max_cardinality, action }) => ({ name, max_cardinality, action }))

describe("console APIs", () => {
  it("list versions, serve their files, diff them, and answer 400/404 for bad or unknown versions", async () => {
    const v1 = limitsYaml({ payments: 2000, checkout: 10 })
    const v2 = limitsYaml({ payments: 1000, search: 5 })
    const s = setup(v1)
    const g = await start(s)
    await reloadTo(g, s, v2, 2)

    const versions = await getJson<Versions>(g, "/api/v1/status/versions")
    expect(versions.status).toBe(200)
    expect(versions.body.versions.map((v) => [v.run, v.version, v.trigger, v.rules_count])).toEqual([
      [1, 1, "startup", 2],
      [1, 2, "sighup", 2],
    ])

    const files = await getJson<{ limits: { content: string }; config: { content: string } }>(
      g,
      "/api/v1/status/versions/1/files",
    )
    expect(files.status).toBe(200)
    expect(files.body.limits.content).toBe(v1)
    expect(files.body.config.content).toBe(CONFIG)

    const diff = await getJson<{
      files: { limits: string; config: string }
      rules: { added: Array<string>; removed: Array<string>; changed: Array<unknown> }
    }>(g, "/api/v1/status/diff?from=1&to=2")
    expect(diff.status).toBe(200)
    expect(applyUnifiedDiff(splitLines(v1), diff.body.files.limits)).toEqual(splitLines(v2))
    expect(diff.body.files.config).toBe("")
    expect(diff.body.rules).toEqual({
      added: ["search"],
      removed: ["checkout"],
      changed: [{ rule: "payments", changes: [{ key: "max_cardinality", old: 2000, new: 1000 }] }],
      settings: [],
    })

    for (const bad of [
      "/api/v1/status/diff?from=1",
      "/api/v1/status/diff?from=0&to=1",
      "/api/v1/status/diff?from=a&to=2",
      "/api/v1/status/versions/x/files",
    ]) {
      const r = await getJson<{ status: string; error: { message: string } }>(g, bad)
      expect([bad, r.status]).toEqual([bad, 400])
      expect(r.body.status).toBe("error")
    }
    for (const unknown of ["/api/v1/status/diff?from=1&to=9", "/api/v1/status/versions/9/files"]) {
      const r = await getJson<{ error: { type: string } }>(g, unknown)
      expect([unknown, r.status, r.body.error.type]).toEqual([unknown, 404, "VersionNotFound"])
    }
    const r = await post(g, "/-/rollback?version=9")
    expect(r.status).toBe(404)
    expect((await post(g, "/-/rollback")).status).toBe(400)
    expect((await post(g, "/-/rollback?version=-1")).status).toBe(400)
  })

  it("rollback: version N's content becomes active as a new version, logged with trigger rollback; the status shows the drift; the next SIGHUP applies the files on disk", async () => {
    const v1 = limitsYaml({ payments: 2000, checkout: 10 })
    const v2 = limitsYaml({ payments: 1000 })
    const s = setup(v1)
    const g = await start(s)
    const rulesV1 = (await getJson<Rules>(g, "/api/v1/status/rules")).body
    await reloadTo(g, s, v2, 2)

    const rolled = await post(g, "/-/rollback?version=1")
    expect(rolled.status).toBe(200)
    expect(rolled.body).toMatchObject({ status: "applied", trigger: "rollback", version: 3 })

    const rules = (await getJson<Rules>(g, "/api/v1/status/rules")).body
    expect(rules.version).toBe(3)
    expect(limitsOf(rules)).toEqual(limitsOf(rulesV1))
    const status = (await getJson(g, "/api/v1/status/config")).body
    const versions = (await getJson<Versions>(g, "/api/v1/status/versions")).body.versions
    expect(status).toMatchObject({
      version: 3,
      trigger: "rollback",
      limits_sha256: versions[0]?.limits_sha256,
      files_differ: true,
      disk_limits_sha256: versions[1]?.limits_sha256,
    })
    expect(versions[2]).toMatchObject({ version: 3, trigger: "rollback", rollback_of: 1 })
    expect(
      (await getJson<{ limits: { content: string } }>(g, "/api/v1/status/versions/3/files")).body.limits
        .content,
    ).toBe(v1)

    await waitFor("the rollback in the event log", () => {
      const lines = fs
        .readFileSync(s.log, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l))
      return lines.find((e) => e.type === "ConfigApplied" && e.trigger === "rollback" && e.version === 3)
    })

    // A rollback is counted like any attempt.
    expect(
      await g.metric('metrics_governor_config_reload_attempts_total{trigger="rollback",result="applied"}'),
    ).toBe(1)

    // The next SIGHUP reads the files on disk again: version 2's content, as version 4.
    g.signal("SIGHUP")
    await g.waitForVersion(4, 15_000)
    const after = (await getJson(g, "/api/v1/status/config")).body
    expect(after).toMatchObject({
      version: 4,
      trigger: "sighup",
      limits_sha256: versions[1]?.limits_sha256,
      files_differ: false,
    })
  })

  it("rollback is guarded like /-/reload: 403 without -reload-http, 401 without the bearer token", async () => {
    const s = setup(limitsYaml({ a: 1 }))
    const off = await start(s, [])
    expect((await post(off, "/-/rollback?version=1")).status).toBe(403)
    await off.stop()

    const token = path.join(s.dir, "token")
    fs.writeFileSync(token, "s3cret\n")
    const g = await start(s, ["-reload-http", "-reload-auth-token-file", token])
    fs.writeFileSync(s.limits, limitsYaml({ a: 2 }))
    expect((await post(g, "/-/reload", { authorization: "Bearer s3cret" })).status).toBe(200)
    const runOfThis = (await getJson<Versions>(g, "/api/v1/status/versions")).body.current_run
    expect(runOfThis).toBe(2)
    expect((await post(g, "/-/rollback?version=1")).status).toBe(401)
    expect((await post(g, "/-/rollback?version=1", { authorization: "Bearer wrong" })).status).toBe(401)
    const ok = await post(g, "/-/rollback?version=1", { authorization: "Bearer s3cret" })
    expect(ok).toMatchObject({ status: 200, body: { status: "applied", version: 3, trigger: "rollback" } })
  })

  it("versions survive a restart when the event log is kept; an earlier run's version can be read, compared and rolled back to", async () => {
    const v1 = limitsYaml({ a: 1 })
    const v2 = limitsYaml({ a: 2, b: 3 })
    const s = setup(v1)
    const first = await start(s)
    await reloadTo(first, s, v2, 2)
    await first.stop()

    const g = await start(s)
    const listed = (await getJson<Versions>(g, "/api/v1/status/versions")).body
    expect(listed.current_run).toBe(2)
    expect(listed.versions.map((v) => [v.run, v.version, v.trigger])).toEqual([
      [1, 1, "startup"],
      [1, 2, "sighup"],
      [2, 1, "startup"],
    ])
    const old = await getJson<{ limits: { content: string } }>(g, "/api/v1/status/versions/1/files?run=1")
    expect(old.body.limits.content).toBe(v1)
    const d = await getJson<{ rules: { removed: Array<string> } }>(
      g,
      "/api/v1/status/diff?from=1&to=1&from_run=2&to_run=1",
    )
    expect(d.status).toBe(200)
    expect(d.body.rules.removed).toEqual(["b"])
    const rolled = await post(g, "/-/rollback?version=1&run=1")
    expect(rolled.body).toMatchObject({ status: "applied", version: 2, trigger: "rollback" })
    expect(
      (await getJson<{ limits: { content: string } }>(g, "/api/v1/status/versions/2/files")).body.limits
        .content,
    ).toBe(v1)
    expect((await getJson(g, "/api/v1/status/versions/1/files?run=7")).status).toBe(404)
  })
})

describe("GET /api/v1/status/rules with the advanced keys", () => {
  it("shows each rule's tiers, its label limits with the values admitted, and its utilisation", async () => {
    const s = setup(
      "rules:\n  - name: api\n    max_cardinality: 10\n    action: drop\n" +
        "    tiers:\n      - {at_percent: 80, action: log}\n    label_limits: {user: 2}\n",
    )
    const port = await freePort()
    const g = await start(s, ["-prw-listen", `127.0.0.1:${port}`])
    const series = Array.from({ length: 9 }, (_, i) => ({
      labels: { __name__: "api_requests", i: String(i), user: `u${i}` },
      samples: [{ value: 1, timestamp: Date.now() }],
    }))
    expect(await pushRemoteWrite(`http://127.0.0.1:${port}/api/v1/write`, series)).toBe(204)
    const rules = (await getJson<{ rules: Array<Record<string, unknown>> }>(g, "/api/v1/status/rules")).body
      .rules
    expect(rules[0]).toMatchObject({
      name: "api",
      cardinality: 9,
      utilisation_percent: 90,
      tiers: [{ at_percent: 80, action: "log" }],
      label_limits: [{ label: "user", max: 2, values: 2 }],
    })
    // The console's rules table says the same under the rule's name.
    const page = await (await g.get("/")).text()
    expect(page).toContain("tiers 80% log; at 90%")
    expect(page).toContain("user: 2 of 2 values")
  })
})
