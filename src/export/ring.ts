/**
 * The consistent-hash ring that shards series over several endpoints.
 *
 * Each endpoint owns `virtualNodes` points on a 32-bit circle, placed by hashing its URL and the
 * point's number; a key belongs to the endpoint of the first point at or after its hash (wrapping
 * around). The points are a function of the URLs alone, so every process with the same endpoint
 * list routes every key the same way (two routers agree), and when an endpoint is added or removed
 * only the keys of the arcs it gains or loses change owner: about 1/n of them.
 *
 * @module
 */
import { fingerprint } from "../limits/fingerprint.js"

/** murmur3's 32-bit finaliser: every input bit reaches every output bit. */
export const mix32 = (h: number): number => {
  let x = h >>> 0
  x ^= x >>> 16
  x = Math.imul(x, 0x85ebca6b)
  x ^= x >>> 13
  x = Math.imul(x, 0xc2b2ae35)
  x ^= x >>> 16
  return x >>> 0
}

/** The ring position of a key whose 64-bit fingerprint is `hi`, `lo`. */
export const positionOf = (hi: number, lo: number): number => mix32(hi ^ mix32(lo))

const fp = new Uint32Array(2)

/** The ring position of a string key. */
export const positionOfText = (key: string): number => {
  fingerprint(key, fp)
  return positionOf(fp[0] as number, fp[1] as number)
}

export class HashRing {
  /** Point positions, ascending. */
  private readonly points: Uint32Array
  /** The endpoint (index into `endpoints`) of each point. */
  private readonly owners: Uint16Array

  constructor(
    readonly endpoints: ReadonlyArray<string>,
    readonly virtualNodes: number,
  ) {
    if (endpoints.length > 65_535) throw new RangeError("at most 65535 endpoints")
    const placed: Array<{ readonly at: number; readonly owner: number }> = []
    for (let e = 0; e < endpoints.length; e++) {
      for (let v = 0; v < virtualNodes; v++) {
        placed.push({ at: positionOfText(`${endpoints[e]}#${v}`), owner: e })
      }
    }
    // Ties (two points at one position) are broken by URL, so the order never depends on the
    // order the endpoints were listed in.
    placed.sort((a, b) =>
      a.at !== b.at ? a.at - b.at : (endpoints[a.owner] as string) < (endpoints[b.owner] as string) ? -1 : 1,
    )
    this.points = Uint32Array.from(placed, (p) => p.at)
    this.owners = Uint16Array.from(placed, (p) => p.owner)
  }

  get size(): number {
    return this.endpoints.length
  }

  /** The endpoint index owning ring position `position` (a uint32); -1 on an empty ring. */
  ownerAt(position: number): number {
    const points = this.points
    const n = points.length
    if (n === 0) return -1
    let lo = 0
    let hi = n
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((points[mid] as number) < position) lo = mid + 1
      else hi = mid
    }
    return this.owners[lo === n ? 0 : lo] as number
  }

  /** The endpoint URL owning a string key. */
  endpointOf(key: string): string | undefined {
    return this.endpoints[this.ownerAt(positionOfText(key))]
  }
}
