import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { Data, Effect, Either } from "effect"
import { type DecodedLimits, type DecodedMainConfig, decodeLimits, decodeMainConfig } from "./decode.js"
import {
  type ConfigError,
  type ConfigFileError,
  type ConfigIssue,
  ConfigNotRegularFileError,
  ConfigReadError,
  type ConfigRole,
  ConfigTooLargeError,
  formatIssue,
} from "./errors.js"

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

/** Why a file could not be opened or read, in the operator's words. */
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

/** What a path names when it is not a regular file. */
const kindOf = (s: fs.Stats): string =>
  s.isFIFO()
    ? "a FIFO"
    : s.isSocket()
      ? "a socket"
      : s.isCharacterDevice()
        ? "a character device"
        : s.isBlockDevice()
          ? "a block device"
          : "not a file"

/**
 * The default of `-config-max-bytes`: 8 MiB. A rule with a regex, a label matcher, a limit and an
 * action takes 100 to 200 bytes of YAML, so this admits 40,000 to 80,000 rules, while a file far
 * larger than any real limits file (which would keep the decoder busy for minutes and fill the
 * snapshot directory) is refused from its size alone.
 */
export const DEFAULT_CONFIG_MAX_BYTES = 8 * 1024 * 1024

/** The hash recorded for a configured file that cannot be read; the watcher and poller use it too. */
export const MISSING_HASH = "missing"

/** How much is read (and hashed) per step: the hash of one step costs the event loop ~0.1 ms. */
const CHUNK_BYTES = 64 * 1024

/** One configured file as read: its bytes and their SHA-256 (hex), or why there are none. */
export type FileRead = Either.Either<{ readonly bytes: Uint8Array; readonly sha256: string }, ConfigFileError>

/** `fs.read` as a promise, without the `FileHandle` machinery. */
const readFd = (fd: number, buf: Buffer, offset: number, length: number) =>
  new Promise<number>((resolve, reject) =>
    fs.read(fd, buf, offset, length, null, (e, n) => (e ? reject(e) : resolve(n))),
  )

/**
 * Reads one config file: opened with `O_NONBLOCK` (so a FIFO without a writer does not wait for
 * one), checked with `fstat` on the open descriptor (so the file checked is the file read): a
 * regular file, at most `maxBytes` bytes. Then read and hashed in steps. The bound holds even for
 * a file that grows while it is read. Never fails: a failure is data.
 *
 * The open, the fstat and a file's first 64 KiB (a limits file of about 500 rules) are plain system
 * calls in the calling thread: from the page cache they take tens of microseconds, where each round
 * trip to the I/O threads took 0.3 to 4 ms on a busy two-CPU machine, and a reload is one of those
 * round trips after another. A larger file is read on from there in 64 KiB steps on the I/O
 * threads, so a big file never holds the event loop for long. (What this gives up: a config file on
 * a network mount that stops answering would stop the process at its open, not only the reload;
 * Kubernetes ConfigMap and Secret volumes are local.)
 */
export const readConfigFile = async (file: string, role: ConfigRole, maxBytes: number): Promise<FileRead> => {
  const started = startRead(file, role, maxBytes)
  if (!(started instanceof Reading)) return started
  try {
    for (;;) {
      const want = Math.min(CHUNK_BYTES, maxBytes + 1 - started.total)
      if (want <= 0) break
      const buf = Buffer.allocUnsafeSlow(want)
      const n = await readFd(started.fd, buf, 0, want)
      if (n === 0) break
      started.add(buf.subarray(0, n))
      // A short read of a regular file is its end: spares one more read.
      if (n < want) break
    }
    return started.result(file, role, maxBytes)
  } catch (e) {
    return Either.left(new ConfigReadError({ file, reason: readFailure(e) }))
  } finally {
    fs.closeSync(started.fd)
  }
}

/**
 * `readConfigFile` for a file read in one step (under 64 KiB), all in the calling thread:
 * `undefined` for a larger file, which only `readConfigFile` reads.
 */
export const readConfigFileNow = (file: string, role: ConfigRole, maxBytes: number): FileRead | undefined => {
  const started = startRead(file, role, maxBytes)
  if (!(started instanceof Reading)) return started
  fs.closeSync(started.fd)
  return undefined
}

/** A file whose first step was read and that goes on: its descriptor, hash and bytes so far. */
class Reading {
  readonly hash = createHash("sha256")
  readonly chunks: Array<Buffer> = []
  total = 0
  constructor(readonly fd: number) {}

  add(chunk: Buffer): void {
    this.hash.update(chunk)
    this.chunks.push(chunk)
    this.total += chunk.length
  }

  result(file: string, role: ConfigRole, maxBytes: number): FileRead {
    if (this.total > maxBytes) {
      return Either.left(new ConfigTooLargeError({ file, role, size: this.total, limit: maxBytes }))
    }
    const only = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : undefined
    const bytes =
      only !== undefined
        ? new Uint8Array(only.buffer, only.byteOffset, only.length)
        : new Uint8Array(Buffer.concat(this.chunks, this.total))
    return Either.right({ bytes, sha256: this.hash.digest("hex") })
  }
}

/**
 * The part of `readConfigFile` in the calling thread: open, fstat, and the first step. A file read
 * whole in it (its first read came back short) is the result; otherwise the `Reading` goes on, and
 * its descriptor is the caller's to close.
 */
