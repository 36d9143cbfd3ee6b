import type { CompiledLimits } from "./rules.js"

/** `MatchCache.get` when the series is not cached. */
export const NOT_CACHED = -3
/** The owner code of series owned by `defaults`. */
export const OWNER_DEFAULTS = -1
/** The owner code of series owned by no rule (untracked). */
export const OWNER_NONE = -2

/**
 * The match cache: series fingerprint → owner code (the index of the owning rule in the rules'
 * file order, {@link OWNER_DEFAULTS} or {@link OWNER_NONE}). Each series is matched against the
 * rules once.
 *
 * Keyed by the 64-bit fingerprint itself, in an open-addressing table of typed arrays: a lookup is
 * a few array reads, with no key to build and nothing allocated. Grows by doubling at half load;
 * emptied (and matched again) when it would pass `max` entries, so its memory stays bounded.
 *
 * Owners are stored as positions, not rule objects, so the cache holds for any config version
 * whose rules match exactly as the ones it was filled with (`sameMatching`): a reload that only
 * changes limits or actions keeps it.
 */
export class MatchCache {
  private his: Uint32Array
  private los: Uint32Array
  /** Owner code + 3 (0: empty slot). */
  private owners: Int32Array
  private mask: number
  private count = 0

  constructor(
    readonly max: number,
    private readonly initialSlots = 1024,
  ) {
    this.his = new Uint32Array(initialSlots)
    this.los = new Uint32Array(initialSlots)
    this.owners = new Int32Array(initialSlots)
    this.mask = initialSlots - 1
  }

  get size(): number {
    return this.count
  }

  /** The owner code cached for the fingerprint `(hi, lo)`, or {@link NOT_CACHED}. */
  get(hi: number, lo: number): number {
    const his = this.his
    const los = this.los
    const owners = this.owners
    const mask = this.mask
    const h = hi >>> 0
    const l = lo >>> 0
    for (let slot = l & mask; ; slot = (slot + 1) & mask) {
      const owner = owners[slot] as number
      if (owner === 0) return NOT_CACHED
      if (los[slot] === l && his[slot] === h) return owner - 3
    }
  }

  /** Caches `owner` (a code, not {@link NOT_CACHED}) for `(hi, lo)`, which must not be cached yet. */
  set(hi: number, lo: number, owner: number): void {
    if (this.count >= this.max) this.clear()
    if (2 * (this.count + 1) > this.owners.length) this.grow()
    this.insert(hi >>> 0, lo >>> 0, owner + 3)
    this.count++
  }

  clear(): void {
    this.his = new Uint32Array(this.initialSlots)
    this.los = new Uint32Array(this.initialSlots)
    this.owners = new Int32Array(this.initialSlots)
    this.mask = this.initialSlots - 1
    this.count = 0
  }

  private insert(hi: number, lo: number, stored: number): void {
    const mask = this.mask
    let slot = lo & mask
    while (this.owners[slot] !== 0) slot = (slot + 1) & mask
    this.his[slot] = hi
    this.los[slot] = lo
    this.owners[slot] = stored
  }

  private grow(): void {
    const { his, los, owners } = this
    const slots = owners.length * 2
    this.his = new Uint32Array(slots)
    this.los = new Uint32Array(slots)
    this.owners = new Int32Array(slots)
    this.mask = slots - 1
    for (let i = 0; i < owners.length; i++) {
      const stored = owners[i] as number
      if (stored !== 0) this.insert(his[i] as number, los[i] as number, stored)
    }
  }
}

/**
 * Whether two sets of rules give every series the same owner code: the same rules in the same
 * order with the same `metric_name` patterns and label conditions, and `defaults` set in both or in
 * neither. Names, limits, actions and everything else may differ.
 */
export const sameMatching = (a: CompiledLimits, b: CompiledLimits): boolean => {
  if (a.rules.length !== b.rules.length || (a.defaults === undefined) !== (b.defaults === undefined))
    return false
  for (let i = 0; i < a.rules.length; i++) {
    const ra = a.rules[i]
    const rb = b.rules[i]
    if (ra === undefined || rb === undefined || ra.metricNameSource !== rb.metricNameSource) return false
    if (ra.labels.length !== rb.labels.length) return false
    for (let j = 0; j < ra.labels.length; j++) {
      const la = ra.labels[j]
      const lb = rb.labels[j]
      if (la?.name !== lb?.name || la?.value !== lb?.value) return false
    }
  }
  return true
}
