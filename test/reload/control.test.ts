import { HttpApp } from "@effect/platform"
import { Effect, Either, Layer } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { sha256Hex } from "../../src/config/decode.js"
import { ConfigDecoder } from "../../src/config/decoder.js"
import { decodeConfig, type FileRead } from "../../src/config/load.js"
import * as EventLog from "../../src/events/log.js"
import * as Reload from "../../src/reload/reloader.js"
import { routes } from "../../src/server/control.js"
import * as Log from "../../src/telemetry/log.js"
import { Telemetry } from "../../src/telemetry/metrics.js"
import { limitsText } from "./harness.js"

/** The control server's reload routes in this process, on a pipeline whose files are held in memory. */

const readOf = (text: string | undefined): FileRead | undefined =>
  text === undefined
    ? undefined
    : Either.right({ bytes: Buffer.from(text), sha256: sha256Hex(Buffer.from(text)) })

const files = { limits: limitsText(["a"]), config: "limits:\n  dry_run: false\n" }
let loads = 0
/** Load 1 (the first after startup) dies; the others read `files`. */
const decoder = Layer.succeed(ConfigDecoder, {
  load: (paths) =>
    Effect.suspend(() => {
      if (loads++ === 1) return Effect.die(new Error("injected decoder defect"))
      const read = { limits: readOf(files.limits), main: readOf(files.config) }
      return Effect.succeed({ read, decoded: decodeConfig(paths, read) })
    }),
})

const serve = () =>
  HttpApp.toWebHandlerLayer(
    routes({ reloadHttp: true, reloadAuthTokenFile: undefined }),
    Reload.layer({
      paths: { limits: "limits.yaml", config: "config.yaml" },
      dryRunFlag: undefined,
      debounceMs: 0,
    }).pipe(
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

    files.config = "limits:\n  dry_run: false\nbuffer:\n  size: 10\n"
    const applied = await post()
    expect(applied.status).toBe(200)
    expect(await applied.json()).toMatchObject({
      status: "applied",
      version: 2,
      restart_required: ["buffer.size"],
    })
    const status = await server.handler(new Request("http://control/api/v1/status/config"))
    expect(await status.json()).toMatchObject({ version: 2, restart_required: ["buffer.size"] })
  })
})
