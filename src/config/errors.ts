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

/** The file was read but is not a valid config: every problem found, in document order. */
export class ConfigInvalidError extends Data.TaggedError("ConfigInvalidError")<{
  readonly file: string
  readonly issues: ReadonlyArray<ConfigIssue>
}> {
  override get message(): string {
    return this.issues.map(formatIssue).join("; ")
  }
}

export type ConfigError = ConfigReadError | ConfigInvalidError
