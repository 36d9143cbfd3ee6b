/**
 * A bounded cache of decoded labels, keyed by their encoded bytes.
 *
 * Remote-write senders repeat the same label pairs within a request (every series of a target
 * shares `job`, `instance`, …) and across requests (every series is sent again each scrape
 * interval). Returning the `Label` already built for the same bytes saves building two strings and
 * an object per label — most of the decoder's allocation, hence most of its garbage-collection
 * time (bench/prw-codec.ts: decode about 2× faster with the cache warm).
 *
 * Direct-mapped: one entry per slot, a new key evicts the old one. Crafted colliding keys can only
 * cause misses (no chains to grow), and memory stays fixed: `2^bits × maxKeyBytes` bytes for keys
 * plus one `Label` per slot. Labels are immutable, so sharing them between requests is safe.
 *
 * @module
 */
import type { Label } from "./types.js"

export class LabelCache {
  private readonly shift: number
  private readonly keys: Uint8Array
  private readonly keyLengths: Int32Array
  private readonly labels: Array<Label | undefined>
  /** Slot of the last `get` (`-1`: the key is not cacheable), for the `set` that follows a miss. */
  private slot = -1

  /**
   * @param bits `2^bits` slots, 1 to 24.
   * @param maxKeyBytes Longer encoded labels are not cached.
   */
  constructor(
    bits: number,
    private readonly maxKeyBytes: number,
  ) {
    if (!(Number.isInteger(bits) && bits >= 1 && bits <= 24))
      throw new RangeError(`bits must be 1..24, got ${bits}`)
    this.shift = 32 - bits
    this.keys = new Uint8Array((1 << bits) * maxKeyBytes)
    this.keyLengths = new Int32Array(1 << bits)
    this.labels = new Array<Label | undefined>(1 << bits).fill(undefined)
  }

  /** The label cached for `bytes[start, end)` (an encoded `Label` message), if any. */
  get(bytes: Uint8Array, start: number, end: number): Label | undefined {
    const length = end - start
    if (length === 0 || length > this.maxKeyBytes) {
      this.slot = -1
      return undefined
    }
    let hash = 0x811c9dc5 // FNV-1a
    for (let i = start; i < end; i++) hash = Math.imul(hash ^ (bytes[i] as number), 0x01000193)
    const slot = hash >>> this.shift
    this.slot = slot
    if (this.keyLengths[slot] !== length) return undefined
    const keys = this.keys
    const base = slot * this.maxKeyBytes
    for (let i = 0; i < length; i++) if (keys[base + i] !== bytes[start + i]) return undefined
    return this.labels[slot]
  }

  /** Caches `label` for the bytes of the `get` that just missed. */
  set(bytes: Uint8Array, start: number, end: number, label: Label): void {
    const slot = this.slot
    if (slot < 0) return
    this.keys.set(bytes.subarray(start, end), slot * this.maxKeyBytes)
    this.keyLengths[slot] = end - start
    this.labels[slot] = label
  }
}

/**
 * The decoder's cache: 32,768 slots of up to 64 key bytes (2 MiB of keys; a label pair longer
 * than ~60 characters is decoded every time).
 */
export const sharedLabelCache = new LabelCache(15, 64)
