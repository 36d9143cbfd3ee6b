import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort, type Governor, ROOT, sleep, startGovernor, tempDir, waitFor } from "../support/governor.js"
import { gaugeBody, postOtlp } from "../support/otlp-traffic.js"
import { Sink } from "../support/sink.js"
import { CHROMIUM, haveChromium, inCi, LIMITS_V1 } from "./fixture.js"

/**
 * The console page in a real browser (Debian's chromium driven by playwright-core, as in
 * browser.test.ts) through the states an operator meets: after a reload with its diff open, a
 * rule at its limit, a rejected reload, and a rollback. Each state is photographed into a
 * directory the test prints (under the OS temp directory) and, when `CONSOLE_SCREENSHOTS_DIR` is
 * set, also there (docs/console-screenshots is made that way).
 */
if (!haveChromium && !inCi) {
  process.stderr.write(
    `console browser states test SKIPPED: ${CHROMIUM} is missing (apt-get install -y chromium)\n`,
  )
}

const LIMITS_V2 = LIMITS_V1.replace("max_cardinality: 40", "max_cardinality: 30").replace(
  "    action: drop\n",
  '    action: drop\n  - name: debug\n    match: {metric_name: "debug_.*"}\n    max_datapoints_rate: 100\n    action: log\n',
)
/** Line 12 holds the mistake: a negative limit. */
const BROKEN = LIMITS_V2.replace("max_cardinality: 5\n", "max_cardinality: -5\n")
const BROKEN_LINE = BROKEN.split("\n").findIndex((l) => l.includes("max_cardinality: -5")) + 1

const VIEWPORT = { width: 1280, height: 800 }

const ARTIFACTS = fs.mkdtempSync(path.join(os.tmpdir(), "mg-console-screenshots-"))
const EXTRA = process.env.CONSOLE_SCREENSHOTS_DIR
const EXTRA_DIR = EXTRA === undefined || EXTRA === "" ? undefined : path.resolve(ROOT, EXTRA)

