import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { HashRing, positionOfText } from "../../src/export/ring.js"

const url = (n: number) => `http://10.0.0.${n}:8428/api/v1/write`
const keys = (n: number, prefix = "series") => Array.from({ length: n }, (_, i) => `${prefix}{i="${i}"}`)

/** A set of 1..8 distinct endpoint URLs. */
const endpoints = fc
  .uniqueArray(fc.integer({ min: 1, max: 250 }), { minLength: 1, maxLength: 8 })
  .map((ns) => ns.map(url))
const someKeys = fc.uniqueArray(fc.string({ maxLength: 30 }), { minLength: 1, maxLength: 200 })

describe("consistent-hash ring", () => {
  it("law: the owner of a key depends on the set of endpoints, not on their order", () => {
    fc.assert(
      fc.property(endpoints, someKeys, fc.integer(), (eps, ks, seed) => {
        const shuffled = [...eps].sort(
          (a, b) => positionOfText(`${seed}${a}`) - positionOfText(`${seed}${b}`),
        )
        const a = new HashRing(eps, 40)
        const b = new HashRing(shuffled, 40)
        for (const k of ks) expect(b.endpointOf(k)).toBe(a.endpointOf(k))
      }),
      { numRuns: 100 },
    )
  })

  it("law: adding an endpoint moves keys only onto it; removing one moves only its own keys", () => {
    fc.assert(
      fc.property(endpoints, fc.integer({ min: 1, max: 250 }), someKeys, (eps, extra, ks) => {
        fc.pre(!eps.includes(url(extra)))
        const before = new HashRing(eps, 40)
        const after = new HashRing([...eps, url(extra)], 40)
        for (const k of ks) {
          const was = before.endpointOf(k)
          const now = after.endpointOf(k)
          // Adding: a key either stays or goes to the new endpoint.
          if (now !== was) expect(now).toBe(url(extra))
          // Removing (after → before): only the removed endpoint's keys change owner.
          if (now !== url(extra)) expect(was).toBe(now)
        }
      }),
      { numRuns: 100 },
    )
  })

  it("spreads 10,000 series over 3 endpoints within ±25% of even, and a fourth takes about a quarter", () => {
    const three = new HashRing([url(1), url(2), url(3)], 160)
    const four = new HashRing([url(1), url(2), url(3), url(4)], 160)
    const counts = new Map<string, number>()
    let moved = 0
    for (const k of keys(10_000)) {
      const e = three.endpointOf(k) as string
      counts.set(e, (counts.get(e) ?? 0) + 1)
      if (four.endpointOf(k) !== e) moved++
    }
    expect(counts.size).toBe(3)
    for (const n of counts.values()) {
      expect(n).toBeGreaterThan((10_000 / 3) * 0.75)
      expect(n).toBeLessThan((10_000 / 3) * 1.25)
    }
    expect(moved / 10_000).toBeGreaterThan(0.15)
    expect(moved / 10_000).toBeLessThan(0.35)
  })

  it("is the same ring in every process: fixed keys have fixed owners", () => {
    const ring = new HashRing([url(1), url(2), url(3)], 160)
    // Pinned: a change of the hash or of the point layout would re-shard every deployment.
    expect(keys(6).map((k) => ring.endpointOf(k))).toMatchSnapshot()
  })

  it("an empty ring owns nothing", () => {
    expect(new HashRing([], 160).ownerAt(123)).toBe(-1)
  })
})
