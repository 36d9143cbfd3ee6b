import { Data } from "effect"

/** One problem found in a config file, positioned for the operator. */
export interface ConfigIssue {
  readonly file: string
  /** 1-based line; 0 when the problem concerns the file as a whole. */
  readonly line: number
  /** 1-based column; 0 when the problem concerns the file as a whole. */
  readonly column: number
  /** Key path inside the document, e.g. `rules[2].match.metric_name`; empty for the root. */
  readonly path: string
  readonly message: string
}

/** `file:line:col: path: message`, the form `validate` prints and logs carry. */
export const formatIssue = (issue: ConfigIssue): string => {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.column}` : issue.file
  return issue.path === "" ? `${where}: ${issue.message}` : `${where}: ${issue.path}: ${issue.message}`
}

/** The file could not be read at all (missing, unreadable, a directory). */
export class ConfigReadError extends Data.TaggedError("ConfigReadError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.file}: cannot read: ${this.reason}`
  }
  get issues(): ReadonlyArray<ConfigIssue> {
    return [{ file: this.file, line: 0, column: 0, path: "", message: `cannot read: ${this.reason}` }]
  }
}

/** What a config file is called in messages: `-limits-config` or `-config`. */
export type ConfigRole = "limits" | "config"

/**
 * The path names something other than a regular file (a FIFO, a socket, a device). Refused before
 * any byte is read: reading a FIFO would wait for a writer, for ever.
 */
export class ConfigNotRegularFileError extends Data.TaggedError("ConfigNotRegularFileError")<{
  readonly file: string
  /** `a FIFO`, `a socket`, `a character device`, … */
  readonly kind: string
}> {
  get reason(): string {
    return `not a regular file (${this.kind})`
  }
  override get message(): string {
    return `${this.file}: cannot read: ${this.reason}`
  }
  get issues(): ReadonlyArray<ConfigIssue> {
    return [{ file: this.file, line: 0, column: 0, path: "", message: `cannot read: ${this.reason}` }]
  }
}

/** The file is larger than `-config-max-bytes`: refused from its size, before it is read. */
export class ConfigTooLargeError extends Data.TaggedError("ConfigTooLargeError")<{
  readonly file: string
  readonly role: ConfigRole
  readonly size: number
  readonly limit: number
}> {
  get reason(): string {
    return `${this.role} file is ${this.size} bytes, over the limit of ${this.limit} (-config-max-bytes)`
  }
  override get message(): string {
    return `${this.file}: ${this.reason}`
  }
  get issues(): ReadonlyArray<ConfigIssue> {
    return [{ file: this.file, line: 0, column: 0, path: "", message: this.reason }]
  }
}

/** The decoder thread did not answer in time; it is stopped, and started again for the next reload. */
export class ConfigDecodeTimeoutError extends Data.TaggedError("ConfigDecodeTimeoutError")<{
  readonly file: string
  readonly timeoutMs: number
}> {
  get reason(): string {
    return `the config decoder did not finish within ${this.timeoutMs / 1000} s; the reload is rejected`
  }
  override get message(): string {
    return `${this.file}: ${this.reason}`
  }
  get issues(): ReadonlyArray<ConfigIssue> {
    return [{ file: this.file, line: 0, column: 0, path: "", message: this.reason }]
  }
}

/** Why a configured file gave no bytes to decode. */
export type ConfigFileError = ConfigReadError | ConfigNotRegularFileError | ConfigTooLargeError

/** The file was read but is not a valid config: every problem found, in document order. */
export class ConfigInvalidError extends Data.TaggedError("ConfigInvalidError")<{
  readonly file: string
  readonly issues: ReadonlyArray<ConfigIssue>
}> {
  override get message(): string {
    return this.issues.map(formatIssue).join("; ")
  }
}

export type ConfigError = ConfigFileError | ConfigInvalidError | ConfigDecodeTimeoutError
