import { describe, expect, it } from "vitest"
import { ExportBuffer } from "../../src/export/buffer.js"

const item = (datapoints: number) => ({ payload: datapoints, datapoints, bytes: datapoints * 10, at: 0 })

describe("ExportBuffer: waiting for data", () => {
  it("an idle exporter's abandoned waits do not pile up: a push after a long idle wakes everyone and does not throw", async () => {
    // The exporter used to race whenNotEmpty() against a 50 ms timer; each lost race left its waiter
    // wrapped in the next one, and after ~15 min idle the push that woke the chain overflowed the
    // stack (a 500 for a request whose data was forwarded). 30 min of 50 ms polls is 36,000 waits.
    const buffer = new ExportBuffer<number>(1_000, 1_000_000)
    const waits: Array<Promise<void>> = []
    for (let i = 0; i < 200_000; i++) waits.push(buffer.whenNotEmpty())
    expect(() => buffer.push(item(1))).not.toThrow()
    await Promise.all(waits)
    expect(buffer.length).toBe(1)
  })

  it("every wait until the next push shares one promise; a push ends it and the next wait is a new one", async () => {
    const buffer = new ExportBuffer<number>(1_000, 1_000_000)
    const first = buffer.nextPush()
    expect(buffer.nextPush()).toBe(first)
    expect(buffer.whenNotEmpty()).toBe(first)
    buffer.push(item(2))
    await first
    // Not empty: resolves at once; the next push is a new signal.
    await buffer.whenNotEmpty()
    const second = buffer.nextPush()
    expect(second).not.toBe(first)
    let woke = false
    void second.then(() => {
      woke = true
    })
    await Promise.resolve()
    expect(woke).toBe(false)
    buffer.push(item(3))
    await second
    expect(woke).toBe(true)
  })
})

describe("ExportBuffer: memory", () => {
  it("lets go of a request once it is taken: the slots of taken items hold nothing of theirs", () => {
    // Taken items used to stay referenced until 1,024 of them had been taken: at saturation, that
    // was up to 1,024 decompressed remote-write bodies (300 MB) kept alive after they were sent.
    const buffer = new ExportBuffer<{ readonly body: Uint8Array }>(1_000_000, 1 << 30)
    const payloads = Array.from({ length: 50 }, () => ({ body: new Uint8Array(16) }))
    for (const payload of payloads) buffer.push({ payload, datapoints: 10, bytes: 16, at: 0 })
    const taken = buffer.take(200)
    expect(taken.map((t) => t.payload)).toEqual(payloads.slice(0, 20))
    // What the buffer still references (its slots, read from outside for this check only).
    const slots = (buffer as unknown as { items: ReadonlyArray<{ payload: unknown }> }).items
    const held = new Set(slots.map((s) => s.payload))
    for (const p of payloads.slice(0, 20)) expect(held.has(p)).toBe(false)
    for (const p of payloads.slice(20)) expect(held.has(p)).toBe(true)
    expect(buffer.length).toBe(30)
    expect(buffer.take(1_000).map((t) => t.payload)).toEqual(payloads.slice(20))
  })
})
