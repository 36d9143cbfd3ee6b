/**
 * Where a reload reads and decodes its files.
 *
 * Reading is synchronous and quick (config files are small and local; a ConfigMap is a tmpfs).
 * Decoding — YAML, the schemas, every regex — costs about 1 ms per hundred rules, seconds at tens
 * of thousands. Small files are decoded in the calling thread: a millisecond costs the data path
 * less than a hop to another thread costs the reload. Larger files are decoded in a worker thread,
 * beside the data path, so that no request waits for a big reload; the main thread then only
 * compiles the validated rules (regexes come from a cache shared by versions) and swaps the version.
 *
 * Both ways run the same pure `decodeConfig`, so they accept and reject exactly the same files
 * with exactly the same messages. The worker is started on first use and again after it dies; a
 * file that crashes it is rejected, and the process keeps its version and serves on.
 *
 * @module
 */
import { Context, Effect, Either, Layer } from "effect"
import { compileLimits } from "../limits/compile.js"
import { scriptNextTo, WorkerPool } from "../threads/pool.js"
import { formatPath } from "./decode.js"
import { type ConfigError, ConfigInvalidError, ConfigReadError } from "./errors.js"
import type { LimitsSpec } from "./limits-schema.js"
import {
  ConfigLoadError,
  type ConfigPaths,
  decodeConfig,
  type LoadedConfig,
  type ReadBytes,
  readConfigBytesSync,
} from "./load.js"
import type { MainConfigSpec } from "./main-schema.js"

/** What one reload read and what it made of it. */
export interface Loaded {
  readonly read: ReadBytes
  readonly decoded: Either.Either<LoadedConfig, ConfigLoadError>
}

export interface ConfigDecoderService {
  /** Reads both files and decodes them. */
  readonly load: (paths: ConfigPaths) => Effect.Effect<Loaded>
}

export class ConfigDecoder extends Context.Tag("metrics-governor/ConfigDecoder")<
  ConfigDecoder,
  ConfigDecoderService
>() {}

/** Files up to this many bytes in all (about 800 rules) are decoded in the calling thread. */
export const INLINE_MAX_BYTES = 96 * 1024

// --- the messages between the threads (structured-clone data only) -----------------------------

type WireRead =
  | { readonly bytes: Uint8Array }
  | { readonly file: string; readonly reason: string }
  | undefined

export interface DecodeRequest {
  readonly paths: ConfigPaths
  readonly main: WireRead
  readonly limits: WireRead
}

type WireError =
  | { readonly _tag: "ConfigReadError"; readonly file: string; readonly reason: string }
  | {
      readonly _tag: "ConfigInvalidError"
      readonly file: string
      readonly issues: ConfigInvalidError["issues"]
    }

export type DecodeReply =
  | {
      readonly ok: {
        readonly main:
          | { readonly file: string; readonly sha256: string; readonly spec: MainConfigSpec }
          | undefined
        readonly limits:
          | { readonly file: string; readonly sha256: string; readonly spec: LimitsSpec }
          | undefined
      }
    }
  | { readonly errors: ReadonlyArray<WireError> }

const toWireRead = (read: ReadBytes["main"]): WireRead =>
  read === undefined
    ? undefined
    : Either.isRight(read)
      ? { bytes: read.right }
      : { file: read.left.file, reason: read.left.reason }

const fromWireRead = (read: WireRead): ReadBytes["main"] =>
  read === undefined
    ? undefined
    : "bytes" in read
      ? Either.right(read.bytes)
      : Either.left(new ConfigReadError({ file: read.file, reason: read.reason }))

/** The worker's side: decode one request, reply with plain data (compiled regexes stay behind). */
export const answer = (req: DecodeRequest): DecodeReply => {
  const result = decodeConfig(req.paths, { main: fromWireRead(req.main), limits: fromWireRead(req.limits) })
  if (Either.isLeft(result)) {
    return {
      errors: result.left.errors.map(
        (e): WireError =>
          e._tag === "ConfigReadError"
            ? { _tag: e._tag, file: e.file, reason: e.reason }
            : { _tag: e._tag, file: e.file, issues: e.issues },
      ),
    }
  }
  const { main, limits } = result.right
  return {
    ok: {
      main: main === undefined ? undefined : { file: main.file, sha256: main.sha256, spec: main.spec },
      limits:
        limits === undefined ? undefined : { file: limits.file, sha256: limits.sha256, spec: limits.spec },
    },
  }
}

/** The main thread's side: rebuild the typed result; compile the (already validated) rules here. */
export const receive = (reply: DecodeReply): Either.Either<LoadedConfig, ConfigLoadError> => {
  if ("errors" in reply) {
    return Either.left(
      new ConfigLoadError({
        errors: reply.errors.map(
          (e): ConfigError =>
            e._tag === "ConfigReadError"
              ? new ConfigReadError({ file: e.file, reason: e.reason })
              : new ConfigInvalidError({ file: e.file, issues: e.issues }),
        ),
      }),
    )
  }
  const { main, limits } = reply.ok
  if (limits === undefined) return Either.right({ main, limits: undefined })
  const compiled = compileLimits(limits.spec)
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
  return Either.right({ main, limits: { ...limits, compiled: compiled.limits } })
}

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

const sizeOf = (read: ReadBytes): number =>
  (read.main !== undefined && Either.isRight(read.main) ? read.main.right.length : 0) +
  (read.limits !== undefined && Either.isRight(read.limits) ? read.limits.right.length : 0)

/** Reads and decodes in the calling thread, whatever the size. */
export const inline: Layer.Layer<ConfigDecoder> = Layer.succeed(ConfigDecoder, {
  load: (paths) =>
    Effect.sync(() => {
      const read = readConfigBytesSync(paths)
      return { read, decoded: decodeConfig(paths, read) }
    }),
})

/**
 * Decodes files larger than `inlineMaxBytes` in one worker thread (`url`), the others in the
 * calling thread.
 */
export const worker = (
  options: { readonly url?: URL; readonly inlineMaxBytes?: number } = {},
): Layer.Layer<ConfigDecoder> =>
  Layer.scoped(
    ConfigDecoder,
    Effect.gen(function* () {
      const inlineMax = options.inlineMaxBytes ?? INLINE_MAX_BYTES
      // The decoder never keeps the process alive by itself.
      const pool = yield* Effect.acquireRelease(
        Effect.sync(
          () =>
            new WorkerPool<DecodeRequest, DecodeReply>(
              1,
              options.url ?? scriptNextTo(import.meta.url, "decode-worker"),
              "metrics-governor config decoder",
              false,
            ),
        ),
        (p) => Effect.promise(() => p.close()),
      )
      return {
        load: (paths) =>
          Effect.gen(function* () {
            const read = readConfigBytesSync(paths)
            if (sizeOf(read) <= inlineMax) return { read, decoded: decodeConfig(paths, read) }
            const outcome = yield* Effect.promise(() =>
              pool.run({ paths, main: toWireRead(read.main), limits: toWireRead(read.limits) }),
            )
            return {
              read,
              decoded:
                outcome._tag === "Done"
                  ? receive(outcome.reply)
                  : Either.left(decoderFailed(paths, outcome.reason)),
            }
          }),
      }
    }),
  )
