/**
 * How a rule tracks its distinct series (`-cardinality-mode`, docs/limits.md "Cardinality tracking
 * mode"). `exact` is the 64-bit-fingerprint set (`SeriesSet`); `bloom` is a Bloom filter sized
 * from `-cardinality-expected-items` and `-cardinality-fp-rate`: a new series may be taken for a
 * known one at about that rate (so it is not counted, and a rule at its limit lets it through),
 * never the reverse; its memory is fixed whatever the traffic.
 *
 * The mode is chosen once per process, before the first config version: every rule's tracker is
 * made by `newTracker`.
 */
import { SeriesSet } from "./series-set.js"

/** What a rule's accounting needs of its set of series. */
export interface SeriesTracker {
  readonly size: number
  readonly byteLength: number
  hasHash(hi: number, lo: number): boolean
  addHash(hi: number, lo: number): boolean
  clear(): void
  clone(): SeriesTracker
  equals(other: SeriesTracker): boolean
}

export type CardinalityMode = "exact" | "bloom" | "hybrid"

export interface TrackerSettings {
  readonly mode: CardinalityMode
  readonly expectedItems: number
  readonly fpRate: number
  readonly hllThreshold: number
}

export const DEFAULT_TRACKER_SETTINGS: TrackerSettings = {
  mode: "exact",
  expectedItems: 100_000,
  fpRate: 0.01,
  hllThreshold: 10_000,
}

const TWO_POW_32 = 4294967296

/**
 * A Bloom filter over series fingerprints: `bits` bits, `hashes` probes by double hashing of the
 * fingerprint's halves. `size` counts the series added that were not taken for known ones.
 */
export class BloomSet implements SeriesTracker {
  private readonly words: Uint32Array
  private count = 0

  constructor(
    readonly bits: number,
    readonly hashes: number,
  ) {
    this.words = new Uint32Array(Math.ceil(bits / 32))
  }

  /** The filter for `n` items at false-positive rate `p`: m = -n ln p / ln² 2 bits, k = m/n ln 2. */
  static sized(n: number, p: number): BloomSet {
    const bits = Math.max(64, Math.ceil((-n * Math.log(p)) / (Math.LN2 * Math.LN2)))
    const hashes = Math.max(1, Math.round((bits / n) * Math.LN2))
    return new BloomSet(bits, hashes)
  }

  get size(): number {
    return this.count
  }

  get byteLength(): number {
    return this.words.byteLength
  }

  hasHash(hi: number, lo: number): boolean {
    const m = this.bits
    const w = this.words
    // h_i = hi + i * lo (mod m), lo made odd so the probes differ.
    let h = hi % m
    const step = ((lo | 1) >>> 0) % m
    for (let i = 0; i < this.hashes; i++) {
      if (((w[h >>> 5] as number) & (1 << (h & 31))) === 0) return false
      h += step
      if (h >= m) h -= m
    }
    return true
  }

  addHash(hi: number, lo: number): boolean {
    const m = this.bits
    const w = this.words
    let h = hi % m
    const step = ((lo | 1) >>> 0) % m
    let fresh = false
    for (let i = 0; i < this.hashes; i++) {
      const word = h >>> 5
      const bit = 1 << (h & 31)
      const before = w[word] as number
      if ((before & bit) === 0) {
        fresh = true
        w[word] = before | bit
      }
      h += step
      if (h >= m) h -= m
    }
    if (fresh) this.count++
    return fresh
  }

  clear(): void {
    this.words.fill(0)
    this.count = 0
  }

  clone(): BloomSet {
    const copy = new BloomSet(this.bits, this.hashes)
    copy.words.set(this.words)
    copy.count = this.count
    return copy
  }

  equals(other: SeriesTracker): boolean {
    if (!(other instanceof BloomSet) || other.count !== this.count || other.bits !== this.bits) return false
    for (let i = 0; i < this.words.length; i++) if (this.words[i] !== other.words[i]) return false
    return true
  }
}

/**
 * HyperLogLog with 2^14 one-byte registers (16 KiB, standard error about 0.8%), over fingerprints.
 */
export class HyperLogLog {
  static readonly P = 14
  private readonly registers = new Uint8Array(1 << HyperLogLog.P)

  get byteLength(): number {
    return this.registers.byteLength
  }

