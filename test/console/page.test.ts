import { HttpApp } from "@effect/platform"
import { Layer } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { esc } from "../../src/console/page.js"
import * as ConsoleService from "../../src/console/service.js"
import * as EventLog from "../../src/events/log.js"
import * as Reload from "../../src/reload/reloader.js"
import { routes } from "../../src/server/control.js"
import * as Log from "../../src/telemetry/log.js"
import { Telemetry } from "../../src/telemetry/metrics.js"
import { type MemoryFiles, memoryDecoder } from "../reload/harness.js"

/** The page and its assets from the control server's routes, in this process. */

const HOSTILE = `<img src=x onerror=alert(1)>`
const files: MemoryFiles = {
  limits: `rules:\n  - name: "${HOSTILE}"\n    max_cardinality: 10\n    action: drop\n`,
  config: "limits:\n  dry_run: false\n",
}

const serve = (reloadHttp: boolean) =>
  HttpApp.toWebHandlerLayer(
    routes({ reloadHttp, reloadAuthTokenFile: undefined }),
    ConsoleService.layer.pipe(
      Layer.provideMerge(
        Reload.layer({
          paths: { limits: "limits.yaml", config: "config.yaml" },
          dryRunFlag: undefined,
          debounceMs: 0,
        }),
      ),
      Layer.provideMerge(memoryDecoder(files)),
      Layer.provideMerge(EventLog.layer(undefined)),
      Layer.provideMerge(Telemetry.test),
      Layer.provideMerge(Log.layer("error", () => {})),
    ),
  )

let dispose: (() => Promise<void>) | undefined
afterEach(async () => {
  await dispose?.()
})

describe("GET /", () => {
  it("renders the page server-side, with every text escaped, and serves only its own assets", async () => {
    const server = serve(true)
    dispose = server.dispose
    const get = (p: string) => server.handler(new Request(`http://control${p}`))
    const page = await get("/")
    expect(page.status).toBe(200)
    expect(page.headers.get("content-type")).toContain("text/html")
    const html = await page.text()
    expect(html).toContain('<h2 id="h-active">Active version 1</h2>')
    expect(html).toContain('<table id="rules">')
    expect(html).toContain('<table id="timeline">')
    expect(html).not.toContain(HOSTILE)
    expect(html).toContain(esc(HOSTILE))
    // Nothing from another host.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//)
    // Version 1 is active: nothing to roll back to yet. After a reload, version 1 has the button.
    expect(html).not.toContain('action="/-/rollback?version=')
    files.limits = files.limits.replace("max_cardinality: 10", "max_cardinality: 20")
    expect((await server.handler(new Request("http://control/-/reload", { method: "POST" }))).status).toBe(
      200,
    )
    const second = await (await get("/")).text()
    expect(second).toContain('action="/-/rollback?version=1"')
    expect(second).not.toContain('action="/-/rollback?version=2"')
    expect(second).toContain("max_cardinality: 20")
    expect(html).toContain('id="token"')

    const css = await get("/console/console.css")
    expect(css.status).toBe(200)
    expect(css.headers.get("content-type")).toContain("text/css")
    const js = await get("/console/console.js")
    expect(js.status).toBe(200)
    expect(await js.text()).toContain("refresh")
    for (const p of ["/console/page.js", "/console/..%2Fpage.ts", "/console/"]) {
      expect([p, (await get(p)).status]).toEqual([p, 404])
    }
  })

  it("offers no rollback without -reload-http", async () => {
    const server = serve(false)
    dispose = server.dispose
    const html = await (await server.handler(new Request("http://control/"))).text()
    expect(html).not.toContain("/-/rollback")
    expect(html).toContain("Rollback over HTTP is off")
  })
})

describe("esc", () => {
  it("escapes the five HTML characters", () => {
    expect(esc(`<a href="x" title='y'>&</a>`)).toBe(
      "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;",
    )
  })
})
