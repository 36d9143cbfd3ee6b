import type { DecodedLimits, DecodedMainConfig } from "../config/decode.js"
import type { MainConfigSpec } from "../config/main-schema.js"
import { MATCH_CACHE_MAX } from "../limits/match.js"
import { MatchCache, sameMatching } from "../limits/match-cache.js"
import { type CompiledLimits, EMPTY_LIMITS } from "../limits/rules.js"
import { accountedRules, reconcileSteps, type StatsByRule } from "../limits/stats.js"
import { runToEnd, type Steps } from "../threads/slices.js"
import type { Trigger } from "./trigger.js"

/**
 * One immutable config version: what every unit of work reads once and uses throughout. A reload
 * that applies makes a new one; nothing in an existing version is ever replaced.
 */
export interface ConfigVersion {
  /** 1 for the startup config, +1 per applied reload. */
  readonly version: number
  /** SHA-256 of the files' bytes; empty when the file is not configured. */
  readonly limitsSha256: string
  readonly configSha256: string
  readonly limits: CompiledLimits
  readonly main: MainConfigSpec
  /** The effective dry-run: the `-limits-dry-run` flag when given, else `limits.dry_run`. */
  readonly dryRun: boolean
  /** Where the effective dry-run comes from. */
  readonly dryRunSource: "flag" | "config"
  readonly rulesCount: number
  /** Wall-clock ms when this version became active. */
  readonly loadedAt: number
  readonly trigger: Trigger
  /** Rule stats, reconciled from the previous version's (see `reconcile`). */
  readonly stats: StatsByRule
  /**
   * Series fingerprint -> owner (see `MatchCache`). A new version starts with an empty cache, unless
   * its rules match exactly as its predecessor's (`sameMatching`): then it takes that cache over.
   */
  readonly matchCache: MatchCache
}

export interface VersionInputs {
  readonly limits: DecodedLimits | undefined
  readonly main: DecodedMainConfig | undefined
  readonly dryRunFlag: boolean | undefined
  readonly trigger: Trigger
  readonly now: number
}

/** The next version after `previous` (or the first, when there is none). Pure but for the new cache. */
export const nextVersion = (previous: ConfigVersion | undefined, inputs: VersionInputs): ConfigVersion =>
  runToEnd(nextVersionSteps(previous, inputs))

/** `nextVersion` in steps (see `threads/slices.ts`): the stats are reconciled one rule per step. */
export function* nextVersionSteps(
  previous: ConfigVersion | undefined,
  inputs: VersionInputs,
): Steps<ConfigVersion> {
  const limits = inputs.limits?.compiled ?? EMPTY_LIMITS
  const configDryRun = inputs.main?.spec.limits?.dry_run ?? false
  const newRules = accountedRules(limits)
  const stats =
    previous === undefined
      ? yield* reconcileSteps(new Map(), [], newRules, inputs.now)
      : yield* reconcileSteps(previous.stats, accountedRules(previous.limits), newRules, inputs.now)
  return {
    version: (previous?.version ?? 0) + 1,
    limitsSha256: inputs.limits?.sha256 ?? "",
    configSha256: inputs.main?.sha256 ?? "",
    limits,
    // The same config.yaml keeps its very spec: a limits-only reload changes nothing that reads it.
    main:
      previous !== undefined && previous.configSha256 === (inputs.main?.sha256 ?? "")
        ? previous.main
        : (inputs.main?.spec ?? {}),
    dryRun: inputs.dryRunFlag ?? configDryRun,
    dryRunSource: inputs.dryRunFlag === undefined ? "config" : "flag",
    rulesCount: limits.rules.length,
    loadedAt: inputs.now,
    trigger: inputs.trigger,
    stats,
    // A version whose rules match exactly as its predecessor's takes over its cache (owners are
    // stored by position): a reload that changes limits does not make every series cold.
    matchCache:
      previous !== undefined && sameMatching(previous.limits, limits)
        ? previous.matchCache
        : new MatchCache(MATCH_CACHE_MAX),
  }
}