describe.skipIf(!haveChromium && !inCi)(
  "console page in a browser: reload, limit, rejection, rollback",
  () => {
    let g: Governor
    let dir: string
    let limits: string
    let httpPort: number
    let sink: Sink<unknown> | undefined
    // biome-ignore lint/suspicious/noExplicitAny: playwright-core is loaded only when the test runs
    let browser: any
    // biome-ignore lint/suspicious/noExplicitAny: a playwright Page
    let page: any
    const errors: Array<string> = []

    /** The viewport, with `selector` scrolled to the top, written to the artifacts (and EXTRA_DIR). */
    const shoot = async (name: string, selector: string): Promise<void> => {
      await page
        .locator(selector)
        .first()
        .evaluate((el: { scrollIntoView(o: { block: string }): void }) =>
          el.scrollIntoView({ block: "start" }),
        )
      const file = path.join(ARTIFACTS, `${name}.png`)
      await page.screenshot({ path: file, animations: "disabled", caret: "hide" })
      expect(fs.statSync(file).size).toBeGreaterThan(10_000)
      if (EXTRA_DIR !== undefined) {
        fs.mkdirSync(EXTRA_DIR, { recursive: true })
        fs.copyFileSync(file, path.join(EXTRA_DIR, `${name}.png`))
      }
    }

    /** Fetches the page again now (as the Refresh button does) and waits for it to be replaced. */
    const refreshNow = async (): Promise<void> => {
      const before = await page.locator("#updated").textContent()
      await page.locator("#refresh").click()
      await waitFor(
        "the page to refresh",
        async () => ((await page.locator("#updated").textContent()) !== before ? true : undefined),
        5_000,
        50,
      )
    }

    beforeAll(async () => {
      if (!haveChromium) throw new Error(`${CHROMIUM} is missing; in CI the console browser test must run`)
      process.stdout.write(`console screenshots: ${ARTIFACTS}${EXTRA_DIR ? ` and ${EXTRA_DIR}` : ""}\n`)
      dir = tempDir("mg-states-")
      limits = path.join(dir, "limits.yaml")
      fs.writeFileSync(limits, LIMITS_V1)
      httpPort = await freePort()
      // A downstream, so the traffic chart shows datapoints going out too.
      sink = await Sink.start("otlp")
      g = await startGovernor({
        args: [
          "-limits-config",
          limits,
          "-reload-http",
          "-reload-watch=false",
          "-reload-event-log",
          path.join(dir, "events.jsonl"),
          "-http-listen",
          `127.0.0.1:${httpPort}`,
          "-exporter-endpoint",
          sink.url,
        ],
      })
      const { chromium } = await import("playwright-core")
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] })
      const context = await browser.newContext({ viewport: VIEWPORT })
      page = await context.newPage()
      page.on("pageerror", (e: Error) => errors.push(e.message))
    }, 60_000)

    afterAll(async () => {
      await browser?.close()
      await g?.stop()
      await sink?.close()
      if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
      process.stdout.write(`console screenshots written to ${ARTIFACTS}\n`)
    })

    it("after a reload: the new version is active and its diff against the previous one opens", async () => {
      // Traffic across two traffic samples (one every 10 s), so the charts draw a line, not a level.
      const until = Date.now() + 21_000
      for (let i = 0; i < 200 && Date.now() < until; i++) {
        for (const service of ["api", "web", "worker"]) {
          expect(await postOtlp(httpPort, gaugeBody("pay_requests", 6 + (i % 4), { service }))).toBe(200)
        }
        expect(await postOtlp(httpPort, gaugeBody("debug_spans", 5 + (i % 7)))).toBe(200)
        await sleep(300 + (i % 5) * 100)
      }
      fs.writeFileSync(limits, LIMITS_V2)
      const reloaded = await fetch(`${g.url}/-/reload`, { method: "POST" })
      expect(reloaded.status).toBe(200)
      await g.waitForVersion(2)

      await page.goto(`${g.url}/`)
      await expect(page.locator("#h-active").textContent()).resolves.toBe("Active version 2")
      const v2 = page.locator("details.version.active")
      await v2.locator("summary").click()
      await waitFor("the active version's diff to open", async () =>
        (await page.locator("details.version.active[open] pre.diff").count()) > 0 ? true : undefined,
      )
      const diff = (await v2.locator("pre.diff").first().textContent()) as string
      expect(diff).toContain("-    max_cardinality: 40")
      expect(diff).toContain("+    max_cardinality: 30")
      const ruleChanges = (await v2.locator("ul.rulediff").textContent()) as string
      expect(ruleChanges).toContain("added debug")
      expect(ruleChanges).toContain("changed payments")
      expect(await page.locator("figure.chart svg polyline").count()).toBeGreaterThan(0)
      await shoot("reload-diff", "#versions")
      await shoot("overview", "body")
    }, 60_000)

    it("a rule at its limit: the rules table shows it full and its drops", async () => {
      // batch allows 5 series; 9 arrive, 4 are dropped.
      expect(await postOtlp(httpPort, gaugeBody("batch_jobs", 9))).toBe(200)
      const rules = await waitFor(
        "batch to reach its limit in /api/v1/status/rules",
        async () => {
          const body = (await (await g.get("/api/v1/status/rules")).json()) as {
            rules: Array<{ name: string; cardinality: number; max_cardinality: number; dropped: number }>
          }
          const batch = body.rules.find((r) => r.name === "batch")
          return batch !== undefined && batch.cardinality >= 5 && batch.dropped > 0 ? batch : undefined
        },
        5_000,
        100,
      )
      expect(rules.max_cardinality).toBe(5)
      await refreshNow()
      const row = page.locator("#rules tbody tr", { has: page.locator(".name", { hasText: /^batch$/ }) })
      const text = (await row.textContent()) as string
      expect(text).toContain("5 / 5")
      expect(text).toContain("100%")
      expect(await row.locator(".bar.over").count()).toBe(1)
      expect(await row.locator('td[data-label="Dropped"]').textContent()).toBe(String(rules.dropped))
      // The other rules are under theirs.
      const payments = page.locator("#rules tbody tr", {
        has: page.locator(".name", { hasText: /^payments$/ }),
      })
      expect(await payments.locator(".bar.over").count()).toBe(0)
      await shoot("rule-at-limit", "#rules-section")
    })

    it("a rejected reload: the timeline shows its error at file:line:col, and the active version stays", async () => {
      fs.writeFileSync(limits, BROKEN)
      const rejected = await fetch(`${g.url}/-/reload`, { method: "POST" })
      expect(rejected.status).toBe(422)
      await rejected.arrayBuffer()
      await refreshNow()
      await expect(page.locator("#h-active").textContent()).resolves.toBe("Active version 2")
      const row = page.locator("#timeline tbody tr").first()
      expect(await row.getAttribute("class")).toBe("r-rejected")
      expect(await row.locator(".badge").textContent()).toBe("rejected")
      const error = (await row.locator("td.err").textContent()) as string
      expect(error).toContain(`limits.yaml:${BROKEN_LINE}:`)
      expect(error).toMatch(new RegExp(`limits\\.yaml:${BROKEN_LINE}:\\d+`))
      expect(error).toContain("max_cardinality")
      expect(await row.locator("td.err code").count()).toBeGreaterThan(0)
      // The files on disk (the broken ones) now differ from the active content.
      expect(await page.locator("p.drift").count()).toBe(1)
      await shoot("reload-rejected", "#timeline-section")
    })

    it("rollback: the button asks first, then makes version 1's limits active as a new version", async () => {
      const versions = (await (await g.get("/api/v1/status/versions")).json()) as {
        versions: Array<{ version: number; limits_sha256: string }>
      }
      const v1 = versions.versions.find((v) => v.version === 1)
      expect(v1).toBeDefined()
      const before = await g.status()
      expect(before.version).toBe(2)
      expect(before.limits_sha256).not.toBe(v1?.limits_sha256)

      const button = page.locator('form.rollback[action="/-/rollback?version=1"] button')
      expect(await button.textContent()).toBe("Roll back to version 1")
      // Dismissed: nothing happens.
      const dismissed = new Promise<string>((resolve) =>
        page.once("dialog", (d: { message(): string; dismiss(): Promise<void> }) => {
          resolve(d.message())
          void d.dismiss()
        }),
      )
      await page.locator("details.version", { has: button }).locator("summary").click()
      await button.click()
      expect(await dismissed).toContain("Roll back to version 1?")
      await sleep(300)
      expect((await g.status()).version).toBe(2)

      // Accepted: version 3 is version 1's content.
      page.once("dialog", (d: { accept(): Promise<void> }) => void d.accept())
      await button.click()
      await waitFor(
        "the rollback's result on the page",
        async () =>
          ((await page.locator("#action-result").textContent()) ?? "").includes("Rollback") || undefined,
        5_000,
        50,
      )
      expect(await page.locator("#action-result").textContent()).toBe(
        "Rollback applied: version 3 is active.",
      )
      const after = (await (await g.get("/api/v1/status/config")).json()) as {
        version: number
        trigger: string
        limits_sha256: string
        rules_count: number
        files_differ: boolean
      }
      expect(after.version).toBe(3)
      expect(after.trigger).toBe("rollback")
      expect(after.limits_sha256).toBe(v1?.limits_sha256)
      expect(after.rules_count).toBe(2)
      expect(after.files_differ).toBe(true)
      // The page refreshes itself after the rollback's answer (the message comes first).
      await waitFor(
        "the page to show version 3",
        async () =>
          (await page.locator("#h-active").textContent()) === "Active version 3" ? true : undefined,
        5_000,
        50,
      )
      const active = (await page.locator("details.version.active summary").textContent()) as string
      expect(active).toContain("rollback of v1")
      const ruleNames = await page.locator("#rules tbody th[scope=row] .name").allTextContents()
      expect(ruleNames).toEqual(["payments", "batch"])
      await shoot("rollback", "#active")
      expect(errors).toEqual([])
    })
  },
)
