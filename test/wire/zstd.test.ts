import { spawnSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import { decompressZstd } from "../../src/wire/zstd.js"

const zstd = (input: Uint8Array, args: ReadonlyArray<string> = []): Buffer => {
  const r = spawnSync("zstd", ["-q", "-c", ...args], { input, maxBuffer: 64 * 1024 * 1024 })
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr?.toString()}`)
  return r.stdout
}

const text = (n: number) => new TextEncoder().encode('metric_name{job="x"} 1\n'.repeat(n))

describe("decompressZstd", () => {
  it("decompresses one frame, and several frames one after the other (with a skippable frame)", () => {
    const a = text(1000)
    const b = text(7)
    const skippable = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9])
    expect(decompressZstd(zstd(a), 1 << 20)).toEqual({ ok: a })
    const both = Buffer.concat([zstd(a), skippable, zstd(b, ["--no-check"])])
    const out = decompressZstd(both, 1 << 20)
    expect("ok" in out && Buffer.from(out.ok).equals(Buffer.concat([a, b]))).toBe(true)
  })

  it("stops at the bound: exactly the bound passes, one byte more does not", () => {
    const body = zstd(new Uint8Array(300_000))
    expect("ok" in decompressZstd(body, 300_000)).toBe(true)
    expect(decompressZstd(body, 299_999)).toEqual({
      error: { kind: "too_large", reason: "decompresses to more than 299999 bytes" },
    })
  })

  it("refuses a frame that declares more than the bound, before decoding", () => {
    const body = zstd(new Uint8Array(1000), ["--stream-size=1000"])
    expect(decompressZstd(body, 999)).toMatchObject({ error: { kind: "too_large" } })
  })

  it("refuses a window larger than the bound and 8 MiB, before allocating it", () => {
    // Frame header: magic, flags 0 (no content size, not single segment), window descriptor 2^31.
    const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, (31 - 10) << 3, 0x01, 0x00, 0x00])
    expect(decompressZstd(header, 1 << 20)).toMatchObject({
      error: { kind: "too_large", reason: expect.stringContaining("window") },
    })
  })

  it("refuses what is not zstd, or is cut short, as corrupt", () => {
    expect(decompressZstd(new TextEncoder().encode("not zstd at all"), 1000)).toMatchObject({
      error: { kind: "corrupt" },
    })
    expect(decompressZstd(new Uint8Array(0), 1000)).toMatchObject({ error: { kind: "corrupt" } })
    const full = zstd(text(500))
    for (const cut of [5, 12, full.length - 1]) {
      expect(decompressZstd(full.subarray(0, cut), 1 << 20)).toMatchObject({ error: { kind: "corrupt" } })
    }
    const flipped = Buffer.from(full)
    flipped.writeUInt8((flipped[flipped.length >> 1] ?? 0) ^ 0xff, flipped.length >> 1)
    const r = decompressZstd(flipped, 1 << 20)
    // A flipped byte either fails to decode or decodes to other bytes; it never throws.
    expect("ok" in r ? Buffer.from(r.ok).equals(Buffer.from(text(500))) : r.error.kind).not.toBe(true)
  })
})
