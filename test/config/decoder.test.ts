import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Either, type Layer } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import * as Decoder from "../../src/config/decoder.js"
import { formatIssue } from "../../src/config/errors.js"
import type { ConfigPaths } from "../../src/config/load.js"

/** The built worker (the test suite builds `dist/` before it starts), as the governor runs it. */
const WORKER = new URL("../../dist/config/decode-worker.js", import.meta.url)
const EXAMPLES = path.resolve(import.meta.dirname, "../../deploy/examples")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mg-decoder-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const load = (layer: Layer.Layer<Decoder.ConfigDecoder>, paths: ConfigPaths) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const d = yield* Decoder.ConfigDecoder
      return yield* d.load(paths)
    }).pipe(Effect.provide(layer)),
  )

/** What an operator can see of an outcome: the spec, hashes and rules, or every message. */
const outcome = (loaded: Decoder.Loaded) =>
  Either.match(loaded.decoded, {
    onLeft: (e) => ({ rejected: e.issues.map(formatIssue) }),
    onRight: (c) => ({
      main: c.main === undefined ? undefined : { sha256: c.main.sha256, spec: c.main.spec },
      limits:
        c.limits === undefined
          ? undefined
          : {
              sha256: c.limits.sha256,
              spec: c.limits.spec,
              rules: c.limits.compiled.rules.map((r) => ({ ...r, metricName: r.metricName?.pattern() })),
            },
    }),
  })

const write = (name: string, text: string): string => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
}

const cases: ReadonlyArray<[string, ConfigPaths]> = [
  [
    "the shipped examples",
    { config: path.join(EXAMPLES, "config.yaml"), limits: path.join(EXAMPLES, "limits.yaml") },
  ],
  [
    "a limits file with several problems",
    {
      config: undefined,
      limits: write(
        "bad.yaml",
        'rules:\n  - name: a\n    match: { metric_name: "(" }\n    max_cardinalty: 5\n  - name: a\n    sample_rate: 2\n',
      ),
    },
  ],
  ["a missing file", { config: path.join(dir, "nope.yaml"), limits: path.join(EXAMPLES, "limits.yaml") }],
  ["YAML that does not parse", { config: undefined, limits: write("syntax.yaml", "rules: [\n") }],
]

describe("config decoder: worker thread and calling thread agree", () => {
  it.each(cases)("%s", async (_, paths) => {
    const inThread = await load(Decoder.inline, paths)
    const inWorker = await load(Decoder.worker({ url: WORKER, inlineMaxBytes: 0 }), paths)
    expect(outcome(inWorker)).toStrictEqual(outcome(inThread))
    // What was read travels back too: the reloader hashes it and stores snapshots of it.
    expect(inWorker.read).toStrictEqual(inThread.read)
  })

  it("a reload's rejection carries every problem validate reports, schema and semantic ones together", async () => {
    const file = "test/fixtures/broken/several-kinds.limits.yaml"
    const expected: ReadonlyArray<string> = JSON.parse(
      fs.readFileSync(path.resolve(import.meta.dirname, "../fixtures/broken/expected.json"), "utf8"),
    )["several-kinds.limits.yaml"]
    const paths = { config: undefined, limits: path.resolve(import.meta.dirname, "../..", file) }
    const inWorker = await load(Decoder.worker({ url: WORKER, inlineMaxBytes: 0 }), paths)
    const messages = expected.map((line) => line.replace(file, paths.limits))
    expect(messages.length).toBeGreaterThan(5)
    expect(outcome(inWorker)).toStrictEqual({ rejected: messages })
  })

  it("a large file is decoded in the worker; the default layer gives the same outcome", async () => {
    const rules = Array.from(
      { length: 2_000 },
      (_, i) =>
        `  - name: r${i}\n    match: { metric_name: "m${i}_.*" }\n    max_cardinality: ${i}\n    action: drop`,
    )
    const limits = write("big.yaml", `rules:\n${rules.join("\n")}\n`)
    expect(fs.statSync(limits).size).toBeGreaterThan(Decoder.INLINE_MAX_BYTES)
    const paths = { config: undefined, limits }
    const inWorker = await load(Decoder.worker({ url: WORKER }), paths)
    expect(Either.isRight(inWorker.decoded)).toBe(true)
    expect(outcome(inWorker)).toStrictEqual(outcome(await load(Decoder.inline, paths)))
  })

  it("a decoder thread that dies rejects the reload with a clear message, and the next one starts a new thread", async () => {
    const dying = write("dying-worker.mjs", "process.exit(7)\n")
    const paths = { config: undefined, limits: path.join(EXAMPLES, "limits.yaml") }
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        const d = yield* Decoder.ConfigDecoder
        return [yield* d.load(paths), yield* d.load(paths)] as const
      }).pipe(Effect.provide(Decoder.worker({ url: new URL(`file://${dying}`), inlineMaxBytes: 0 }))),
    )
    for (const loaded of result) {
      expect(outcome(loaded)).toStrictEqual({
        rejected: [`${paths.limits}: the config decoder failed: its thread exited with code 7`],
      })
      // The files were still read: the reloader records their hashes.
      expect(loaded.read.limits !== undefined && Either.isRight(loaded.read.limits)).toBe(true)
    }
  })
})

describe("config decoder: bounds", () => {
  it("a decode that outlasts its time limit is rejected with a typed error; the thread is started again", async () => {
    // Sleeps on every job: a decode that never ends, as far as the caller can tell.
    const slow = write(
      "slow-worker.mjs",
      'import { parentPort } from "node:worker_threads"\n' +
        "parentPort.on('message', () => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000) })\n",
    )
    const paths = { config: undefined, limits: path.join(EXAMPLES, "limits.yaml") }
    const t0 = Date.now()
    const [first, second] = await Effect.runPromise(
      Effect.gen(function* () {
        const d = yield* Decoder.ConfigDecoder
        return [yield* d.load(paths), yield* d.load(paths)] as const
      }).pipe(
        Effect.provide(Decoder.worker({ url: new URL(`file://${slow}`), inlineMaxBytes: 0, timeoutMs: 300 })),
      ),
    )
    expect(Date.now() - t0).toBeLessThan(5_000)
    for (const loaded of [first, second]) {
      expect(Either.isLeft(loaded.decoded)).toBe(true)
      if (Either.isLeft(loaded.decoded)) {
        expect(loaded.decoded.left.errors[0]?._tag).toBe("ConfigDecodeTimeoutError")
        expect(loaded.decoded.left.message).toBe(
          `${paths.limits}: the config decoder did not finish within 0.3 s; the reload is rejected`,
        )
      }
    }
  })

  it("the decoder thread runs with resource limits and still decodes the examples", async () => {
    const paths = { config: undefined, limits: path.join(EXAMPLES, "limits.yaml") }
    const loaded = await load(Decoder.worker({ url: WORKER, inlineMaxBytes: 0 }), paths)
    expect(Either.isRight(loaded.decoded)).toBe(true)
    expect(Decoder.DECODER_RESOURCE_LIMITS.maxOldGenerationSizeMb).toBeGreaterThan(0)
  })
})
