/**
 * The memory limit in force (docs/memory.md): `-memory-limit BYTES`, else `memory.limit_ratio` of the
 * container's cgroup memory limit, else none. With no ratio configured, a container limit is used at
 * the default ratio (0.9), as the governor should live inside the limit it is given.
 *
 * @module
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** The ratio of the cgroup limit used when `memory.limit_ratio` is not set. */
export const DEFAULT_LIMIT_RATIO = 0.9

/** cgroup "no limit" values are near 2^63; anything above this is no limit. */
const NO_LIMIT_ABOVE = 2 ** 60

export interface CgroupPaths {
  /** `/proc/self/cgroup`. */
  readonly procCgroup: string
  /** The cgroup filesystem's mount point, `/sys/fs/cgroup`. */
  readonly root: string
}

const HOST_PATHS: CgroupPaths = { procCgroup: "/proc/self/cgroup", root: "/sys/fs/cgroup" }

const readLimitFile = (file: string): number | undefined => {
  let text: string
  try {
    text = fs.readFileSync(file, "utf8").trim()
  } catch {
    return undefined
  }
  if (text === "max" || !/^\d+$/.test(text)) return undefined
  const n = Number(text)
  return n > 0 && n < NO_LIMIT_ABOVE ? n : undefined
}

/**
 * The memory limit of this process's cgroup in bytes, or undefined when there is none (or it cannot
 * be read). cgroup v2: `memory.max` of the process's cgroup (`0::/path` in `/proc/self/cgroup`), else
 * of the mount's root (what a container sees with a private cgroup namespace); v1:
 * `memory/<path>/memory.limit_in_bytes`, else `memory/memory.limit_in_bytes`.
 */
export const cgroupMemoryLimit = (paths: CgroupPaths = HOST_PATHS): number | undefined => {
  let lines: Array<string>
  try {
    lines = fs.readFileSync(paths.procCgroup, "utf8").split("\n")
  } catch {
    lines = []
  }
  const candidates: Array<string> = []
  for (const line of lines) {
    const [, controllers, cgroupPath] = /^\d+:([^:]*):(.*)$/.exec(line.trim()) ?? []
    if (cgroupPath === undefined) continue
    if (controllers === "") candidates.push(path.join(paths.root, cgroupPath, "memory.max"))
    else if (controllers?.split(",").includes("memory")) {
      candidates.push(path.join(paths.root, "memory", cgroupPath, "memory.limit_in_bytes"))
    }
  }
  candidates.push(
    path.join(paths.root, "memory.max"),
    path.join(paths.root, "memory", "memory.limit_in_bytes"),
  )
  for (const file of candidates) {
    const limit = readLimitFile(file)
    if (limit !== undefined) return limit
  }
  return undefined
}

export interface MemoryLimit {
  /** Undefined: no limit; the governor sizes nothing from memory. */
  readonly bytes: number | undefined
  /** Where it came from, for the start log line. */
  readonly source: "flag" | "cgroup" | "none"
  readonly cgroupBytes: number | undefined
}

/** The limit in force: the flag wins; else the ratio (default 0.9) of the cgroup limit; else none. */
export const resolveMemoryLimit = (
  flagBytes: number | undefined,
  ratio: number | undefined,
  cgroupBytes: number | undefined,
): MemoryLimit => {
  if (flagBytes !== undefined) return { bytes: flagBytes, source: "flag", cgroupBytes }
  if (cgroupBytes !== undefined) {
    return {
      bytes: Math.floor(cgroupBytes * (ratio ?? DEFAULT_LIMIT_RATIO)),
      source: "cgroup",
      cgroupBytes,
    }
  }
  return { bytes: undefined, source: "none", cgroupBytes }
}

const MiB = 1024 * 1024

/** What the governor sizes from a memory limit. Pure; documented in docs/memory.md. */
export interface MemoryBudget {
  readonly limitBytes: number
  /** Each protocol's export buffer holds at most this many bytes (or less, when configured less). */
  readonly bufferBytes: number
  /** Request bytes being read, decompressed, decoded or enforced at one time, all protocols. */
  readonly inFlightBytes: number
  /** Old-generation heap of each decoding thread, MiB. */
  readonly threadOldGenerationMb: number
  /** Young-generation heap of each decoding thread, MiB. */
  readonly threadYoungGenerationMb: number
  /** Resident memory at which garbage collection is asked for. */
  readonly collectAtBytes: number
  /** Resident memory at which new requests are refused, until it is back under `resumeAtBytes`. */
  readonly refuseAtBytes: number
  readonly resumeAtBytes: number
  /** The main thread's V8 old generation, MiB (`--max-old-space-size`). */
  readonly heapOldSpaceMb: number
  /** The main thread's V8 semi-space, MiB (`--max-semi-space-size`): the young generation is a few of them. */
  readonly heapSemiSpaceMb: number
}

