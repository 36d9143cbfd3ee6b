import fc from "fast-check"
import { afterEach, describe, expect, it } from "vitest"
import { SeriesSet } from "../../src/limits/series-set.js"
import {
  BloomSet,
  DEFAULT_TRACKER_SETTINGS,
  HybridSet,
  HyperLogLog,
  newTracker,
  setTrackerSettings,
} from "../../src/limits/tracker.js"
import { run, s, versionOf } from "./engine.js"

/** A deterministic stream of well-spread fingerprints. */
const fingerprints = (n: number, seed = 1): Array<[number, number]> => {
  let x = seed >>> 0 || 1
  const next = () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
  return Array.from({ length: n }, () => [next() || 1, next()])
}

afterEach(() => setTrackerSettings(DEFAULT_TRACKER_SETTINGS))

describe("bloom tracking", () => {
  it("law: a series added is always known (never the reverse of a false positive)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 2 ** 32 - 1 }), fc.nat(2 ** 32 - 1))),
        (fps) => {
          const b = BloomSet.sized(100, 0.01)
          for (const [hi, lo] of fps) b.addHash(hi, lo)
          for (const [hi, lo] of fps) expect(b.hasHash(hi, lo)).toBe(true)
          expect(b.size).toBeLessThanOrEqual(new Set(fps.map(([h, l]) => `${h},${l}`)).size)
        },
      ),
    )
  })

  it("takes new series for known ones at about the configured rate, at the expected item count", () => {
    const b = BloomSet.sized(20_000, 0.01)
    for (const [hi, lo] of fingerprints(20_000, 7)) b.addHash(hi, lo)
    let fp = 0
    const probes = fingerprints(20_000, 99)
    for (const [hi, lo] of probes) if (b.hasHash(hi, lo)) fp++
    expect(fp / probes.length).toBeLessThan(0.02)
    expect(b.size).toBeGreaterThan(19_700)
    // m = -n ln p / ln² 2: 9.6 bits per item at 1%.
    expect(b.byteLength).toBeLessThan(20_000 * 1.25)
  })
})

describe("hybrid tracking", () => {
  it("is exact up to its threshold, then estimates within a few percent", () => {
    const h = new HybridSet(1_000)
    const fps = fingerprints(50_000, 3)
    for (const [hi, lo] of fps.slice(0, 1_000)) h.addHash(hi, lo)
    expect(h.size).toBe(1_000)
    for (const [hi, lo] of fps.slice(1_000)) if (!h.hasHash(hi, lo)) h.addHash(hi, lo)
    expect(Math.abs(h.size - 50_000) / 50_000).toBeLessThan(0.03)
  })

  it("at its limit, admits new series by hash so that the estimate stays at the limit", () => {
    setTrackerSettings({ ...DEFAULT_TRACKER_SETTINGS, mode: "hybrid", hllThreshold: 100 })
    const v = versionOf("rules:\n  - name: r\n    max_cardinality: 2000\n    action: drop\n")
    const entries = Array.from({ length: 10_000 }, (_, i) => s(i))
    const first = run(v, 1_700_000_000_000, entries)
    // While the estimate grows, the share admitted shrinks: the first pass lets more through than
    // the limit (series admitted before the estimate reached it)...
    expect(first.pass.reduce((a, b) => a + b, 0)).toBeGreaterThan(2_000)
    // ...and once all series have been seen, the same series pass every time: about the limit.
    const again = run(v, 1_700_000_000_001, entries)
    const passed = again.pass.reduce((a, b) => a + b, 0)
    expect(Math.abs(passed - 2_000) / 2_000).toBeLessThan(0.1)
    const third = run(v, 1_700_000_000_002, entries)
    expect(third.pass).toEqual(again.pass)
    // Those that pass are a subset of what passed before: a series is admitted or refused by its hash.
    expect(again.pass.every((p, i) => p === 0 || first.pass[i] === 1)).toBe(true)
  })

  it("HyperLogLog estimates within 3% from 1,000 to 200,000 items", () => {
    for (const n of [1_000, 20_000, 200_000]) {
      const h = new HyperLogLog()
      for (const [hi, lo] of fingerprints(n, n)) h.add(hi, lo)
      expect(Math.abs(h.estimate() - n) / n).toBeLessThan(0.03)
    }
  })
})

describe("newTracker", () => {
  it("makes the tracker of the mode in force; exact by default", () => {
    expect(newTracker()).toBeInstanceOf(SeriesSet)
    setTrackerSettings({ ...DEFAULT_TRACKER_SETTINGS, mode: "bloom" })
    expect(newTracker()).toBeInstanceOf(BloomSet)
    setTrackerSettings({ ...DEFAULT_TRACKER_SETTINGS, mode: "hybrid" })
    expect(newTracker()).toBeInstanceOf(HybridSet)
  })
})
