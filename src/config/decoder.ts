/**
 * Where a reload reads and decodes its files.
 *
 * Reading is bounded (see `readConfigFile`): never a file that is not a regular file, never more
 * than `-config-max-bytes`, and never more than one 64 KiB step at a time on the calling thread.
 * Decoding — YAML, the schemas, every regex — costs about 1 ms per hundred rules, seconds at tens
 * of thousands. Small files are decoded in the calling thread: a millisecond costs the data path
 * less than a hop to another thread costs the reload. Larger files are decoded in a worker thread,
 * beside the data path, so that no request waits for a big reload; the main thread then only
 * compiles the validated rules (regexes come from a cache shared by versions) and swaps the version.
 *
 * Both ways run the same pure decoders (`decodeLimits`, `decodeMainConfig`), so they accept and
 * reject exactly the same files with exactly the same messages. The worker is started on first use
 * and again after it dies or outlasts its time limit; it runs with heap limits, so a file that
 * would exhaust memory kills the thread, not the process. Such a file is rejected, and the process
 * keeps its version and serves on. The main thread's share (parsing the reply, compiling, building
 * the version) runs in slices of a few milliseconds, with requests served in between.
 *
 * @module
 */
import { Context, Effect, Either, Layer } from "effect"
import { compileSteps } from "../limits/compile.js"
import { scriptNextTo, WorkerPool } from "../threads/pool.js"
import { runSliced, type Steps } from "../threads/slices.js"
import {
  type DecodedLimits,
  type DecodedMainConfig,
  decodeLimits,
  decodeMainConfig,
  formatPath,
} from "./decode.js"
import { ConfigDecodeTimeoutError, type ConfigError, ConfigInvalidError, type ConfigIssue } from "./errors.js"
import type { LimitsSpec } from "./limits-schema.js"
import {
  ConfigLoadError,
  type ConfigPaths,
  DEFAULT_CONFIG_MAX_BYTES,
  decodeConfig,
  type FileRead,
  type HashedRead,
  type LoadedConfig,
  type ReadBytes,
  readAndHash,
  readAndHashNow,
} from "./load.js"
import type { MainConfigSpec } from "./main-schema.js"

/** What one reload read and what it made of it. */
export interface Loaded {
  readonly read: ReadBytes
  readonly decoded: Either.Either<LoadedConfig, ConfigLoadError>
}

export interface ConfigDecoderService {
  /** Reads both files and decodes them: `read`, then `decode`. */
  readonly load: (paths: ConfigPaths) => Effect.Effect<Loaded>
  /**
   * Reads both files with the decoder's size bound and hashes them, decoding nothing (see
   * `readAndHash`): a reload that finds the active version's hashes can stop here.
   */
  readonly read: (paths: ConfigPaths) => Effect.Effect<HashedRead>
  /** Decodes what `read` read: in the calling thread, or in the worker thread for large files. */
  readonly decode: (
    paths: ConfigPaths,
    read: ReadBytes,
  ) => Effect.Effect<Either.Either<LoadedConfig, ConfigLoadError>>
  /**
   * `read` as a plain call, all in the calling thread, when each file is read in one step (see
   * `readAndHashNow`); `undefined` otherwise.
   */
  readonly readNow: (paths: ConfigPaths) => HashedRead | undefined
  /** `decode` as a plain call, when it decodes in the calling thread; `undefined` otherwise. */
  readonly decodeNow: (
    paths: ConfigPaths,
    read: ReadBytes,
  ) => Either.Either<LoadedConfig, ConfigLoadError> | undefined
}

export class ConfigDecoder extends Context.Tag("metrics-governor/ConfigDecoder")<
  ConfigDecoder,
  ConfigDecoderService
>() {}

/** Files up to this many bytes in all (about 800 rules) are decoded in the calling thread. */
export const INLINE_MAX_BYTES = 96 * 1024

/**
 * How long the decoder thread may take for one reload. A limits file at the default size bound
 * (8 MiB, ~58,000 rules) took 40 s on a shared 2-CPU machine under a load average of 8, a few
 * seconds on an idle one; a decode still running after twice the worst of that is stuck, and the
 * reload is rejected.
 */
export const DECODE_TIMEOUT_MS = 120_000

/**
 * The decoder thread's heap: enough for a file at the default size bound through the slow
 * (positioned) YAML parser, with room to spare; a thread over it dies alone and the reload is
 * rejected, instead of the process running out of memory.
 */
export const DECODER_RESOURCE_LIMITS = {
  maxOldGenerationSizeMb: 1024,
  maxYoungGenerationSizeMb: 64,
  stackSizeMb: 4,
} as const

// --- the messages between the threads (structured-clone data only) -----------------------------

