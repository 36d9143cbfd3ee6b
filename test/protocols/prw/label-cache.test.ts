import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { LabelCache } from "../../../src/protocols/prw/label-cache.js"
import type { Label } from "../../../src/protocols/prw/types.js"

describe("LabelCache", () => {
  it("returns a label only for the exact bytes it was stored under, even when every key collides", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 12 }), { maxLength: 40 }), (keys) => {
        const cache = new LabelCache(1, 8) // two slots: constant collisions
        const stored = new Map<string, Label>()
        for (const key of keys) {
          const id = Buffer.from(key).toString("hex")
          const hit = cache.get(key, 0, key.length)
          if (hit !== undefined) expect(hit).toBe(stored.get(id))
          else {
            const label = { name: id, value: "" }
            cache.set(key, 0, key.length, label)
            if (key.length <= 8) stored.set(id, label)
          }
        }
      }),
      { numRuns: 500 },
    )
  })

  it("reads keys at an offset and does not cache empty or oversized keys", () => {
    const cache = new LabelCache(4, 4)
    const bytes = Uint8Array.from([9, 1, 2, 3, 9])
    const label = { name: "a", value: "b" }
    expect(cache.get(bytes, 1, 4)).toBeUndefined()
    cache.set(bytes, 1, 4, label)
    expect(cache.get(Uint8Array.from([1, 2, 3]), 0, 3)).toBe(label)
    expect(cache.get(bytes, 0, 5)).toBeUndefined()
    cache.set(bytes, 0, 5, label)
    expect(cache.get(bytes, 0, 5)).toBeUndefined()
    expect(cache.get(bytes, 2, 2)).toBeUndefined()
  })
})
