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
