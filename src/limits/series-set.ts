/**
 * The set of distinct series of one rule in one window, kept as 64-bit fingerprints of the series
 * keys in an open-addressing hash table (linear probing).
 *
 * Memory: a slot is two `Uint32` (8 bytes). The table grows by 1.5x when it would pass a load of
 * 0.75, so it is between 50% and 75% full: 10.7 to 16 bytes per tracked series (the first
 * {@link MIN_CAPACITY} slots excepted). Keys themselves are never stored.
 *
 * Exactness: two different keys are taken for one series only if their 64-bit fingerprints are
 * equal; for `n` series in a window that happens with probability about `n² / 2^65` (1M series:
 * 3·10⁻⁸). The only effect of such a collision is that the later series is counted as already seen.
 */
import { fingerprint } from "./fingerprint.js"

/** Slots of a new, empty set. */
export const MIN_CAPACITY = 8
/** The table grows before it gets fuller than this. */
export const MAX_LOAD = 0.75
const TWO_POW_32 = 4294967296

const scratch = new Uint32Array(2)

const limitOf = (capacity: number): number => Math.floor(capacity * MAX_LOAD)

/** A set of series keys by 64-bit fingerprint. Mutable; owned by one rule's stats. */
export class SeriesSet {
  /** Slot `i` is `slots[2i]` (high half), `slots[2i + 1]` (low half); `(0, 0)` is empty. */
  private slots: Uint32Array
  private cap: number
  private count = 0
  /** Grow before `count` passes this. */
  private limit: number

  constructor(capacity: number = MIN_CAPACITY) {
    this.cap = Math.max(MIN_CAPACITY, Math.ceil(capacity))
    this.slots = new Uint32Array(this.cap * 2)
    this.limit = limitOf(this.cap)
  }

  /** Distinct series in the set. */
  get size(): number {
    return this.count
  }

  /** Slots in the table. */
  get capacity(): number {
    return this.cap
  }

  /** Bytes held by the table. */
  get byteLength(): number {
    return this.slots.byteLength
  }

  /**
   * The slot of the series with fingerprint `(hi, lo)`: where it is, else the empty slot where
   * linear probing ends (where it would go).
   */
  private slotOf(hi: number, lo: number): number {
    const s = this.slots
    const cap = this.cap
    // Multiply-shift range reduction: the capacity need not be a power of two.
    let i = Math.floor((hi / TWO_POW_32) * cap)
    for (;;) {
      const a = s[2 * i]
      const b = s[2 * i + 1]
      if ((a === hi && b === lo) || (a === 0 && b === 0)) return i
      i++
      if (i === cap) i = 0
    }
  }

  /** Whether the series with fingerprint `(hi, lo)` is in the set. */
  hasHash(hi: number, lo: number): boolean {
    const i = this.slotOf(hi, lo)
    return this.slots[2 * i] !== 0 || this.slots[2 * i + 1] !== 0
  }

  /** Adds the series with fingerprint `(hi, lo)`; true when it was not in the set yet. */
  addHash(hi: number, lo: number): boolean {
    if (this.count >= this.limit) this.resize(Math.ceil(this.cap * 1.5))
    const s = this.slots
    const i = this.slotOf(hi, lo)
    if (s[2 * i] !== 0 || s[2 * i + 1] !== 0) return false
    s[2 * i] = hi
    s[2 * i + 1] = lo
    this.count++
    return true
  }

  /** Whether `key` is in the set. */
  has(key: string): boolean {
    fingerprint(key, scratch)
    return this.hasHash(scratch[0] as number, scratch[1] as number)
  }

  /** Adds `key`; true when it was not in the set yet. */
  add(key: string): boolean {
    fingerprint(key, scratch)
    return this.addHash(scratch[0] as number, scratch[1] as number)
  }

  /**
   * Empties the set for a new window. The table keeps its size when the window that ends used a
   * good part of it (the next window is likely alike), and shrinks to fit it when it used less
   * than a quarter, so memory follows the recent windows rather than the all-time peak.
   */
  clear(): void {
    if (this.count * 4 < this.cap && this.cap > MIN_CAPACITY) {
      this.cap = Math.max(MIN_CAPACITY, this.count * 2)
      this.slots = new Uint32Array(this.cap * 2)
      this.limit = limitOf(this.cap)
    } else {
      this.slots.fill(0)
    }
    this.count = 0
  }

  /** An independent copy. */
  clone(): SeriesSet {
    const copy = new SeriesSet(MIN_CAPACITY)
    copy.slots = this.slots.slice()
    copy.cap = this.cap
    copy.limit = this.limit
    copy.count = this.count
    return copy
  }

  /** Every fingerprint in the set, as `[hi, lo]`. */
  *entries(): IterableIterator<[number, number]> {
    const s = this.slots
    for (let i = 0; i < this.cap; i++) {
      const a = s[2 * i] as number
      const b = s[2 * i + 1] as number
      if (a !== 0 || b !== 0) yield [a, b]
    }
  }

  /** Whether both sets hold exactly the same fingerprints. */
  equals(other: { readonly size: number; hasHash(hi: number, lo: number): boolean }): boolean {
    if (other.size !== this.count) return false
    const s = this.slots
    for (let i = 0; i < this.cap; i++) {
      const a = s[2 * i] as number
      const b = s[2 * i + 1] as number
      if ((a !== 0 || b !== 0) && !other.hasHash(a, b)) return false
    }
    return true
  }

  private resize(capacity: number): void {
    const old = this.slots
    const oldCap = this.cap
    this.cap = Math.max(MIN_CAPACITY, capacity)
    this.slots = new Uint32Array(this.cap * 2)
    this.limit = limitOf(this.cap)
    this.count = 0
    for (let i = 0; i < oldCap; i++) {
      const a = old[2 * i] as number
      const b = old[2 * i + 1] as number
      if (a !== 0 || b !== 0) this.addHash(a, b)
    }
  }
}
