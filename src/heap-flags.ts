/**
 * Prints the node flags that size the V8 heap of the main thread for the memory limit that
 * `metrics-governor ARGS` would run with; with no limit, only the old generation it starts with
 * (docs/memory.md).
 * `bin/metrics-governor` runs `node dist/heap-flags.js ARGS` and then `node FLAGS dist/main.js ARGS`:
 * a running Node.js process cannot resize its own heap. The limit is resolved as the governor
 * resolves it (`-memory-limit`, else `memory.limit_ratio` of `-config` of the cgroup's limit);
 * anything it cannot read (a bad command line, a config that does not decode) prints nothing and
 * is left to the governor to report.
 */
import * as fs from "node:fs"
import {
  budgetOf,
  cgroupMemoryLimit,
  givenNodeFlags,
  heapFlagsOf,
  resolveMemoryLimit,
} from "./memory/limit.js"

const flagsFor = async (args: ReadonlyArray<string>): Promise<ReadonlyArray<string>> => {
  const cgroup = cgroupMemoryLimit()
  const given = givenNodeFlags([], process.env.NODE_OPTIONS)
  // No flag and no container limit: no limit applies, and nothing more need be loaded.
  if (cgroup === undefined && !args.some((a) => /^--?memory-limit(=|$)/.test(a))) {
    return heapFlagsOf(undefined, given)
  }
  const { Either } = await import("effect")
  const { parseCommandLine } = await import("./cli/flags.js")
  const { decodeMainConfig } = await import("./config/decode.js")
  const parsed = parseCommandLine(args)
  if (Either.isLeft(parsed) || parsed.right._tag !== "Run") return []
  const flags = parsed.right.flags
  let ratio: number | undefined
  if (flags.config !== undefined) {
    try {
      const decoded = decodeMainConfig(flags.config, fs.readFileSync(flags.config))
      ratio = Either.isRight(decoded) ? decoded.right.spec.memory?.limit_ratio : undefined
    } catch {
      ratio = undefined
    }
  }
  const limit = resolveMemoryLimit(flags.memoryLimit, ratio, cgroup)
  return heapFlagsOf(limit.bytes === undefined ? undefined : budgetOf(limit.bytes), given)
}

process.stdout.write(`${(await flagsFor(process.argv.slice(2))).join(" ")}\n`)
