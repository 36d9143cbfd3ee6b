import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { fingerprint, fingerprintSeries } from "../../src/limits/fingerprint.js"
import { seriesKey } from "../../src/limits/match.js"
import { MAX_LOAD, MIN_CAPACITY, SeriesSet } from "../../src/limits/series-set.js"

type Op =
  | { readonly op: "add" | "has"; readonly key: string }
  | { readonly op: "clear" }
  | { readonly op: "clone" }

/** Keys from a small pool (so adds repeat and lookups hit) and arbitrary ones. */
const key = fc.oneof(
  fc.constantFrom("a", "b", "m\u0000id\u0000x", "", "é", "\u{1F600}"),
  fc.string({ maxLength: 12 }),
)
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: key.map((k) => ({ op: "add" as const, key: k })) },
  { weight: 6, arbitrary: key.map((k) => ({ op: "has" as const, key: k })) },
  { weight: 1, arbitrary: fc.constant({ op: "clear" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "clone" as const }) },
)

describe("SeriesSet", () => {
  it("model: behaves like a Set<string> of keys under add, has, clear and clone", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        let set = new SeriesSet()
        let model = new Set<string>()
        for (const o of ops) {
          if (o.op === "add") expect(set.add(o.key)).toBe(!model.has(o.key))
          if (o.op === "add") model.add(o.key)
          if (o.op === "has") expect(set.has(o.key)).toBe(model.has(o.key))
          if (o.op === "clear") {
            set.clear()
            model.clear()
          }
          if (o.op === "clone") {
            // The copy is independent: the original is thrown away and must not matter.
            const copy = set.clone()
            expect(copy.equals(set)).toBe(true)
            set.add("only-in-the-old-one")
            set = copy
            model = new Set(model)
          }
          expect(set.size).toBe(model.size)
        }
        for (const k of model) expect(set.has(k)).toBe(true)
      }),
    )
  })

  it("grows past many keys and keeps every one (no collision among 200k series-like keys)", () => {
    const set = new SeriesSet()
    const n = 200_000
    for (let i = 0; i < n; i++) {
      if (!set.add(`http_requests_total\u0000instance\u0000host-${i}:9100`)) expect.fail(`collision at ${i}`)
    }
    expect(set.size).toBe(n)
    for (let i = 0; i < n; i++) {
      if (!set.has(`http_requests_total\u0000instance\u0000host-${i}:9100`)) expect.fail(`lost key ${i}`)
    }
    expect(set.has("http_requests_total\u0000instance\u0000host-200000:9100")).toBe(false)
  })

  it("memory: between 50% and 75% full once grown, so at most 16 bytes per series", () => {
    const set = new SeriesSet()
    for (let i = 0; i < 100_000; i++) {
      set.add(`k${i}`)
      if (set.capacity > MIN_CAPACITY) {
        const load = set.size / set.capacity
        if (load < 0.5 - 1 / set.capacity || load > MAX_LOAD) expect.fail(`load ${load} at ${set.size}`)
      }
    }
    expect(set.byteLength / set.size).toBeLessThanOrEqual(16)
    expect(set.byteLength / set.size).toBeGreaterThan(10)
  })

  it("clear keeps a well-used table and shrinks one the last window used less than a quarter of", () => {
    const set = new SeriesSet()
    for (let i = 0; i < 1000; i++) set.add(`k${i}`)
    const big = set.capacity
    set.clear()
    expect(set.capacity).toBe(big)
    expect(set.size).toBe(0)
    expect(set.has("k1")).toBe(false)
    for (let i = 0; i < 10; i++) set.add(`k${i}`)
    set.clear()
    expect(set.capacity).toBe(20)
    set.clear()
    expect(set.capacity).toBe(MIN_CAPACITY)
  })

  it("fingerprint is stable across processes and versions (sample relies on it), never (0, 0)", () => {
    const fp = new Uint32Array(2)
    fingerprint("", fp)
    expect([...fp]).toEqual([451841411, 1217125560])
    fingerprint("up\u0000instance\u0000a", fp)
    expect([...fp]).toEqual([305765263, 455486866])
    fc.assert(
      fc.property(fc.string(), (k) => {
        fingerprint(k, fp)
        expect(fp[0] !== 0 || fp[1] !== 0).toBe(true)
      }),
    )
  })

  it("fingerprintSeries(name, labels) is the fingerprint of seriesKey(name, labels), without building it", () => {
    const text = fc.string({ unit: fc.constantFrom("a", "b", "\u0000", "é", "\u{1F600}", "") })
    const a = new Uint32Array(2)
    const b = new Uint32Array(2)
    fc.assert(
      fc.property(text, fc.array(fc.tuple(text, text)), (name, pairs) => {
        const labels = pairs.flat()
        fingerprintSeries(name, labels, a)
        fingerprint(seriesKey(name, labels), b)
        expect([...a]).toEqual([...b])
      }),
    )
  })

  it("fingerprint halves are well spread (the high half picks slots and decides sample)", () => {
    const fp = new Uint32Array(2)
    const buckets = new Array<number>(16).fill(0)
    const n = 160_000
    for (let i = 0; i < n; i++) {
      fingerprint(`m\u0000id\u0000${i}`, fp)
      const b = Math.floor(((fp[0] as number) / 2 ** 32) * 16)
      buckets[b] = (buckets[b] as number) + 1
    }
    for (const b of buckets) expect(Math.abs(b - n / 16)).toBeLessThan(n / 16 / 10)
  })
})
