/**
 * Where one reload's time goes, stage by stage, in this process: the same functions a reload runs,
 * each timed alone with `performance.now()` over many iterations (medians and p99 in µs).
 *
 * Stages: reading both files (`readConfigBytes`), hashing the bytes, the limits decode (UTF-8, YAML,
 * schema, compile), the YAML parse and schema decode without the compile, the compile alone
 * (`compileSteps`, fresh and with the compile cache), reconciling the stats (`reconcileSteps`),
 * building the version (`nextVersionSteps`), a whole `decide` run in slices, and the event log's
 * `append` and `storeSnapshot` (fsync'd) in a temporary directory.
 *
 * `node --import tsx bench/reload-stages.ts [rules] [iterations]` (defaults: 100 rules, 2,000
 * iterations, each stage bounded to 10 s).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Either, Layer, Schema } from "effect"
import { decodeLimits, decodeMainConfig, sha256Hex } from "../src/config/decode.js"
import * as Decoder from "../src/config/decoder.js"
import { LimitsSpec } from "../src/config/limits-schema.js"
import { readAndHash, readConfigBytes } from "../src/config/load.js"
import { fastYamlValue } from "../src/config/yaml-source.js"
import * as EventLog from "../src/events/log.js"
import { compileLimits, compileSteps, freshCompileSteps } from "../src/limits/compile.js"
import { accountedRules, reconcile } from "../src/limits/stats.js"
import * as Reload from "../src/reload/reloader.js"
import { Reloader } from "../src/reload/reloader.js"
import { applySteps, decide, initialState } from "../src/reload/state.js"
import { nextVersion } from "../src/reload/version.js"
import * as Log from "../src/telemetry/log.js"
import { Telemetry } from "../src/telemetry/metrics.js"
import { runSliced, runToEnd } from "../src/threads/slices.js"
import { editedLimits, limitsOf, replaceFile } from "./reload.js"

const RULES = Number(process.argv[2] ?? 100)
const ITER = Number(process.argv[3] ?? 2_000)
const STAGE_BUDGET_MS = 10_000

const stats = (xs: Array<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const q = (p: number) => (s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number) * 1000
  return { n: s.length, p50: q(50), p99: q(99) }
}

const rows: Array<{ stage: string; n: number; p50: number; p99: number }> = []

const time = async (stage: string, f: () => unknown | Promise<unknown>, iterations = ITER) => {
  for (let i = 0; i < Math.min(50, iterations); i++) await f() // warm-up
  const xs: Array<number> = []
  const until = performance.now() + STAGE_BUDGET_MS
  for (let i = 0; i < iterations && performance.now() < until; i++) {
    const t0 = performance.now()
    const own = await f()
    // A stage that returns a number timed itself (leaving out its set-up).
    xs.push(typeof own === "number" ? own : performance.now() - t0)
  }
  rows.push({ stage, ...stats(xs) })
}

const main = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mg-stages-"))
  const limitsFile = path.join(dir, "limits.yaml")
  const configFile = path.join(dir, "config.yaml")
  const variants = [limitsOf(RULES, 0), limitsOf(RULES, 1)] as const
  fs.writeFileSync(limitsFile, variants[0])
  fs.writeFileSync(configFile, "limits:\n  dry_run: false\n")
  const paths = { limits: limitsFile, config: configFile }
  const bytes = [Buffer.from(variants[0]), Buffer.from(variants[1])] as const
  const text = variants[0]

  await time("read both files (readConfigBytes)", () => Effect.runPromise(readConfigBytes(paths)))
  await time("read and hash both files (readAndHash)", () => Effect.runPromise(readAndHash(paths)))
  await time("SHA-256 of the limits bytes", () => {
    sha256Hex(bytes[0])
  })
  await time("UTF-8 decode of the limits bytes", () =>
    new TextDecoder("utf-8", { fatal: true }).decode(bytes[0]),
  )
  await time("fast YAML parse (fastYamlValue)", () => fastYamlValue(text))
  const value = fastYamlValue(text)?.value
  const decodeSpec = Schema.decodeUnknownEither(LimitsSpec, { errors: "all", onExcessProperty: "error" })
  await time("schema decode (LimitsSpec)", () => decodeSpec(value))
  const spec = Either.getOrThrow(decodeSpec(value))
  await time("compile, no cache (freshCompileSteps)", () => runToEnd(freshCompileSteps(spec)))
  await time("compile, cache warm (compileSteps)", () => runToEnd(compileSteps(spec)))
  // Each decode a new content, one rule edited (as the reload benchmarks do): with the compile
  // cache, one rule is compiled afresh per decode.
  const edits = Array.from({ length: Math.min(ITER, 2_000) + 50 }, (_, i) =>
    Buffer.from(editedLimits(RULES, i + 1)),
  )
  let k = 0
  await time("decodeLimits (UTF-8, YAML, schema, compile), each a new content (one rule edited)", () =>
    decodeLimits(limitsFile, edits[k++ % edits.length] as Buffer),
  )
  await time("decodeMainConfig (config.yaml)", () =>
    decodeMainConfig(configFile, Buffer.from("limits:\n  dry_run: false\n")),
  )
  const compiled = compileLimits(spec)
  if (compiled._tag !== "Compiled") throw new Error("does not compile")
  const rules = accountedRules(compiled.limits)
  const base = nextVersion(undefined, {
    limits: { file: limitsFile, sha256: "a", spec, compiled: compiled.limits },
    main: undefined,
    dryRunFlag: undefined,
    trigger: "startup",
    now: 0,
  })
  await time("reconcile stats (reconcile)", () => reconcile(base.stats, rules, rules))
  const decodedB = { file: limitsFile, sha256: "b", spec, compiled: compiled.limits }
  const loaded = Either.right({ limits: decodedB, main: undefined })
  await time("build the version (nextVersion)", () =>
    nextVersion(base, {
      limits: decodedB,
      main: undefined,
      dryRunFlag: undefined,
      trigger: "sighup",
      now: 0,
    }),
  )
  const ctx = { trigger: "sighup" as const, now: 0, limitsSha256: "b", configSha256: "" }
  const state = { ...initialState, runs: 1, running: true, active: base }
  await time("decide (pure)", () => decide(state, loaded, ctx))
  const event = decide(state, loaded, ctx)
  await time("apply in slices (runSliced(applySteps))", () =>
    Effect.runPromise(runSliced(applySteps(state, event))),
  )
  await time("apply to the end (runToEnd(applySteps))", () => runToEnd(applySteps(state, event)))

  // The event log: appends (write + fsync) and snapshots (stat; a new one: write + fsync + rename).
  const logFile = path.join(dir, "events.jsonl")
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const log = yield* EventLog.make(logFile)
        yield* Effect.promise(() =>
          time(
            "event log append, written behind (queue, then wait for write + fsync)",
            () =>
              Effect.runPromise(
                Effect.zipRight(
                  log.append({ type: "ReloadRequested", trigger: "sighup", coalesced: 1 }),
                  log.flush,
                ),
              ),
            500,
          ),
        )
        const snap = Buffer.from(variants[1])
        const sha = sha256Hex(snap)
        yield* log.storeSnapshot(sha, snap)
        yield* Effect.promise(() =>
          time(
            "storeSnapshot, already stored (stat)",
            () => Effect.runPromise(Effect.zipRight(log.storeSnapshot(sha, snap), log.flush)),
            500,
          ),
        )
        let n = 0
        yield* Effect.promise(() =>
          time(
            "storeSnapshot, new content (write + fsync + rename)",
            () => Effect.runPromise(Effect.zipRight(log.storeSnapshot(`${sha}-${n++}`, snap), log.flush)),
            200,
          ),
        )
      }),
    ),
  )
  // The whole pipeline in this process (inline decoder, metrics, logs discarded): trigger → decision
  // → swap, as `request` reports it, each reload a new content (one rule's limit changed); without
  // and with the event log.
  for (const eventLog of [undefined, path.join(dir, "pipeline-events.jsonl")]) {
    let edit = 0
    await Effect.runPromise(
      Effect.gen(function* () {
        const reloader = yield* Reloader
        yield* Effect.promise(() =>
          time(
            `whole reload in process (request), event log ${eventLog === undefined ? "off" : "on (fsync)"}`,
            async () => {
              replaceFile(limitsFile, editedLimits(RULES, ++edit))
              const t0 = performance.now()
              const r = await Effect.runPromise(reloader.request("http"))
              const took = performance.now() - t0
              if (r.status !== "applied") throw new Error(`not applied: ${JSON.stringify(r)}`)
              return took
            },
            500,
          ),
        )
      }).pipe(
        Effect.provide(
          Reload.layer({ paths, dryRunFlag: undefined, debounceMs: 0 }).pipe(
            Layer.provideMerge(Decoder.inline),
            Layer.provideMerge(EventLog.layer(eventLog)),
            Layer.provideMerge(Telemetry.test),
          ),
        ),
        Effect.provide(Log.layer("error", () => {})),
        Effect.scoped,
      ),
    )
  }
  fs.rmSync(dir, { recursive: true, force: true })

  console.log(
    `\n${RULES} rules, ${variants[0].length} bytes; node ${process.version}, ${os.cpus()[0]?.model}`,
  )
  console.log("| stage | n | p50 (µs) | p99 (µs) |")
  console.log("|---|---:|---:|---:|")
  for (const r of rows) console.log(`| ${r.stage} | ${r.n} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} |`)
}

void main()
