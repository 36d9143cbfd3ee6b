import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import { parseEventLog } from "../../src/events/log.js"
import { tempDir } from "../support/governor.js"
import { hash, limitsText, replayLog, withPipeline, writeAtomic } from "./harness.js"

/**
 * `replay` folds a log with the live process's `apply`: the laws here hold for logs written by the
 * real pipeline (several runs of it into one file) and for the same logs edited by hand.
 */

const dirs: Array<string> = []
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})
const fresh = () => {
  const d = tempDir("mg-replay-laws-")
  dirs.push(d)
  return d
}

const A = limitsText(["a"])
const B = limitsText(["a", "b"])
const C = limitsText(["b", "c", "d"], 20)
const BROKEN = "rules:\n  - name: a\n    max_card"

/** One run of the pipeline on `file`, appending to `log`: each text is written, then a reload asked for. */
const run = (
  file: string,
  log: string,
  texts: ReadonlyArray<string>,
  options: { dryRunFlag?: boolean } = {},
): Promise<number> =>
  withPipeline(
    { paths: { limits: file, config: undefined }, dryRunFlag: options.dryRunFlag, debounceMs: 0 },
    ({ reloader }) =>
      Effect.gen(function* () {
        for (const t of texts) {
          writeAtomic(file, t)
          yield* reloader.request("sighup")
        }
        return (yield* reloader.active).version
      }),
    log,
  )

/** A log of three runs: reloads, a run with `-limits-dry-run`, a run whose startup failed. */
const threeRuns = async () => {
  const d = fresh()
  const file = path.join(d, "limits.yaml")
  const log = path.join(d, "events.jsonl")
  writeAtomic(file, A)
  expect(await run(file, log, [B, B, BROKEN, C])).toBe(3)
  writeAtomic(file, B)
  expect(await run(file, log, [C], { dryRunFlag: true })).toBe(2)
  writeAtomic(file, BROKEN)
  await expect(run(file, log, [])).rejects.toThrow()
  return { d, file, log }
}

describe("replay folds a log of several runs", () => {
  it("each Started begins a run; a run whose startup failed has no active version; the next run starts at 1", async () => {
    const { file, log } = await threeRuns()
    const failed = await replayLog(log)
    expect(failed.divergences).toEqual([])
    expect(failed.state.runs).toBe(3)
    expect(failed.state.active).toBeUndefined()
    expect(failed.state.rejected).toBe(2)

    writeAtomic(file, A)
    expect(await run(file, log, [])).toBe(1)
    const after = await replayLog(log)
    expect(after.divergences).toEqual([])
    expect(after.state.runs).toBe(4)
    expect(after.state.running).toBe(false)
    expect(after.state.active).toMatchObject({
      version: 1,
      limitsSha256: hash(A),
      rulesCount: 1,
      dryRun: false,
    })
  })

  it("derives dry_run from the run's -limits-dry-run flag as the live process did", async () => {
    const { log } = await threeRuns()
    const events = parseEventLog(fs.readFileSync(log, "utf8")).events
    const secondRun = events.filter((e) => e.type === "Started")[1]
    expect(secondRun).toMatchObject({ dry_run_flag: true })
    const applied = events.filter((e) => e.type === "ConfigApplied" && e.seq > (secondRun?.seq ?? 0))
    expect(applied.map((e) => e.type === "ConfigApplied" && e.dry_run)).toEqual([true, true])
    expect((await replayLog(log)).divergences).toEqual([])
  })
})

/** The fields a forger may change, and a value that differs from any it holds. */
const FORGERIES: ReadonlyArray<{
  key: string
  types: ReadonlyArray<string>
  change: (v: unknown) => unknown
}> = [
  {
    key: "version",
    types: ["ConfigApplied", "ConfigUnchanged", "ReloadRejected", "Stopped"],
    change: (v) => Number(v) + 6,
  },
  { key: "rules_count", types: ["ConfigApplied"], change: (v) => Number(v) + 97 },
  { key: "dry_run", types: ["ConfigApplied"], change: (v) => !v },
  { key: "limits_sha256", types: ["ConfigApplied", "ConfigUnchanged"], change: () => hash("forged") },
]

describe("replay --verify catches a forged or corrupted field", () => {
  it("law: any derived field of any event, changed, is a divergence at that event", async () => {
    const { log } = await threeRuns()
    const lines = fs.readFileSync(log, "utf8").trimEnd().split("\n")
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    const targets = events.flatMap((e, i) =>
      FORGERIES.filter((f) => f.types.includes(String(e.type))).map((f) => ({ i, f })),
    )
    expect(targets.length).toBeGreaterThan(10)
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...targets), async ({ i, f }) => {
        const d = fresh()
        const forged = path.join(d, "events.jsonl")
        fs.cpSync(`${log}.snapshots`, `${forged}.snapshots`, { recursive: true })
        const e = events[i] as Record<string, unknown>
        const edited = lines.map((l, j) =>
          j === i ? JSON.stringify({ ...e, [f.key]: f.change(e[f.key]) }) : l,
        )
        fs.writeFileSync(forged, `${edited.join("\n")}\n`)
        const { divergences } = await replayLog(forged)
        expect(divergences.map((x) => x.seq)).toContain(e.seq)
      }),
      { numRuns: 30 },
    )
  })

  it("a rejection of a config that the current code accepts is a divergence", async () => {
    const { log } = await threeRuns()
    const events = parseEventLog(fs.readFileSync(log, "utf8")).events
    const rejected = events.find((e) => e.type === "ReloadRejected" && e.limits_sha256 !== "")
    if (rejected?.type !== "ReloadRejected") throw new Error("the log has no rejection with a snapshot")
    // A copy of the log that says the valid bytes of A were the ones rejected.
    const d = fresh()
    const forged = path.join(d, "events.jsonl")
    fs.cpSync(`${log}.snapshots`, `${forged}.snapshots`, { recursive: true })
    const text = fs
      .readFileSync(log, "utf8")
      .split("\n")
      .map((l) =>
        l.startsWith(`{"seq":${rejected.seq},`) ? l.replaceAll(rejected.limits_sha256, hash(A)) : l,
      )
      .join("\n")
    expect(text).toContain(hash(A))
    fs.writeFileSync(forged, text)
    const { divergences } = await replayLog(forged)
    expect(divergences).toContainEqual({
      seq: rejected.seq,
      problem: expect.stringContaining("now valid") as unknown as string,
    })
  })
})