/** The bytes of the files that were read; a file not configured or not readable is `undefined`. */
export interface DecodeRequest {
  readonly paths: ConfigPaths
  readonly main: Uint8Array | undefined
  readonly limits: Uint8Array | undefined
}

type WireSlot<S> =
  | { readonly file: string; readonly sha256: string; readonly spec: S }
  | { readonly file: string; readonly issues: ReadonlyArray<ConfigIssue> }
  | undefined

/**
 * The limits spec travels with its rules as JSON text, in chunks: a string crosses threads as one
 * copy of its bytes, and the main thread parses one chunk per step, where the structured clone of
 * tens of thousands of rule objects would hold it for 100 ms and more in one go.
 */
type WireLimits = Omit<LimitsSpec, "rules"> & { readonly rulesJson: ReadonlyArray<string> | undefined }

export interface DecodeReply {
  readonly main: WireSlot<MainConfigSpec>
  readonly limits: WireSlot<WireLimits>
}

/** Rules per chunk of `rulesJson`: well under a millisecond of `JSON.parse` each. */
const RULES_PER_CHUNK = 200

const toWireLimits = ({ rules, ...rest }: LimitsSpec): WireLimits => {
  if (rules === undefined) return { ...rest, rulesJson: undefined }
  const rulesJson: Array<string> = []
  for (let i = 0; i < rules.length; i += RULES_PER_CHUNK) {
    rulesJson.push(JSON.stringify(rules.slice(i, i + RULES_PER_CHUNK)))
  }
  return { ...rest, rulesJson }
}

/** The spec back from `toWireLimits`, one chunk per step. */
function* fromWireLimits({ rulesJson, ...rest }: WireLimits): Steps<LimitsSpec> {
  if (rulesJson === undefined) return rest
  const rules: Array<NonNullable<LimitsSpec["rules"]>[number]> = []
  for (const chunk of rulesJson) {
    for (const rule of JSON.parse(chunk) as NonNullable<LimitsSpec["rules"]>) rules.push(rule)
    yield
  }
  return { ...rest, rules }
}

const toWire = <S>(
  decoded: Either.Either<{ file: string; sha256: string; spec: S }, ConfigInvalidError>,
): WireSlot<S> =>
  Either.isRight(decoded)
    ? { file: decoded.right.file, sha256: decoded.right.sha256, spec: decoded.right.spec }
    : { file: decoded.left.file, issues: decoded.left.issues }

/** The worker's side: decode the bytes it was sent, reply with plain data (compiled regexes stay behind). */
export const answer = (req: DecodeRequest): DecodeReply => ({
  main:
    req.paths.config === undefined || req.main === undefined
      ? undefined
      : toWire(decodeMainConfig(req.paths.config, req.main)),
  limits:
    req.paths.limits === undefined || req.limits === undefined
      ? undefined
      : toWire(
          Either.map(decodeLimits(req.paths.limits, req.limits), (d) => ({
            ...d,
            spec: toWireLimits(d.spec),
          })),
        ),
})

/**
 * The main thread's side: rebuild the typed result from what was read and what the worker made of
 * it, in the order `decodeConfig` reports (config, then limits); compile the (already validated)
 * rules here, in slices that let requests through in between.
 */
export const receive = (
  read: ReadBytes,
  reply: DecodeReply,
): Effect.Effect<Either.Either<LoadedConfig, ConfigLoadError>> =>
  Effect.gen(function* () {
    const errors: Array<ConfigError> = []
    const slot = <S>(r: FileRead | undefined, w: WireSlot<S>) => {
      if (r !== undefined && Either.isLeft(r)) {
        errors.push(r.left)
        return undefined
      }
      if (w === undefined) return undefined
      if ("issues" in w) {
        errors.push(new ConfigInvalidError({ file: w.file, issues: w.issues }))
        return undefined
      }
      return w
    }
    const main = slot(read.main, reply.main)
    const limits = slot(read.limits, reply.limits)
    if (errors.length > 0) return Either.left(new ConfigLoadError({ errors }))
    const decodedMain: DecodedMainConfig | undefined = main
    if (limits === undefined) return Either.right({ main: decodedMain, limits: undefined })
    const spec = yield* runSliced(fromWireLimits(limits.spec))
    const compiled = yield* runSliced(compileSteps(spec))
    if (compiled._tag === "Problems") {
      // The worker validated the same spec with the same code; this only happens if they disagree.
      const issues = compiled.problems.map((p) => ({
        file: limits.file,
        line: 0,
        column: 0,
        path: formatPath(p.path),
        message: p.message,
      }))
      return Either.left(
        new ConfigLoadError({ errors: [new ConfigInvalidError({ file: limits.file, issues })] }),
      )
    }
    const decodedLimits: DecodedLimits = {
      file: limits.file,
      sha256: limits.sha256,
      spec,
      compiled: compiled.limits,
    }
    return Either.right({ main: decodedMain, limits: decodedLimits })
  })