/**
 * The old generation the main thread's heap starts with, MiB, when no memory limit applies. V8
 * starts a small heap with a small old-generation limit and, under a steady stream of requests,
 * runs a full mark-compact every few hundred milliseconds (each 20-60 ms of marking and pauses on
 * the thread that answers requests); started at 128 MiB, it ran two in 10 s of the same load and
 * the requests' p99 fell from about 28 ms to 11 ms (docs/memory.md). Under a 256 MiB limit a start
 * of 64 MiB took the saturated process over the limit (265 MiB), so with a limit it is not set.
 */
export const INITIAL_OLD_SPACE_MB = 128

/**
 * The main thread's semi-space, MiB, when no memory limit applies (V8's default here is 16 MiB,
 * a young generation of 32 MiB committed at saturation). With requests that leave nothing behind
 * in the young generation, 8 MiB costs no throughput: saturated remote write (`-c16`, interleaved)
 * peaked 13-15 MiB lower, OTLP/HTTP 30 MiB lower, each at the same rate (docs/memory.md).
 */
export const DEFAULT_SEMI_SPACE_MB = 8

/**
 * The young generation of each remote-write decoding thread, MiB, when no memory limit applies:
 * a thread decompresses into one reused buffer and allocates only the scan's small objects.
 */
export const DECODE_THREAD_YOUNG_MB = 4

/**
 * The old generation of each remote-write decoding thread, MiB, when no memory limit applies (with
 * one, `threadOldGenerationMb`, at least as much). V8's flags are the process's: without a bound
 * of its own, a thread's old generation would start at `INITIAL_OLD_SPACE_MB` like the main
 * thread's and fill with garbage up to it before its first full collection. A thread keeps about
 * 10 MiB alive (its code and one reused buffer; bodies and scans are outside its heap).
 */
export const DECODE_THREAD_OLD_MB = 32

export const budgetOf = (limitBytes: number): MemoryBudget => ({
  limitBytes,
  bufferBytes: Math.max(MiB, Math.floor(limitBytes * 0.1)),
  inFlightBytes: Math.max(MiB, Math.floor(limitBytes * 0.1)),
  threadOldGenerationMb: Math.max(32, Math.floor((limitBytes * 0.08) / MiB)),
  threadYoungGenerationMb: limitBytes >= 512 * MiB ? 16 : 8,
  collectAtBytes: Math.floor(limitBytes * 0.65),
  refuseAtBytes: Math.floor(limitBytes * 0.8),
  resumeAtBytes: Math.floor(limitBytes * 0.75),
  heapOldSpaceMb: Math.max(64, Math.floor((limitBytes * 0.5) / MiB)),
  heapSemiSpaceMb: Math.min(16, Math.max(1, 2 ** Math.floor(Math.log2(limitBytes / (128 * MiB))))),
})

/**
 * The node flags that size the main thread's heap for `budget`, or, without a memory limit
 * (undefined), the old generation it starts with and its semi-space. A running Node.js process cannot resize its heap, so
 * `bin/metrics-governor` works these out first (`heap-flags.ts`) and starts node with them. A heap
 * flag already given (in `NODE_OPTIONS` or to node) is left as it is.
 */
export const heapFlagsOf = (
  budget: MemoryBudget | undefined,
  given: ReadonlyArray<string> = [],
): ReadonlyArray<string> => {
  const has = (flag: string) => given.some((g) => g === flag || g.startsWith(`${flag}=`))
  const out: Array<string> = []
  if (budget !== undefined && !has("--max-old-space-size")) {
    out.push(`--max-old-space-size=${budget.heapOldSpaceMb}`)
  }
  if (budget !== undefined && !has("--max-semi-space-size")) {
    out.push(`--max-semi-space-size=${budget.heapSemiSpaceMb}`)
  }
  // Under a memory limit, memory comes first: V8 collects early, as it does with a small heap.
  if (budget === undefined && !has("--initial-old-space-size")) {
    out.push(`--initial-old-space-size=${INITIAL_OLD_SPACE_MB}`)
  }
  if (budget === undefined && !has("--max-semi-space-size")) {
    out.push(`--max-semi-space-size=${DEFAULT_SEMI_SPACE_MB}`)
  }
  return out
}

/** The heap flags of a node command line and of `NODE_OPTIONS` (words starting with `--`). */
export const givenNodeFlags = (
  execArgv: ReadonlyArray<string>,
  nodeOptions: string | undefined,
): ReadonlyArray<string> => [
  ...execArgv,
  ...(nodeOptions ?? "").split(/\s+/).filter((w) => w.startsWith("--")),
]
