import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort, type Governor, startGovernor, tempDir, waitFor } from "../support/governor.js"
import { gaugeBody, postOtlp } from "../support/otlp-traffic.js"
import { CHROMIUM, haveChromium, inCi, LIMITS_V1 } from "./fixture.js"

/**
 * The console page in a real browser (Debian's chromium driven by playwright-core, which never
 * downloads one). Without /usr/bin/chromium the test is skipped with a message, except in CI
 * (`CI` set), where it must run and fails instead.
 */
if (!haveChromium && !inCi) {
  process.stderr.write(`console browser test SKIPPED: ${CHROMIUM} is missing (apt-get install -y chromium)\n`)
}

const LIMITS_V2 = LIMITS_V1.replace("max_cardinality: 40", "max_cardinality: 30")
const BROKEN = `${LIMITS_V2}  - name: bad\n    max_cardinality: -3\n`

const SCREENSHOTS = { laptop: "/tmp/console-laptop.png", phone: "/tmp/console-phone.png" }

describe.skipIf(!haveChromium && !inCi)("console page in a browser", () => {
  let g: Governor
  let dir: string
  // biome-ignore lint/suspicious/noExplicitAny: playwright-core is loaded only when the test runs
  let browser: any

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`${CHROMIUM} is missing; in CI the console browser test must run`)
    dir = tempDir("mg-browser-")
    const limits = path.join(dir, "limits.yaml")
    fs.writeFileSync(limits, LIMITS_V1)
    const httpPort = await freePort()
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
      ],
    })
    // Traffic: 36 series of payments over three services, 8 of batch (3 over its limit).
    for (const service of ["api", "web", "worker"]) {
      expect(await postOtlp(httpPort, gaugeBody("pay_requests", 12, { service }))).toBe(200)
    }
    expect(await postOtlp(httpPort, gaugeBody("batch_jobs", 8))).toBe(200)
    // Reloads: applied, rejected (with a position), applied again.
    fs.writeFileSync(limits, LIMITS_V2)
    g.signal("SIGHUP")
    await g.waitForVersion(2)
    fs.writeFileSync(limits, BROKEN)
    const rejected = await fetch(`${g.url}/-/reload`, { method: "POST" })
    expect(rejected.status).toBe(422)
    fs.writeFileSync(limits, LIMITS_V1)
    g.signal("SIGHUP")
    await g.waitForVersion(3)
    const { chromium } = await import("playwright-core")
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] })
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await g?.stop()
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  it("renders the active version, timeline, rules and versions; loads nothing from elsewhere; Tab reaches the controls; refreshes itself", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    const page = await context.newPage()
    const requests: Array<string> = []
    page.on("request", (r: { url(): string }) => requests.push(r.url()))
    const errors: Array<string> = []
    page.on("pageerror", (e: Error) => errors.push(e.message))
    await page.goto(`${g.url}/`)

    await expect(page.locator("#h-active").textContent()).resolves.toBe("Active version 3")
    const timeline = page.locator("#timeline tbody tr")
    expect(await timeline.count()).toBe(4)
    const rejectedRow = await page.locator("#timeline tbody tr.r-rejected").textContent()
    expect(rejectedRow).toContain("http")
    expect(rejectedRow).toMatch(/limits\.yaml:\d+:\d+/)
    const ruleNames = await page.locator("#rules tbody th[scope=row] .name").allTextContents()
    expect(ruleNames).toEqual(["payments", "batch"])
    const payments = await page.locator("#rules tbody tr").first().textContent()
    expect(payments).toContain("36 / 40")
    expect(payments).toContain("api")
    const batch = await page.locator("#rules tbody tr").nth(1).textContent()
    expect(batch).toContain("5 / 5")
    expect(await page.locator("details.version").count()).toBe(3)
    expect(await page.locator("#rules th[scope=col]").count()).toBe(6)

    // Keyboard: Tab from the top reaches the skip link, the refresh button, the auto-refresh
    // checkbox, and goes on to the version summaries and rollback buttons.
    const focused = (): Promise<string> =>
      page.evaluate(
        `(() => { const el = document.activeElement; return el === null ? "" : el.tagName.toLowerCase() + "#" + el.id + ":" + (el.textContent || "").trim().slice(0, 20) })()`,
      )
    const reached: Array<string> = []
    for (let i = 0; i < 40 && !reached.some((r) => r.startsWith("summary#")); i++) {
      await page.keyboard.press("Tab")
      reached.push(await focused())
    }
    expect(reached[0]).toContain("a#:Skip to content")
    expect(reached).toContain("button#refresh:Refresh now")
    expect(reached).toContain("input#auto:")
    expect(reached.at(-1)).toMatch(/^summary#/)
    // Enter on the focused summary opens that version's diff.
    await page.keyboard.press("Enter")
    await waitFor("a version opened with the keyboard", async () =>
      (await page.locator("details.version[open]").count()) > 0 ? true : undefined,
    )
    expect(await page.locator("details.version[open] pre.diff").first().textContent()).toContain(
      "max_cardinality",
    )

    await page.screenshot({ path: SCREENSHOTS.laptop, fullPage: true })

    // The page refreshes itself (every 5 s) and keeps the open version open.
    await waitFor(
      "the page to refresh itself",
      async () => (/^updated /.test((await page.locator("#updated").textContent()) ?? "") ? true : undefined),
      12_000,
      200,
    )
    expect(await page.locator("details.version[open]").count()).toBe(1)

    expect(errors).toEqual([])
    expect(requests.filter((u) => !u.startsWith(g.url))).toEqual([])
    await context.close()
  })

  it("reads on a phone, and without JavaScript", async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
    })
    const page = await phone.newPage()
    await page.goto(`${g.url}/`)
    const overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    expect(overflow).toBeLessThanOrEqual(0)
    await page.screenshot({ path: SCREENSHOTS.phone, fullPage: true })
    await phone.close()

    const noJs = await browser.newContext({ javaScriptEnabled: false })
    const plain = await noJs.newPage()
    await plain.goto(`${g.url}/`)
    expect(await plain.locator("#rules tbody tr").count()).toBe(2)
    expect(await plain.locator("#timeline tbody tr").count()).toBe(4)
    await noJs.close()
  })
})
