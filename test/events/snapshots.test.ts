import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { sha256Hex } from "../../src/config/decode.js"
import * as EventLog from "../../src/events/log.js"
import * as Log from "../../src/telemetry/log.js"

/** Runs `body` with an event log in `file`; everything queued is flushed before it returns. */
const withLog = <A>(file: string, body: (log: EventLog.EventLogService) => Effect.Effect<A>) =>
  Effect.gen(function* () {
    const log = yield* EventLog.make(file)
    const out = yield* body(log)
    yield* log.flush
    return out
  }).pipe(Effect.scoped, Effect.provide(Log.layer("error", () => {})), Effect.runPromise)

const store = (log: EventLog.EventLogService, text: string) => {
  const bytes = Buffer.from(text)
  return Effect.as(log.storeSnapshot(sha256Hex(bytes), bytes), sha256Hex(bytes))
}

describe("event log snapshots", () => {
  const dir = () => fs.mkdtempSync(path.join(os.tmpdir(), "mg-snap-"))

  it("keeps each content under its hash, fsync'd and renamed into place, with no temporary file left", async () => {
    const file = path.join(dir(), "events.jsonl")
    const hashes = await withLog(file, (log) =>
      Effect.all([store(log, "rules: []\n"), store(log, "rules: [] # two\n"), store(log, "rules: []\n")]),
    )
    const names = fs.readdirSync(EventLog.snapshotDir(file)).sort()
    expect(names).toEqual([...new Set(hashes)].map((h) => `${h}.yaml`).sort())
    expect(fs.readFileSync(EventLog.snapshotPath(file, hashes[1] as string), "utf8")).toBe(
      "rules: [] # two\n",
    )
  })

  it("writes a hash once per process: storing it again leaves the very file in place", async () => {
    const file = path.join(dir(), "events.jsonl")
    await withLog(file, (log) =>
      Effect.gen(function* () {
        const h = yield* store(log, "rules: []\n")
        yield* log.flush
        const inode = fs.statSync(EventLog.snapshotPath(file, h)).ino
        yield* store(log, "rules: []\n")
        yield* log.flush
        expect(fs.statSync(EventLog.snapshotPath(file, h)).ino).toBe(inode)
      }),
    )
  })

  it("makes the directory again when it was removed while running", async () => {
    const file = path.join(dir(), "events.jsonl")
    const second = await withLog(file, (log) =>
      Effect.gen(function* () {
        yield* store(log, "rules: []\n")
        yield* log.flush
        fs.rmSync(EventLog.snapshotDir(file), { recursive: true })
        return yield* store(log, "rules: [] # after\n")
      }),
    )
    expect(fs.readFileSync(EventLog.snapshotPath(file, second), "utf8")).toBe("rules: [] # after\n")
  })

  it("mends a snapshot an earlier run left damaged when the same content is stored again", async () => {
    const file = path.join(dir(), "events.jsonl")
    const h = await withLog(file, (log) => store(log, "rules: []\n"))
    fs.writeFileSync(EventLog.snapshotPath(file, h), "damaged")
    await withLog(file, (log) => store(log, "rules: []\n"))
    expect(fs.readFileSync(EventLog.snapshotPath(file, h), "utf8")).toBe("rules: []\n")
  })
})
