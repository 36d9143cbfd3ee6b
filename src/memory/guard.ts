/**
 * Admission of requests against the memory limit (docs/memory.md). Every receiver asks `admit` before
 * it reads a request's body and calls `release` when it has answered: a request admitted is charged
 * its size times `EXPANSION` (what its decompressed and decoded forms take beside it) against the
 * in-flight budget, and while the process's resident memory is above the refusal mark nothing new
 * is admitted until it is back under the resume mark. Near the limit garbage collection is asked
 * for, so that request bytes already answered are given back before new ones are refused.
 *
 * The checks are plain arithmetic on a resident-memory reading at most `RSS_MAX_AGE_MS` old: cheap
 * enough to run for every request.
 *
 * @module
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import type { MemoryBudget } from "./limit.js"

/** What a request's wire bytes are charged: compressed bodies grow when decompressed and decoded. */
export const EXPANSION = 6
/** What a body without `content-length` is charged, in wire bytes, before it is read. */
export const UNDECLARED_BYTES = 1024 * 1024
/** The Retry-After of a refusal. */
export const REFUSAL_RETRY_AFTER_MS = 1_000
/** How old a resident-memory reading may be. */
export const RSS_MAX_AGE_MS = 10
/** Least time between two garbage collections asked for. */
export const COLLECT_EVERY_MS = 100

/** The admission a receiver asks before reading a request. */
export interface Admission {
  /** True when the request may be read; then `release(bytes)` once it is answered. */
  admit(bytes: number): boolean
  release(bytes: number): void
  /** Request bytes admitted and not released, as charged. */
  readonly inFlight: number
}

/** No memory limit: everything is admitted. */
export const UNLIMITED: Admission = {
  admit: () => true,
  release: () => {},
  inFlight: 0,
}

/** A function that runs a garbage collection: `minor` (young generation) or a full one. */
export type Collect = (kind: "minor" | "major") => void

/**
 * V8's `gc`, made available at run time (the governor is not started with `--expose-gc`). Called
 * only when a memory limit is in force.
 */
export const v8Collect = (): Collect => {
  setFlagsFromString("--expose-gc")
  const gc = runInNewContext("gc") as (options?: { type: string; execution: string }) => void
  return (kind) => gc({ type: kind, execution: kind === "minor" ? "sync" : "async" })
}

export interface GuardClock {
  /** Resident set size of the process, bytes. */
  readonly rss: () => number
  /** Monotonic milliseconds. */
  readonly now: () => number
}

const PROCESS_CLOCK: GuardClock = {
  rss: () => process.memoryUsage.rss(),
  now: () => performance.now(),
}

export class MemoryGuard implements Admission {
  private held = 0
  private refusing = false
  private rssReading = 0
  private rssAt = Number.NEGATIVE_INFINITY
  private collectedAt = Number.NEGATIVE_INFINITY

  constructor(
    readonly budget: MemoryBudget,
    private readonly collect: Collect | undefined,
    private readonly clock: GuardClock = PROCESS_CLOCK,
  ) {}

  get inFlight(): number {
    return this.held
  }

  /** Whether new requests are refused for resident memory right now. */
  get overLimit(): boolean {
    return this.refusing
  }

  private resident(now: number): number {
    if (now - this.rssAt >= RSS_MAX_AGE_MS) {
      this.rssReading = this.clock.rss()
      this.rssAt = now
    }
    return this.rssReading
  }

  /**
   * Asks for a garbage collection when resident memory is past the collection mark (at most every
   * `COLLECT_EVERY_MS`); returns the resident memory after it.
   */
  private collectIfHigh(now: number): number {
    let rss = this.resident(now)
    const b = this.budget
    if (rss >= b.collectAtBytes && this.collect !== undefined && now - this.collectedAt >= COLLECT_EVERY_MS) {
      this.collectedAt = now
      // Answered requests' bytes are garbage in the young generation: a scavenge frees most of them.
      this.collect(rss >= b.refuseAtBytes ? "major" : "minor")
      this.rssAt = Number.NEGATIVE_INFINITY
      rss = this.resident(now)
    }
    return rss
  }

  /**
   * Checks resident memory every `COLLECT_EVERY_MS` whether requests arrive or not: while the
   * exporters drain what was accepted (encoding and compressing batches) no request asks, and the
   * garbage they leave must be collected too. Returns the function that stops it.
   */
  watch(): () => void {
    const timer = setInterval(() => {
      this.collectIfHigh(this.clock.now())
    }, COLLECT_EVERY_MS)
    timer.unref()
    return () => clearInterval(timer)
  }

  admit(bytes: number): boolean {
    const now = this.clock.now()
    const rss = this.collectIfHigh(now)
    const b = this.budget
    if (this.refusing && rss < b.resumeAtBytes) this.refusing = false
    else if (!this.refusing && rss >= b.refuseAtBytes) this.refusing = true
    // One request is always admitted when nothing is in flight, whatever the reading: memory the
    // process cannot give back (pages its allocator keeps) never stalls the receivers for good.
    if (this.held > 0 && this.refusing) return false
    const charge = bytes * EXPANSION
    if (this.held > 0 && this.held + charge > b.inFlightBytes) return false
    this.held += charge
    return true
  }

  release(bytes: number): void {
    this.held = Math.max(0, this.held - bytes * EXPANSION)
  }
}
