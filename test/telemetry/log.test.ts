import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import type { LogLevelName } from "../../src/cli/flags.js"
import * as Log from "../../src/telemetry/log.js"

/** The lines `body` writes through the JSON logger at `level`, parsed. */
const linesAt = (level: LogLevelName, body: Effect.Effect<void>) => {
  const lines: Array<string> = []
  Effect.runSync(body.pipe(Effect.provide(Log.layer(level, (l) => lines.push(l)))))
  return lines.map(
    (l) => JSON.parse(l) as { level: string; message: string; fields: Record<string, unknown> },
  )
}

const everyLevel = Effect.all([
  Log.logDebug("d", { a: 1 }),
  Log.logInfo("i", { b: "two" }),
  Log.logWarn("w", { c: true }),
  Log.logError("e", { d: null }),
])

describe("the JSON logger", () => {
  it("writes the lines at or above the level, each with its own fields, and nothing below", () => {
    expect(linesAt("debug", Effect.asVoid(everyLevel))).toEqual([
      expect.objectContaining({ level: "debug", message: "d", fields: { a: 1 } }),
      expect.objectContaining({ level: "info", message: "i", fields: { b: "two" } }),
      expect.objectContaining({ level: "warn", message: "w", fields: { c: true } }),
      expect.objectContaining({ level: "error", message: "e", fields: { d: null } }),
    ])
    expect(linesAt("info", Effect.asVoid(everyLevel)).map((l) => l.level)).toEqual(["info", "warn", "error"])
    expect(linesAt("warn", Effect.asVoid(everyLevel)).map((l) => l.level)).toEqual(["warn", "error"])
    expect(linesAt("error", Effect.asVoid(everyLevel)).map((l) => l.message)).toEqual(["e"])
  })

  it("a line's fields do not leak into the next line", () => {
    const lines = linesAt(
      "info",
      Effect.asVoid(Effect.all([Log.logInfo("one", { x: 1 }), Log.logInfo("two")])),
    )
    expect(lines.map((l) => l.fields)).toEqual([{ x: 1 }, {}])
  })
})