  add(hi: number, lo: number): void {
    const index = hi >>> (32 - HyperLogLog.P)
    // Rank: leading zeros of the remaining 18 bits of hi, then of lo, plus one.
    const rest = (hi << HyperLogLog.P) >>> 0
    let rank = rest === 0 ? 32 - HyperLogLog.P + Math.clz32(lo) + 1 : Math.clz32(rest) + 1
    if (rank > 50) rank = 50
    if ((this.registers[index] as number) < rank) this.registers[index] = rank
  }

  estimate(): number {
    const m = this.registers.length
    let sum = 0
    let zeros = 0
    for (let i = 0; i < m; i++) {
      const r = this.registers[i] as number
      sum += 2 ** -r
      if (r === 0) zeros++
    }
    const alpha = 0.7213 / (1 + 1.079 / m)
    const raw = (alpha * m * m) / sum
    if (raw <= 2.5 * m && zeros > 0) return m * Math.log(m / zeros)
    return raw
  }

  clear(): void {
    this.registers.fill(0)
  }

  copyFrom(other: HyperLogLog): void {
    this.registers.set(other.registers)
  }
}

/**
 * Exact (a `SeriesSet`) until `threshold` series, then an estimate. Past the threshold, every series
 * not among the exact ones is counted in a HyperLogLog of the series offered, and membership is
 * unknown: such a series is taken as known (admitted) when its fingerprint falls in the share of
 * the hash space that keeps the rule at its limit (`limit`, set from the rule), `(limit - exact) /
 * offered`, all of it while under the limit; the others are new, so a rule at its limit refuses
 * them. Admission is by hash: a series is admitted or refused as a whole. `size` is the exact count
 * plus the estimate of the admitted series.
 */
export class HybridSet implements SeriesTracker {
  private readonly exact = new SeriesSet()
  private readonly hll = new HyperLogLog()
  private overflow = false
  /** Cached estimate of the offered series past the threshold (NaN: to compute). */
  private offered = 0
  /** The rule's `max_cardinality` (0: none). */
  limit = 0

  constructor(readonly threshold: number) {}

  private offeredEstimate(): number {
    if (Number.isNaN(this.offered)) this.offered = this.hll.estimate()
    return this.offered
  }

  /** The share of the hash space admitted past the threshold. */
  private share(): number {
    if (this.limit <= 0) return 1
    const offered = this.offeredEstimate()
    const room = this.limit - this.exact.size
    return offered <= room ? 1 : Math.max(0, room / offered)
  }

  get size(): number {
    return this.overflow
      ? this.exact.size + Math.round(this.offeredEstimate() * this.share())
      : this.exact.size
  }

  get byteLength(): number {
    return this.exact.byteLength + (this.overflow ? this.hll.byteLength : 0)
  }

  private offer(hi: number, lo: number): void {
    this.hll.add(hi, lo)
    this.offered = Number.NaN
  }

  hasHash(hi: number, lo: number): boolean {
    if (this.exact.hasHash(hi, lo)) return true
    if (!this.overflow) return false
    this.offer(hi, lo)
    return lo / TWO_POW_32 < this.share()
  }

  addHash(hi: number, lo: number): boolean {
    if (!this.overflow) {
      if (this.exact.size < this.threshold) return this.exact.addHash(hi, lo)
      this.overflow = true
    }
    if (this.exact.hasHash(hi, lo)) return false
    this.offer(hi, lo)
    return true
  }

  clear(): void {
    this.exact.clear()
    this.hll.clear()
    this.overflow = false
    this.offered = 0
  }

  clone(): HybridSet {
    const copy = new HybridSet(this.threshold)
    for (const [hi, lo] of this.exact.entries()) copy.exact.addHash(hi, lo)
    copy.hll.copyFrom(this.hll)
    copy.overflow = this.overflow
    copy.offered = this.offered
    copy.limit = this.limit
    return copy
  }

  equals(other: SeriesTracker): boolean {
    return other instanceof HybridSet && other.size === this.size && this.exact.equals(other.exact)
  }
}

let settings: TrackerSettings = DEFAULT_TRACKER_SETTINGS

/** Sets the mode of every tracker made from now on (at start, before the first config version). */
export const setTrackerSettings = (next: TrackerSettings): void => {
  settings = next
}

export const trackerSettings = (): TrackerSettings => settings

/** A new, empty tracker of the mode in force. */
export const newTracker = (): SeriesTracker =>
  settings.mode === "exact"
    ? new SeriesSet()
    : settings.mode === "bloom"
      ? BloomSet.sized(settings.expectedItems, settings.fpRate)
      : new HybridSet(settings.hllThreshold)
