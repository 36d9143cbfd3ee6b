import { Effect, Layer } from "effect"
import { afterAll, describe, expect, it, vi } from "vitest"
import { dataPathLayer } from "../../src/app/program.js"
import { Reloader, type ReloaderService } from "../../src/reload/reloader.js"
import type { ConfigVersion } from "../../src/reload/version.js"
import * as Log from "../../src/telemetry/log.js"
import { Telemetry } from "../../src/telemetry/metrics.js"
import { versionOf } from "../limits/engine.js"
import { otlpGauge, postOtlp } from "../support/data-path.js"
import { freePort } from "../support/governor.js"

describe("an error inside a receiver's request handling", () => {
  const consoleLog = vi.spyOn(console, "log")
  afterAll(() => consoleLog.mockRestore())

  it("is answered 500 and logged as one JSON line at error, through the -log-level of the data path", async () => {
    const base = versionOf("rules: []\n")
    // A version whose limits cannot be read: enforcement throws inside the HTTP handler.
    const broken: ConfigVersion = Object.defineProperty({ ...base }, "limits", {
      get: () => {
        throw new Error("limits unreadable")
      },
    })
    const port = await freePort()
    const lines: Array<string> = []
    consoleLog.mockClear()
    const status = await Effect.gen(function* () {
      const reloader = Layer.succeed(Reloader, {
        current: () => broken,
        active: Effect.succeed(broken),
        onConfigApplied: () => Effect.void,
      } as unknown as ReloaderService)
      return yield* Effect.promise(() =>
        postOtlp(port, otlpGauge("m", [{ attributes: {}, value: 1 }]), "json"),
      ).pipe(
        Effect.provide(
          dataPathLayer({
            httpListen: `127.0.0.1:${port}`,
            grpcListen: "",
            prwListen: "",
            exporterEndpoint: undefined,
            prwExporterEndpoint: undefined,
            memoryLimit: undefined,
          }).pipe(Layer.provide(reloader), Layer.provide(Telemetry.test)),
        ),
      )
    }).pipe(
      Effect.provide(Log.layer("error", (l) => lines.push(l))),
      Effect.map((a) => a.status),
      Effect.runPromise,
    )
    expect(status).toBe(500)
    const logged = lines.map(
      (l) => JSON.parse(l) as { level: string; message: string; fields: { error?: string } },
    )
    expect(logged.map((l) => [l.level, l.message])).toEqual([["error", "receiver failed on a request"]])
    expect(logged[0]?.fields.error).toContain("limits unreadable")
    expect(consoleLog).not.toHaveBeenCalled()
  })
})
