import fc from "fast-check"
import { describe, expect, it, vi } from "vitest"
import { COLLECT_EVERY_MS, EXPANSION, MemoryGuard, RSS_MAX_AGE_MS } from "../../src/memory/guard.js"
import { budgetOf } from "../../src/memory/limit.js"

const MiB = 1024 * 1024
const LIMIT = 256 * MiB

/** A guard over a fake clock and a fake resident-memory reading. */
const guardWith = (rss: { value: number }, now: { value: number }, collects: Array<string> = []) =>
  new MemoryGuard(budgetOf(LIMIT), (kind) => collects.push(kind), {
    rss: () => rss.value,
    now: () => now.value,
  })

type Op =
  | { readonly _tag: "admit"; readonly bytes: number }
  | { readonly _tag: "release" }
  | { readonly _tag: "rss"; readonly value: number }
  | { readonly _tag: "tick"; readonly ms: number }

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ _tag: fc.constant("admit" as const), bytes: fc.integer({ min: 0, max: MiB }) }),
  fc.record({ _tag: fc.constant("release" as const) }),
  fc.record({ _tag: fc.constant("rss" as const), value: fc.integer({ min: 50 * MiB, max: 400 * MiB }) }),
  fc.record({ _tag: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 500 }) }),
)

describe("MemoryGuard", () => {
  it("law: in flight stays within the budget (past it only one request, admitted with nothing in flight), never admits while over the limit with requests in flight, and returns to 0 when all are released", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const rss = { value: 100 * MiB }
        const now = { value: 0 }
        const g = guardWith(rss, now)
        const budget = budgetOf(LIMIT)
        const admitted: Array<number> = []
        // The hysteresis the guard must follow: refusing from the refusal mark until under the resume mark.
        let refusing = false
        for (const o of ops) {
          if (o._tag === "admit") {
            const before = g.inFlight
            const reading = rss.value
            refusing = refusing ? reading >= budget.resumeAtBytes : reading >= budget.refuseAtBytes
            const ok = g.admit(o.bytes)
            expect(g.overLimit).toBe(refusing)
            if (ok) {
              admitted.push(o.bytes)
              if (before > 0) {
                expect(g.inFlight).toBeLessThanOrEqual(budget.inFlightBytes)
                expect(refusing).toBe(false)
              }
            } else {
              expect(before).toBeGreaterThan(0)
            }
          } else if (o._tag === "release") {
            const b = admitted.shift()
            if (b !== undefined) g.release(b)
          } else if (o._tag === "rss") {
            rss.value = o.value
            now.value += RSS_MAX_AGE_MS // the next admit reads it
          } else now.value += o.ms
        }
        for (const b of admitted) g.release(b)
        expect(g.inFlight).toBe(0)
      }),
    )
  })

  it("refuses over the refusal mark until under the resume mark (hysteresis), and never with nothing in flight", () => {
    const rss = { value: 100 * MiB }
    const now = { value: 0 }
    const g = guardWith(rss, now)
    const b = budgetOf(LIMIT)
    expect(g.admit(1000)).toBe(true)
    rss.value = b.refuseAtBytes
    now.value += RSS_MAX_AGE_MS
    expect(g.admit(1000)).toBe(false)
    // Between the marks: still refusing.
    rss.value = b.resumeAtBytes + 1
    now.value += RSS_MAX_AGE_MS
    expect(g.admit(1000)).toBe(false)
    expect(g.overLimit).toBe(true)
    // Nothing in flight: one request goes through whatever the reading.
    g.release(1000)
    expect(g.admit(1000)).toBe(true)
    expect(g.admit(1000)).toBe(false)
    rss.value = b.resumeAtBytes - 1
    now.value += RSS_MAX_AGE_MS
    expect(g.admit(1000)).toBe(true)
    expect(g.overLimit).toBe(false)
  })

  it("charges EXPANSION times the wire bytes against the in-flight budget", () => {
    const g = guardWith({ value: 100 * MiB }, { value: 0 })
    const b = budgetOf(LIMIT)
    const per = Math.floor(b.inFlightBytes / EXPANSION / 4)
    for (let i = 0; i < 4; i++) expect(g.admit(per)).toBe(true)
    expect(g.inFlight).toBe(4 * per * EXPANSION)
    expect(g.admit(per)).toBe(false)
  })

  it("asks for garbage collection near the limit, at most once per COLLECT_EVERY_MS: minor, then major over the refusal mark", () => {
    const rss = { value: 100 * MiB }
    const now = { value: 0 }
    const collects: Array<string> = []
    const g = guardWith(rss, now, collects)
    const b = budgetOf(LIMIT)
    g.admit(1)
    expect(collects).toEqual([])
    rss.value = b.collectAtBytes
    now.value += RSS_MAX_AGE_MS
    g.admit(1)
    g.admit(1)
    expect(collects).toEqual(["minor"])
    rss.value = b.refuseAtBytes
    now.value += COLLECT_EVERY_MS
    g.admit(1)
    expect(collects).toEqual(["minor", "major"])
  })

  it("asks for collections on its own while no request arrives (an exporter draining), only past the collection mark", () => {
    vi.useFakeTimers()
    try {
      const budget = budgetOf(LIMIT)
      const rss = { value: budget.collectAtBytes - 1 }
      const now = { value: 0 }
      const collects: Array<string> = []
      const stop = guardWith(rss, now, collects).watch()
      const tick = () => {
        now.value += COLLECT_EVERY_MS
        vi.advanceTimersByTime(COLLECT_EVERY_MS)
      }
      tick()
      expect(collects).toEqual([])
      rss.value = budget.collectAtBytes
      tick()
      expect(collects).toEqual(["minor"])
      rss.value = budget.refuseAtBytes
      tick()
      expect(collects).toEqual(["minor", "major"])
      stop()
      tick()
      expect(collects).toHaveLength(2)
    } finally {
      vi.useRealTimers()
    }
  })
})