const startRead = (file: string, role: ConfigRole, maxBytes: number): FileRead | Reading => {
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
  } catch (e) {
    return Either.left(new ConfigReadError({ file, reason: readFailure(e) }))
  }
  let goesOn = false
  try {
    const st = fs.fstatSync(fd)
    if (st.isDirectory()) return Either.left(new ConfigReadError({ file, reason: "is a directory" }))
    if (!st.isFile()) return Either.left(new ConfigNotRegularFileError({ file, kind: kindOf(st) }))
    if (st.size > maxBytes) {
      return Either.left(new ConfigTooLargeError({ file, role, size: st.size, limit: maxBytes }))
    }
    // One byte more than the bound may be read: that is how growth past it is seen. Sized to the
    // file when it fits in one step: nothing larger is kept alive by the version.
    const buf = Buffer.allocUnsafeSlow(Math.min(CHUNK_BYTES, maxBytes + 1, st.size + 1))
    const n = fs.readSync(fd, buf, 0, buf.length, null)
    const reading = new Reading(fd)
    if (n > 0) reading.add(buf.subarray(0, n))
    // A short read of a regular file is its end.
    if (n < buf.length || reading.total > maxBytes) return reading.result(file, role, maxBytes)
    goesOn = true
    return reading
  } catch (e) {
    return Either.left(new ConfigReadError({ file, reason: readFailure(e) }))
  } finally {
    if (!goesOn) fs.closeSync(fd)
  }
}

/** The content hash of what was read: `""` when not configured, `MISSING_HASH` when unreadable. */
export const hashOfRead = (read: FileRead | undefined): string =>
  read === undefined ? "" : Either.isRight(read) ? read.right.sha256 : MISSING_HASH

/**
 * Reads both files, concurrently and asynchronously (see `readConfigFile`). A read failure is data
 * here, so `decodeConfig` can report both files at once.
 */
export const readConfigBytes = (
  paths: ConfigPaths,
  maxBytes: number = DEFAULT_CONFIG_MAX_BYTES,
): Effect.Effect<ReadBytes> =>
  Effect.promise(async () => {
    const [main, limits] = await Promise.all([
      paths.config === undefined ? undefined : readConfigFile(paths.config, "config", maxBytes),
      paths.limits === undefined ? undefined : readConfigFile(paths.limits, "limits", maxBytes),
    ])
    return { main, limits }
  })

/** What `readConfigBytes` read: each configured file's bytes and hash, or why it could not be read. */
export interface ReadBytes {
  readonly main: FileRead | undefined
  readonly limits: FileRead | undefined
}

/** The content hashes of both files as read (see `hashOfRead`): what a config version records. */
export interface ContentHashes {
  readonly limits: string
  readonly config: string
}

/** What `readAndHash` gives: both files as read, and their content hashes. */
export interface HashedRead {
  readonly read: ReadBytes
  readonly hashes: ContentHashes
}

/** The hashes of what `readConfigBytes` read (`hashOfRead` of each file). */
export const hashesOf = (read: ReadBytes): ContentHashes => ({
  limits: hashOfRead(read.limits),
  config: hashOfRead(read.main),
})

/**
 * Reads both files (see `readConfigBytes`) and gives their content hashes, without decoding
 * anything: a caller that finds the hashes of the active version (`limitsSha256`, `configSha256`)
 * knows the outcome (unchanged) without the decode, which is what costs at every size; otherwise it
 * hands `read` to `decodeConfig` (or `ConfigDecoder.decode`). A file that cannot be read hashes as
 * `MISSING_HASH`, a file not configured as `""`, so neither equals a version's hash.
 */
export const readAndHash = (
  paths: ConfigPaths,
  maxBytes: number = DEFAULT_CONFIG_MAX_BYTES,
): Effect.Effect<HashedRead> =>
  Effect.map(readConfigBytes(paths, maxBytes), (read) => ({ read, hashes: hashesOf(read) }))

/**
 * `readAndHash` all in the calling thread, for files read in one step each (under 64 KiB):
 * `undefined` when a file is larger, for `readAndHash` to read.
 */
export const readAndHashNow = (
  paths: ConfigPaths,
  maxBytes: number = DEFAULT_CONFIG_MAX_BYTES,
): HashedRead | undefined => {
  const main = paths.config === undefined ? undefined : readConfigFileNow(paths.config, "config", maxBytes)
  if (paths.config !== undefined && main === undefined) return undefined
  const limits = paths.limits === undefined ? undefined : readConfigFileNow(paths.limits, "limits", maxBytes)
  if (paths.limits !== undefined && limits === undefined) return undefined
  const read = { main, limits }
  return { read, hashes: hashesOf(read) }
}

/** True when `read` holds exactly the content of the version with these hashes (so decoding it can be skipped). */
export const sameContent = (
  hashes: ContentHashes,
  version: { readonly limitsSha256: string; readonly configSha256: string },
): boolean =>
  hashes.limits !== MISSING_HASH &&
  hashes.config !== MISSING_HASH &&
  hashes.limits === version.limitsSha256 &&
  hashes.config === version.configSha256

/** Decodes what `readConfigBytes` read. Pure. */
export const decodeConfig = (
  paths: ConfigPaths,
  read: ReadBytes,
): Either.Either<LoadedConfig, ConfigLoadError> => {
  const errors: Array<ConfigError> = []
  const decode = <A>(
    file: string | undefined,
    read: FileRead | undefined,
    f: (file: string, bytes: Uint8Array) => Either.Either<A, ConfigError>,
  ): A | undefined => {
    if (file === undefined || read === undefined) return undefined
    const decoded = Either.flatMap(read, (r) => f(file, r.bytes))
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
export const loadConfig = (paths: ConfigPaths, maxBytes: number = DEFAULT_CONFIG_MAX_BYTES) =>
  readConfigBytes(paths, maxBytes).pipe(Effect.flatMap((read) => decodeConfig(paths, read)))