const decoderFailed = (paths: ConfigPaths, reason: string): ConfigLoadError => {
  const file = paths.limits ?? paths.config ?? ""
  return new ConfigLoadError({
    errors: [
      new ConfigInvalidError({
        file,
        issues: [{ file, line: 0, column: 0, path: "", message: `the config decoder failed: ${reason}` }],
      }),
    ],
  })
}

const bytesOf = (read: FileRead | undefined): Uint8Array | undefined =>
  read !== undefined && Either.isRight(read) ? read.right.bytes : undefined

const sizeOf = (read: ReadBytes): number =>
  (bytesOf(read.main)?.length ?? 0) + (bytesOf(read.limits)?.length ?? 0)

export interface DecoderOptions {
  /** Files larger than this (in bytes, both together) are decoded in the worker thread. */
  readonly inlineMaxBytes?: number
  /** `-config-max-bytes`: a larger file is refused before it is read. */
  readonly maxBytes?: number
}

/** The service from its `read` and `decode` and their plain forms: `load` is one after the other. */
const service = (
  read: ConfigDecoderService["read"],
  decode: ConfigDecoderService["decode"],
  readNow: ConfigDecoderService["readNow"],
  decodeNow: ConfigDecoderService["decodeNow"],
): ConfigDecoderService => ({
  read,
  decode,
  readNow,
  decodeNow,
  load: (paths) =>
    Effect.flatMap(read(paths), (r) =>
      Effect.map(decode(paths, r.read), (decoded) => ({ read: r.read, decoded })),
    ),
})

/** Reads and decodes in the calling thread, whatever the size. */
export const inlineWith = (options: DecoderOptions = {}): Layer.Layer<ConfigDecoder> =>
  Layer.succeed(
    ConfigDecoder,
    service(
      (paths) => readAndHash(paths, options.maxBytes ?? DEFAULT_CONFIG_MAX_BYTES),
      (paths, read) => Effect.sync(() => decodeConfig(paths, read)),
      (paths) => readAndHashNow(paths, options.maxBytes ?? DEFAULT_CONFIG_MAX_BYTES),
      decodeConfig,
    ),
  )

/** `inlineWith` with the defaults. */
export const inline: Layer.Layer<ConfigDecoder> = inlineWith()

/**
 * Decodes files larger than `inlineMaxBytes` in one worker thread (`url`), the others in the
 * calling thread. The thread runs with `resourceLimits` (default `DECODER_RESOURCE_LIMITS`), and a
 * decode that takes longer than `timeoutMs` (default `DECODE_TIMEOUT_MS`) rejects the reload with a
 * `ConfigDecodeTimeoutError`; the thread is stopped and started again for the next reload.
 */
export const worker = (
  options: DecoderOptions & {
    readonly url?: URL
    readonly timeoutMs?: number
    readonly resourceLimits?: typeof DECODER_RESOURCE_LIMITS
  } = {},
): Layer.Layer<ConfigDecoder> =>
  Layer.scoped(
    ConfigDecoder,
    Effect.gen(function* () {
      const inlineMax = options.inlineMaxBytes ?? INLINE_MAX_BYTES
      const maxBytes = options.maxBytes ?? DEFAULT_CONFIG_MAX_BYTES
      const timeoutMs = options.timeoutMs ?? DECODE_TIMEOUT_MS
      // The decoder never keeps the process alive by itself.
      const pool = yield* Effect.acquireRelease(
        Effect.sync(
          () =>
            new WorkerPool<DecodeRequest, DecodeReply>(
              1,
              options.url ?? scriptNextTo(import.meta.url, "decode-worker"),
              "metrics-governor config decoder",
              false,
              { timeoutMs, resourceLimits: options.resourceLimits ?? DECODER_RESOURCE_LIMITS },
            ),
        ),
        (p) => Effect.promise(() => p.close()),
      )
      return service(
        (paths) => readAndHash(paths, maxBytes),
        (paths, read) =>
          Effect.gen(function* () {
            if (sizeOf(read) <= inlineMax) return decodeConfig(paths, read)
            const outcome = yield* Effect.promise(() =>
              pool.run({ paths, main: bytesOf(read.main), limits: bytesOf(read.limits) }),
            )
            if (outcome._tag === "Done") return yield* receive(read, outcome.reply)
            const file = paths.limits ?? paths.config ?? ""
            return Either.left(
              outcome.timedOut === true
                ? new ConfigLoadError({ errors: [new ConfigDecodeTimeoutError({ file, timeoutMs })] })
                : decoderFailed(paths, outcome.reason),
            )
          }),
        (paths) => readAndHashNow(paths, maxBytes),
        (paths, read) => (sizeOf(read) <= inlineMax ? decodeConfig(paths, read) : undefined),
      )
    }),
  )
