import { FileSystem } from "@effect/platform"
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

const readOne = (fs: FileSystem.FileSystem, file: string | undefined) =>
  file === undefined
    ? Effect.succeed(undefined)
    : fs.readFile(file).pipe(
        Effect.mapError(
          (e) =>
            new ConfigReadError({
              file,
              reason:
                e._tag === "SystemError"
                  ? e.reason === "NotFound"
                    ? "no such file"
                    : `${e.reason}${e.description ? ` (${e.description})` : ""}`
                  : e.message,
            }),
        ),
        Effect.either,
      )

/** Reads both files. A read failure is data here, so `decodeBytes` can report both files at once. */
export const readConfigBytes = (paths: ConfigPaths) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const [main, limits] = yield* Effect.all([readOne(fs, paths.config), readOne(fs, paths.limits)], {
      concurrency: 2,
    })
    return { main, limits }
  })

/** Decodes what `readConfigBytes` read. Pure. */
export const decodeConfig = (
  paths: ConfigPaths,
  read: {
    readonly main: Either.Either<Uint8Array, ConfigReadError> | undefined
    readonly limits: Either.Either<Uint8Array, ConfigReadError> | undefined
  },
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
