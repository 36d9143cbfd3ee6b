import { HttpApp } from "@effect/platform"
import { Layer } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import * as ConsoleService from "../../src/console/service.js"
import * as EventLog from "../../src/events/log.js"
import * as Reload from "../../src/reload/reloader.js"
import { routes } from "../../src/server/control.js"
import * as Log from "../../src/telemetry/log.js"
import { Telemetry } from "../../src/telemetry/metrics.js"
import { limitsText, type MemoryFiles, memoryDecoder } from "./harness.js"

/** The control server's reload routes in this process, on a pipeline whose files are held in memory. */

const files: MemoryFiles = { limits: limitsText(["a"]), config: "limits:\n  dry_run: false\n" }
/** Read 1 (the first after startup) dies; the others read `files`. */
const decoder = memoryDecoder(files, (n) => n === 1)

const serve = () =>
  HttpApp.toWebHandlerLayer(
    routes({ reloadHttp: true, reloadAuthTokenFile: undefined }),
    ConsoleService.layer.pipe(
      Layer.provideMerge(
        Reload.layer({
          paths: { limits: "limits.yaml", config: "config.yaml" },
          dryRunFlag: undefined,
          debounceMs: 0,
        }),
      ),
      Layer.provideMerge(decoder),
      Layer.provideMerge(EventLog.layer(undefined)),
      Layer.provideMerge(Telemetry.test),
      Layer.provideMerge(Log.layer("error", () => {})),
    ),
  )

let dispose: (() => Promise<void>) | undefined
afterEach(async () => {
  await dispose?.()
})

describe("POST /-/reload and /api/v1/status/config", () => {
  it("answers 500 with status error for a defect in the attempt, then 200 for the next; restart_required is reported", async () => {
    const server = serve()
    dispose = server.dispose
    const post = () => server.handler(new Request("http://control/-/reload", { method: "POST" }))
    const failed = await post()
    expect(failed.status).toBe(500)
    const body = (await failed.json()) as { status: string; error: { message: string }; version: number }
    expect(body.status).toBe("error")
    expect(body.error.message).toContain("injected decoder defect")
    expect(body.version).toBe(1)

    files.config = "limits:\n  dry_run: false\nmemory:\n  limit_ratio: 0.5\n"
    const applied = await post()
    expect(applied.status).toBe(200)
    expect(await applied.json()).toMatchObject({
      status: "applied",
      version: 2,
      restart_required: ["memory.limit_ratio"],
    })
    const status = await server.handler(new Request("http://control/api/v1/status/config"))
    expect(await status.json()).toMatchObject({
      version: 2,
      restart_required: ["memory.limit_ratio"],
    })
  })
})
