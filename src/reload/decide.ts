import type { Either } from "effect"
import type { ConfigLoadError, LoadedConfig } from "../config/load.js"
import { runToEnd, type Steps } from "../threads/slices.js"
import type { Trigger } from "./trigger.js"
import { type ConfigVersion, nextVersionSteps } from "./version.js"

/** The outcome of one reload attempt. */
export type Decision =
  | {
      readonly _tag: "Applied"
      readonly version: ConfigVersion
      readonly previous: ConfigVersion | undefined
    }
  | { readonly _tag: "Unchanged"; readonly version: ConfigVersion }
  | {
      readonly _tag: "Rejected"
      readonly error: ConfigLoadError
      readonly version: ConfigVersion | undefined
    }

export interface DecideContext {
  readonly trigger: Trigger
  readonly now: number
  readonly dryRunFlag: boolean | undefined
}

/**
 * Decides a reload: a load failure keeps `current` (rejected); the same content hashes as `current`
 * change nothing (unchanged); anything else becomes the next version (applied). Pure.
 */
export const decide = (
  current: ConfigVersion | undefined,
  loaded: Either.Either<LoadedConfig, ConfigLoadError>,
  ctx: DecideContext,
): Decision => runToEnd(decideSteps(current, loaded, ctx))

/** `decide` in steps (see `threads/slices.ts`): the reloader runs it in slices beside the data path. */
export function* decideSteps(
  current: ConfigVersion | undefined,
  loaded: Either.Either<LoadedConfig, ConfigLoadError>,
  ctx: DecideContext,
): Steps<Decision> {
  if (loaded._tag === "Left") return { _tag: "Rejected", error: loaded.left, version: current }
  const { limits, main } = loaded.right
  if (
    current !== undefined &&
    current.limitsSha256 === (limits?.sha256 ?? "") &&
    current.configSha256 === (main?.sha256 ?? "")
  ) {
    return { _tag: "Unchanged", version: current }
  }
  return {
    _tag: "Applied",
    previous: current,
    version: yield* nextVersionSteps(current, {
      limits,
      main,
      dryRunFlag: ctx.dryRunFlag,
      trigger: ctx.trigger,
      now: ctx.now,
    }),
  }
}
