import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { usageLines } from "../../src/cli/diff.js"
import { compileLimits } from "../../src/limits/compile.js"
import { freePort, type Governor, runCli, startGovernor, tempDir, waitFor } from "../support/governor.js"
import { gaugeBody, postOtlp } from "../support/otlp-traffic.js"

let running: Array<Governor> = []
let dirs: Array<string> = []
afterEach(async () => {
  await Promise.all(running.map((g) => g.stop()))
  running = []
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
  dirs = []
})

const files = (texts: Record<string, string>): Record<string, string> => {
  const dir = tempDir("mg-diff-")
  dirs.push(dir)
  const out: Record<string, string> = {}
  for (const [name, text] of Object.entries(texts)) {
    out[name] = path.join(dir, name)
    fs.writeFileSync(out[name] as string, text)
  }
  return out
}

const OLD = `rules:
  - name: payments
    match: {metric_name: "pay_.*"}
    max_cardinality: 20
    action: drop
  - name: checkout
    max_cardinality: 5
    action: drop
`
const NEW = `rules:
  - name: payments
    match: {metric_name: "pay_.*"}
    max_cardinality: 10
    action: drop
  - name: search
    max_cardinality: 5
    action: log
`

describe("metrics-governor diff", () => {
  it("prints the rule-level difference; exit 1 when the files differ, 0 when they do not", async () => {
    const f = files({ "old.yaml": OLD, "new.yaml": NEW, "same.yaml": OLD })
    const differ = await runCli(["diff", f["old.yaml"] as string, f["new.yaml"] as string])
    expect(differ.code).toBe(1)
    expect(differ.stdout.split("\n")).toEqual([
      "+ rule search",
      "- rule checkout",
      "~ rule payments: max_cardinality 20 -> 10",
      "",
    ])
    const same = await runCli(["diff", f["old.yaml"] as string, f["same.yaml"] as string])
    expect(same).toMatchObject({ code: 0, stdout: "no difference in rules or settings\n" })
  })

  it("exit 2 for an invalid file, with every problem at file:line:col as validate prints it, and for a bad command line", async () => {
    const f = files({
      "old.yaml": OLD,
      "bad.yaml": "rules:\n  - name: a\n    max_cardinality: -1\n    action: explode\n",
    })
    const bad = await runCli(["diff", f["old.yaml"] as string, f["bad.yaml"] as string])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain(
      `${f["bad.yaml"]}:3:22: rules[0].max_cardinality: must be a whole number >= 0`,
    )
    expect(bad.stderr).toContain(`${f["bad.yaml"]}:4:13: rules[0].action: unknown action "explode"`)
    expect(bad.stderr).toContain("invalid: 2 problems")
    const missing = await runCli(["diff", f["old.yaml"] as string, "/nonexistent/limits.yaml"])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain("/nonexistent/limits.yaml")
    expect((await runCli(["diff", f["old.yaml"] as string])).code).toBe(2)
    expect((await runCli(["diff", "-nope", "a", "b"])).code).toBe(2)
  })

  it("with -stats-addr, prints each changed limit against the running governor's usage", {
    timeout: 60_000,
  }, async () => {
    const f = files({ "old.yaml": OLD, "new.yaml": NEW })
    const httpPort = await freePort()
    const g = await startGovernor({
      args: ["-limits-config", f["old.yaml"] as string, "-http-listen", `127.0.0.1:${httpPort}`],
    })
    running.push(g)
    // The usage is the current 60 s window's: sent with room left in it, so that it is still the
    // window `diff` reads (near its end, wait for the next one; at most 15 s).
    const leftMs = 60_000 - (Date.now() % 60_000)
    if (leftMs < 15_000) await new Promise((r) => setTimeout(r, leftMs + 100))
    expect(await postOtlp(httpPort, gaugeBody("pay_total", 12))).toBe(200)
    await waitFor("12 series counted", async () =>
      (await g.metric('metrics_governor_rule_current_cardinality{rule="payments"}')) === 12
        ? true
        : undefined,
    )
    const out = await runCli([
      "diff",
      f["old.yaml"] as string,
      f["new.yaml"] as string,
      "-stats-addr",
      `127.0.0.1:${g.statsPort}`,
    ])
    expect(out.code).toBe(1)
    expect(out.stdout).toContain(
      "rule payments: cardinality 12 — old limit 20 (60%), new limit 10 (120%: would start dropping ~17%)",
    )
    const down = await runCli([
      "diff",
      f["old.yaml"] as string,
      f["new.yaml"] as string,
      "-stats-addr",
      "127.0.0.1:1",
    ])
    expect(down.code).toBe(1)
    expect(down.stderr).toContain("cannot read rule usage from http://127.0.0.1:1/api/v1/status/rules")
  })

  it("usage lines: no limit, under, over, and log rules", () => {
    const limits = (card: number, rate: number, action = "drop") => {
      const c = compileLimits({
        rules: [{ name: "r", max_cardinality: card, max_datapoints_rate: rate, action: action as "drop" }],
      })
      if (c._tag !== "Compiled") throw new Error("bad test limits")
      return c.limits
    }
    const usage = [{ name: "r", cardinality: 50, datapoints: 400 }]
    expect(usageLines(limits(100, 0), limits(0, 0), usage)).toEqual([
      "rule r: cardinality 50 — old limit 100 (50%), new: no limit",
    ])
    expect(usageLines(limits(0, 1000), limits(0, 200, "log"), usage)).toEqual([
      "rule r: datapoints 400 — old limit 1000 (40%), new limit 200 (200%, over: would log ~50%)",
    ])
    expect(usageLines(limits(10, 0), limits(10, 0), usage)).toEqual([])
  })
})
