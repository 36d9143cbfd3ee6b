import * as fs from "node:fs"
import { Data, Effect, Either } from "effect"
import { type DecodedLimits, type DecodedMainConfig, decodeLimits, decodeMainConfig } from "./decode.js"
import { type ConfigError, type ConfigIssue, ConfigReadError, formatIssue } from "./errors.js"

/** Which files make up the configuration (from `-config` and `-limits-config`). */
export interface ConfigPaths {
  readonly config: string | undefined
  readonly limits: string | undefined
}

/** Both files, decoded. A file that is not configured is `undefined`. */
export interface LoadedConfig {
  readonly main: DecodedMainConfig | undefined
  readonly limits: DecodedLimits | undefined
}

/** Loading failed: every problem of both files, in file then document order. */
export class ConfigLoadError extends Data.TaggedError("ConfigLoadError")<{
  readonly errors: ReadonlyArray<ConfigError>
}> {
  get issues(): ReadonlyArray<ConfigIssue> {
    return this.errors.flatMap((e) => e.issues)
  }
  /** The file of the first problem, for the contract's `path` log field. */
  get path(): string {
    return this.errors[0]?.file ?? ""
  }
  override get message(): string {
    return this.issues.map(formatIssue).join("; ")
  }
}

/** Why a file could not be read, in the operator's words. */
const readFailure = (e: unknown): string => {
  const code = (e as NodeJS.ErrnoException | undefined)?.code
  switch (code) {
    case "ENOENT":
    case "ENOTDIR":
      return "no such file"
    case "EACCES":
    case "EPERM":
      return "permission denied"
    case "EISDIR":
      return "is a directory"
    default:
      return code ?? (e instanceof Error ? e.message : String(e))
  }
}

const readOne = (file: string | undefined): Either.Either<Uint8Array, ConfigReadError> | undefined => {
  if (file === undefined) return undefined
  try {
    return Either.right(fs.readFileSync(file))
  } catch (e) {
    return Either.left(new ConfigReadError({ file, reason: readFailure(e) }))
  }
}

/**
 * Reads both files, synchronously: config files are small and local (a ConfigMap is a tmpfs), and
 * one `readFileSync` is far quicker than the round trips of an asynchronous read. A read failure is
 * data here, so `decodeConfig` can report both files at once.
 */
export const readConfigBytesSync = (paths: ConfigPaths): ReadBytes => ({
  main: readOne(paths.config),
  limits: readOne(paths.limits),
})

/** `readConfigBytesSync` as an effect. */
export const readConfigBytes = (paths: ConfigPaths): Effect.Effect<ReadBytes> =>
  Effect.sync(() => readConfigBytesSync(paths))

/** What `readConfigBytes` read: each configured file's bytes, or why it could not be read. */
export interface ReadBytes {
  readonly main: Either.Either<Uint8Array, ConfigReadError> | undefined
  readonly limits: Either.Either<Uint8Array, ConfigReadError> | undefined
}

/** Decodes what `readConfigBytes` read. Pure. */
export const decodeConfig = (
  paths: ConfigPaths,
  read: ReadBytes,
): Either.Either<LoadedConfig, ConfigLoadError> => {
  const errors: Array<ConfigError> = []
  const decode = <A>(
    file: string | undefined,
    bytes: Either.Either<Uint8Array, ConfigReadError> | undefined,
    f: (file: string, bytes: Uint8Array) => Either.Either<A, ConfigError>,
  ): A | undefined => {
    if (file === undefined || bytes === undefined) return undefined
    const decoded = Either.flatMap(bytes, (b) => f(file, b))
    if (Either.isLeft(decoded)) {
      errors.push(decoded.left)
      return undefined
    }
    return decoded.right
  }
  const main = decode(paths.config, read.main, decodeMainConfig)
  const limits = decode(paths.limits, read.limits, decodeLimits)
  return errors.length > 0 ? Either.left(new ConfigLoadError({ errors })) : Either.right({ main, limits })
}

/** Reads and decodes both files: the one code path of `validate`, startup and every reload. */
export const loadConfig = (paths: ConfigPaths) =>
  readConfigBytes(paths).pipe(Effect.flatMap((read) => decodeConfig(paths, read)))
