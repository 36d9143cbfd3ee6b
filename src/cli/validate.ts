import { Effect, Either } from "effect"
import { formatIssue } from "../config/errors.js"
import { loadConfig } from "../config/load.js"
import { type RunFlags, UsageError } from "./flags.js"

/** What `validate` prints on success: one line with the rules count and the hashes. */
export const summaryLine = (
  limits: { file: string; sha256: string; rules: number } | undefined,
  config: { file: string; sha256: string } | undefined,
): string => {
  const parts: Array<string> = []
  if (limits !== undefined)
    parts.push(`limits ${limits.file}: ${limits.rules} rules, sha256 ${limits.sha256}`)
  if (config !== undefined) parts.push(`config ${config.file}: sha256 ${config.sha256}`)
  return `ok: ${parts.join("; ")}`
}

/**
 * `metrics-governor validate`: the same read and decode as startup and every reload. Prints every
 * problem as `file:line:col: path: message` on stderr and returns 1, or a summary and returns 0.
 */
export const validate = (flags: RunFlags) =>
  Effect.gen(function* () {
    if (flags.limitsConfig === undefined && flags.config === undefined) {
      return yield* Effect.fail(new UsageError({ reason: "validate needs -limits-config and/or -config" }))
    }
    const paths = { config: flags.config, limits: flags.limitsConfig }
    const loaded = yield* Effect.either(loadConfig(paths, flags.configMaxBytes))
    if (Either.isLeft(loaded)) {
      for (const issue of loaded.left.issues) process.stderr.write(`${formatIssue(issue)}\n`)
      const n = loaded.left.issues.length
      process.stderr.write(`invalid: ${n} problem${n === 1 ? "" : "s"}\n`)
      return 1
    }
    const { limits, main } = loaded.right
    process.stdout.write(
      `${summaryLine(
        limits && { file: limits.file, sha256: limits.sha256, rules: limits.compiled.rules.length },
        main && { file: main.file, sha256: main.sha256 },
      )}\n`,
    )
    return 0
  })
