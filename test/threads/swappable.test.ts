import { describe, expect, it } from "vitest"
import { Swappable, ThreadedDecoder } from "../../src/threads/swappable.js"

/** A decoder that answers when told to, and records when it was closed. */
class Fake {
  closed = 0
  readonly waiting: Array<() => void> = []
  constructor(readonly name: string) {}
  decode(): Promise<string> {
    return new Promise((resolve) => this.waiting.push(() => resolve(this.name)))
  }
  decodeNow(): string {
    return this.name
  }
  close = async (): Promise<void> => {
    this.closed++
  }
  answerAll(): void {
    for (const answer of this.waiting.splice(0)) answer()
  }
}

const settled = () => new Promise((r) => setImmediate(r))

describe("Swappable", () => {
  it("closes a replaced decoder once the last body it holds is answered, not before", async () => {
    const a = new Fake("a")
    const b = new Fake("b")
    const s = new Swappable(a)
    const first = s.use((d) => d.decode())
    const second = s.use((d) => d.decode())
    s.swap(b)
    expect(s.use((d) => d.decodeNow())).toBe("b")
    await settled()
    expect(a.closed).toBe(0)
    a.waiting[0]?.()
    expect(await first).toBe("a")
    await settled()
    expect(a.closed).toBe(0)
    a.answerAll()
    expect(await second).toBe("a")
    await settled()
    expect({ a: a.closed, b: b.closed }).toEqual({ a: 1, b: 0 })
  })

  it("closes a replaced decoder that holds nothing at once; close() closes the one in use and those finishing", async () => {
    const a = new Fake("a")
    const b = new Fake("b")
    const c = new Fake("c")
    const s = new Swappable(a)
    s.swap(b)
    expect(a.closed).toBe(1)
    const held = s.use((d) => d.decode())
    s.swap(c)
    await s.close()
    expect({ a: a.closed, b: b.closed, c: c.closed }).toEqual({ a: 1, b: 1, c: 1 })
    b.answerAll()
    expect(await held).toBe("b")
    await settled()
    // Not closed a second time when its last body is answered after close().
    expect(b.closed).toBe(1)
  })

  it("a body whose decoding rejects still lets its decoder close", async () => {
    const a = new Fake("a")
    const s = new Swappable(a)
    const failed = s.use(() => Promise.reject(new Error("boom")))
    s.swap(new Fake("b"))
    await expect(failed).rejects.toThrow("boom")
    await settled()
    expect(a.closed).toBe(1)
  })
})

describe("ThreadedDecoder", () => {
  it("is made with the threads last asked for, and replaced only for another number", async () => {
    const made: Array<Fake> = []
    const make = (threads: number) => {
      const f = new Fake(String(threads))
      made.push(f)
      return f
    }
    const t = new ThreadedDecoder(2, make)
    // Asked before its receiver opened: nothing to replace, and it opens with what was asked.
    expect(t.want(3)).toBe(false)
    const s = t.open()
    expect({ threads: t.threads, decoder: s.value.name }).toEqual({ threads: 3, decoder: "3" })
    expect(t.want(3)).toBe(false)
    expect(t.want(0)).toBe(true)
    expect({ threads: t.threads, decoder: s.value.name }).toEqual({ threads: 0, decoder: "0" })
    await settled()
    expect(made.map((f) => [f.name, f.closed])).toEqual([
      ["3", 1],
      ["0", 0],
    ])
  })
})
