import type { CompiledRule } from "./rules.js"

/**
 * The match cache of a config version: series fingerprint → owning rule (`null`: no rule and no
 * defaults, the series is untracked). Each series is matched against the rules once per version.
 *
 * Keyed by the 64-bit fingerprint itself, in an open-addressing table of typed arrays: a lookup is
 * a few array reads, with no key to build and nothing allocated. Grows by doubling at half load;
 * emptied (and matched again) when it would pass `max` entries, so its memory stays bounded.
 */
export class MatchCache {
  private his: Uint32Array
  private los: Uint32Array
  /** `undefined`: empty slot. */
  private owners: Array<CompiledRule | null | undefined>
  private mask: number
  private count = 0

  constructor(
    readonly max: number,
    private readonly initialSlots = 1024,
  ) {
    this.his = new Uint32Array(initialSlots)
    this.los = new Uint32Array(initialSlots)
    this.owners = new Array<CompiledRule | null | undefined>(initialSlots).fill(undefined)
    this.mask = initialSlots - 1
  }

  get size(): number {
    return this.count
  }

  /** The owner cached for the fingerprint `(hi, lo)`; `undefined` when not cached. */
  get(hi: number, lo: number): CompiledRule | null | undefined {
    const his = this.his
    const los = this.los
    const owners = this.owners
    const mask = this.mask
    for (let slot = lo & mask; ; slot = (slot + 1) & mask) {
      const owner = owners[slot]
      if (owner === undefined) return undefined
      if (los[slot] === lo && his[slot] === hi) return owner
    }
  }

  /** Caches `owner` for `(hi, lo)`, which must not be cached yet. */
  set(hi: number, lo: number, owner: CompiledRule | null): void {
    if (this.count >= this.max) this.clear()
    if (2 * (this.count + 1) > this.owners.length) this.grow()
    this.insert(hi >>> 0, lo >>> 0, owner)
    this.count++
  }

  clear(): void {
    this.his = new Uint32Array(this.initialSlots)
    this.los = new Uint32Array(this.initialSlots)
    this.owners = new Array<CompiledRule | null | undefined>(this.initialSlots).fill(undefined)
    this.mask = this.initialSlots - 1
    this.count = 0
  }

  private insert(hi: number, lo: number, owner: CompiledRule | null): void {
    const mask = this.mask
    let slot = lo & mask
    while (this.owners[slot] !== undefined) slot = (slot + 1) & mask
    this.his[slot] = hi
    this.los[slot] = lo
    this.owners[slot] = owner
  }

  private grow(): void {
    const { his, los, owners } = this
    const slots = owners.length * 2
    this.his = new Uint32Array(slots)
    this.los = new Uint32Array(slots)
    this.owners = new Array<CompiledRule | null | undefined>(slots).fill(undefined)
    this.mask = slots - 1
    for (let i = 0; i < owners.length; i++) {
      const owner = owners[i]
      if (owner !== undefined) this.insert(his[i] as number, los[i] as number, owner)
    }
  }
}
