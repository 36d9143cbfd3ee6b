import * as net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { experimental, logVerbosity } from "@grpc/grpc-js"
import { Effect } from "effect"
import { afterAll, beforeAll, vi } from "vitest"
import { applyGrpcLogRoute, routeGrpcLogs } from "../../src/protocols/otlp/grpc-logs.js"
import { setGrpcLogRoute } from "../../src/telemetry/grpc-log-route.js"
import * as Log from "../../src/telemetry/log.js"
import { freePort, runCli } from "../support/governor.js"

const LIMITS = ["-limits-config", "deploy/examples/limits.yaml"]

/** Every stdout line as the log contract has it: one JSON object with level, message and fields. */
const parseLogLines = (stdout: string) =>
  stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((line) => {
      let parsed: unknown
      try {
        parsed = JSON.parse(line)
      } catch {
        expect.fail(`a stdout line is not JSON: ${line}`)
      }
      expect(parsed).toMatchObject({ level: expect.any(String), message: expect.any(String) })
      const { level, message, fields } = parsed as { level: string; message: string; fields: unknown }
      expect(["debug", "info", "warn", "error"]).toContain(level)
      expect(typeof fields === "object" && fields !== null && !Array.isArray(fields)).toBe(true)
      return { level, message, fields: fields as Record<string, unknown> }
    })

/** Holds a loopback port for the life of the tests, so the governor cannot listen on it. */
let taken: net.Server
let takenPort = 0
beforeAll(async () => {
  takenPort = await freePort()
  taken = net.createServer()
  await new Promise<void>((resolve) => taken.listen(takenPort, "127.0.0.1", resolve))
})
afterAll(() => new Promise<void>((resolve) => taken.close(() => resolve())))

/** Runs the governor with every receiver off but `receiver`, which is given the taken port. */
const runWithTakenPort = async (receiver: string, level: string) => {
  const receivers = { "-http-listen": "", "-grpc-listen": "", "-prw-listen": "" } as Record<string, string>
  receivers[receiver] = `127.0.0.1:${takenPort}`
  return runCli([
    ...LIMITS,
    "-stats-addr",
    `127.0.0.1:${await freePort()}`,
    ...Object.entries(receivers).flat(),
    "-log-level",
    level,
  ])
}

describe("every line on stdout is one JSON log line and honours -log-level", () => {
  for (const receiver of ["-http-listen", "-grpc-listen", "-prw-listen"]) {
    it(`a ${receiver} address already in use: exit 1, JSON lines only, nothing below error at -log-level error`, async () => {
      const r = await runWithTakenPort(receiver, "error")
      expect(r.code).toBe(1)
      const lines = parseLogLines(r.stdout)
      expect(lines.filter((l) => l.level !== "error")).toEqual([])
      const fatal = lines.find((l) => l.message === "metrics-governor exiting on an error")
      expect(String(fatal?.fields.error)).toContain(`cannot listen on 127.0.0.1:${takenPort}`)
      expect(String(fatal?.fields.error)).toContain("EADDRINUSE")
      // The operator still sees why on stderr, and no line in another logger's format anywhere.
      expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${takenPort}`)
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/timestamp=|level=|^E /m)
    })
  }

  it("at -log-level info the same start logs its info lines too, all JSON", async () => {
    const r = await runWithTakenPort("-grpc-listen", "info")
    expect(r.code).toBe(1)
    const lines = parseLogLines(r.stdout)
    expect(lines.some((l) => l.level === "info")).toBe(true)
    // The gRPC receiver opens its own listener (TLS may be turned on and off): the one error is the exit's.
    expect(lines.filter((l) => l.level === "error").map((l) => l.message)).toEqual([
      "metrics-governor exiting on an error",
    ])
  })
})

describe("logging from callbacks", () => {
  const stdout = vi.spyOn(process.stdout, "write")
  const consoleLog = vi.spyOn(console, "log")
  afterAll(() => {
    stdout.mockRestore()
    consoleLog.mockRestore()
  })

  it.effect("callbackLogger logs from a Node callback with the fiber's JSON logger and level", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const log = yield* Log.callbackLogger.pipe(Effect.provide(Log.layer("warn", (l) => lines.push(l))))
      stdout.mockClear()
      consoleLog.mockClear()
      yield* Effect.promise(
        () =>
          new Promise<void>((resolve) =>
            setTimeout(() => {
              log(Log.logInfo("below the level", { a: 1 }))
              log(Log.logError("receiver failed on a request", { error: "boom" }))
              setTimeout(resolve, 10)
            }, 1),
          ),
      )
      expect(lines.map((l) => JSON.parse(l))).toEqual([
        {
          ts: expect.any(String),
          level: "error",
          message: "receiver failed on a request",
          fields: { error: "boom" },
        },
      ])
      expect(stdout).not.toHaveBeenCalled()
      expect(consoleLog).not.toHaveBeenCalled()
    }),
  )

  /** The JSON lines of what grpc-js logs in `emit`, its log lines routed by `route`. */
  const grpcLogLines = (route: (log: (line: Effect.Effect<void>) => void) => void, emit: () => void) =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const log = yield* Log.callbackLogger.pipe(Effect.provide(Log.layer("info", (l) => lines.push(l))))
      route(log)
      emit()
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
      return lines.map((l) => JSON.parse(l))
    })

  it.effect(
    "grpc-js loaded after the program set the route (a gRPC receiver or exporter configured later) logs through it",
    () =>
      Effect.gen(function* () {
        const lines = yield* grpcLogLines(
          (log) => {
            // As the program does at start, before any module that loads grpc-js; then as they do when loaded.
            setGrpcLogRoute(log)
            applyGrpcLogRoute()
          },
          () => experimental.log(logVerbosity.ERROR, "after the lazy load %d", 2),
        )
        expect(lines).toEqual([
          {
            ts: expect.any(String),
            level: "error",
            message: "grpc-js",
            fields: { detail: "after the lazy load 2" },
          },
        ])
      }),
  )

  it.effect("what grpc-js logs becomes a JSON line of the same level", () =>
    Effect.gen(function* () {
      const lines = yield* grpcLogLines(routeGrpcLogs, () => {
        // As grpc-js logs, at its default verbosity (errors only).
        experimental.log(logVerbosity.ERROR, "No address added out of total %d resolved", 1)
        experimental.log(logVerbosity.DEBUG, "below grpc-js's verbosity")
      })
      expect(lines).toEqual([
        {
          ts: expect.any(String),
          level: "error",
          message: "grpc-js",
          fields: { detail: "No address added out of total 1 resolved" },
        },
      ])
    }),
  )
})
