import { afterAll, describe, expect, it } from "vitest"
import type { DecodeJob, DecodeResult } from "../../src/protocols/prw/decode-pool.js"
import { compressBody } from "../../src/protocols/prw/snappy.js"
import { WorkerPool } from "../../src/threads/pool.js"
import { UNBOUNDED } from "../../src/wire/bounds.js"

/** The built remote-write decoding thread (the test suite builds `dist/` first). */
const WORKER = new URL("../../dist/protocols/prw/decode-worker.js", import.meta.url)

const pool = new WorkerPool<DecodeJob, DecodeResult>(1, WORKER, "pool test", false, { timeoutMs: 5_000 })
afterAll(() => pool.close())

describe("WorkerPool", () => {
  it("a job that cannot be sent to a thread rejects with why, holds nothing, and the next job is answered", async () => {
    const unsendable = { body: new Uint8Array(0), maxDecompressedBytes: 1, bounds: UNBOUNDED, f: () => 1 }
    await expect(pool.run(unsendable as unknown as DecodeJob)).rejects.toThrow(/could not be cloned/)
    const outcome = await pool.run({
      body: compressBody(new Uint8Array(0)),
      maxDecompressedBytes: 1 << 20,
      bounds: UNBOUNDED,
      recycled: [],
    })
    expect(outcome._tag).toBe("Done")
    expect(outcome._tag === "Done" && "parts" in outcome.reply ? outcome.reply.parts.length : -1).toBe(0)
  })
})
