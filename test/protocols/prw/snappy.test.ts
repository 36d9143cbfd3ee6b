import { Either } from "effect"
import fc from "fast-check"
import { compressSync, uncompressSync } from "snappy"
import { describe, expect, it } from "vitest"
import type { PrwDecodeError } from "../../../src/protocols/prw/errors.js"
import {
  blockParts,
  compressBody,
  decompressBody,
  snappyDecodedLength,
} from "../../../src/protocols/prw/snappy.js"
import { joinBytes } from "../../../src/wire/bytes.js"

/** The parts of `blockParts` in one buffer, as they arrive at the other end. */
const concatBlocks = (blocks: ReadonlyArray<Uint8Array>): Uint8Array => joinBytes(blockParts(blocks))

const MiB = 1 << 20
const GiB = 1 << 30

const mustFail = (body: ArrayLike<number>, max = 64 * MiB): PrwDecodeError => {
  const result = decompressBody(Uint8Array.from(body), max)
  if (Either.isRight(result)) throw new Error("decompressed, expected an error")
  return result.left
}

/** The little-endian varint snappy puts in front of a block. */
const header = (length: number): Array<number> => {
  const out: Array<number> = []
  for (let v = length; ; v = Math.floor(v / 128)) {
    if (v < 0x80) {
      out.push(v)
      return out
    }
    out.push((v % 128) | 0x80)
  }
}

describe("compressBody / decompressBody", () => {
  it("round-trips any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2_000 }), (bytes) => {
        const body = compressBody(bytes)
        expect(snappyDecodedLength(body)).toBe(bytes.length)
        const result = decompressBody(body, bytes.length)
        expect(Either.isRight(result) && Buffer.from(result.right).equals(Buffer.from(bytes))).toBe(true)
      }),
      { numRuns: 300 },
    )
  })

  it("refuses a body that announces 1 GiB as too_large, from its header alone", () => {
    // Five header bytes and a little garbage: decompressing would fail (or allocate 1 GiB), so the
    // distinct `too_large` shows the bound was checked first.
    const bomb = [...header(GiB), 0x00, 0x01, 0x02]
    expect(bomb.slice(0, 5)).toEqual([0x80, 0x80, 0x80, 0x80, 0x04])
    const before = process.memoryUsage().arrayBuffers
    const error = mustFail(bomb, 32 * MiB)
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * MiB)
    expect(error.kind).toBe("too_large")
    expect(error.message).toBe(
      "snappy: uncompressed size 1073741824 bytes exceeds the limit of 33554432 bytes",
    )
  })

  it("accepts a block exactly at the bound and refuses one byte over", () => {
    const bytes = new Uint8Array(1_000).fill(7)
    const body = compressBody(bytes)
    expect(Either.isRight(decompressBody(body, 1_000))).toBe(true)
    expect(mustFail(body, 999).kind).toBe("too_large")
  })

  it("refuses the largest header snappy allows (2^32 - 1) when the bound is lower", () => {
    expect(mustFail([0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]).kind).toBe("too_large")
  })

  it.each<[string, ReadonlyArray<number>, string]>([
    ["an empty body", [], "snappy: empty body"],
    ["a header that never ends", [0x80, 0x80], "snappy: corrupt input (invalid length header)"],
    [
      "a header longer than 5 bytes",
      [0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
      "snappy: corrupt input (invalid length header)",
    ],
    ["a header past 2^32", [0xff, 0xff, 0xff, 0xff, 0x1f], "snappy: corrupt input (invalid length header)"],
    [
      "the framed stream format",
      [0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59],
      "snappy: framed snappy stream; remote write sends one snappy block",
    ],
  ])("refuses %s as bad_snappy", (_, body, message) => {
    const error = mustFail(body)
    expect(error.kind).toBe("bad_snappy")
    expect(error.message).toBe(message)
  })

  it("refuses a block whose content disagrees with its header, or is garbage", () => {
    const body = Array.from(compressSync(Buffer.from("hello hello hello hello")))
    const shorter = [...header(10), ...body.slice(1)]
    expect(mustFail(shorter).kind).toBe("bad_snappy")
    const error = mustFail([0x05, 0x01, 0x02])
    expect(error.kind).toBe("bad_snappy")
    expect(error.message).toMatch(/^snappy: corrupt input/)
  })

  it("never throws on arbitrary bodies", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 4_096 }), (body, max) => {
        const result = decompressBody(body, max)
        if (Either.isLeft(result)) {
          expect(["bad_snappy", "too_large"]).toContain(result.left.kind)
          if (result.left.kind === "too_large") expect(snappyDecodedLength(body)).toBeGreaterThan(max)
        } else {
          expect(result.right.length).toBe(snappyDecodedLength(body))
        }
      }),
      { numRuns: 2_000 },
    )
  })
})

describe("decompressBody: the block decoder", () => {
  /** A valid block of bytes that compress into copies and literals, then mutated. */
  const mutated = fc
    .tuple(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 80 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 120 }),
      fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 }), fc.constantFrom("set", "delete", "insert")), {
        maxLength: 3,
      }),
    )
    .map(([pieces, picks, edits]) => {
      const block = Array.from(
        compressSync(Buffer.concat(picks.map((p) => pieces[p % pieces.length] as Uint8Array))),
      )
      for (const [at, byte, kind] of edits) {
        const k = at % (block.length + 1)
        if (kind === "set" && k < block.length) block[k] = byte
        else if (kind === "delete") block.splice(k, 1)
        else if (kind === "insert") block.splice(k, 0, byte)
      }
      return Uint8Array.from(block)
    })

  it("law: agrees with the native snappy library on valid and mutated blocks: the same bytes, or both refuse", () => {
    fc.assert(
      fc.property(mutated, (body) => {
        let native: Buffer | undefined
        try {
          native = uncompressSync(body, { asBuffer: true }) as Buffer
        } catch {
          native = undefined
        }
        const ours = decompressBody(body, 1 << 20)
        if (native === undefined) expect(Either.isLeft(ours)).toBe(true)
        else expect(Either.isRight(ours) && Buffer.from(ours.right).equals(native)).toBe(true)
      }),
      { numRuns: 3_000 },
    )
  })

  it("refuses a copy that reaches one byte before the start (what the native library refuses too)", () => {
    // Five bytes: a literal "a", then a copy of four bytes from two bytes back (only one was decoded).
    const body = Uint8Array.from([5, 0x00, 0x61, 0x0e, 0x02, 0x00])
    expect(() => uncompressSync(body)).toThrow()
    expect(mustFail(body).message).toBe("snappy: corrupt input (copy from before the start)")
    // From one byte back it is a run: "aaaaa".
    const run = Either.getOrThrow(decompressBody(Uint8Array.from([5, 0x00, 0x61, 0x0e, 0x01, 0x00]), 5))
    expect(Buffer.from(run).toString()).toBe("aaaaa")
  })

  it("decodes into the buffer it is given when it is long enough (a view of it), else into its own", () => {
    const bytes = Buffer.from("abcabcabcabcabcabcabc-0123456789")
    const body = compressBody(bytes)
    const scratch = new Uint8Array(64)
    const into = Either.getOrThrow(decompressBody(body, 1_000, scratch))
    expect(into.buffer).toBe(scratch.buffer)
    expect(Buffer.from(into).equals(bytes)).toBe(true)
    const own = Either.getOrThrow(decompressBody(body, 1_000, new Uint8Array(4)))
    expect(Buffer.from(own).equals(bytes)).toBe(true)
  })
})

describe("blockParts", () => {
  /** Bytes that compress into copies as well as literals: repeats of a few random pieces. */
  const repetitive = fc
    .tuple(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 200 }),
    )
    .map(([pieces, picks]) => Buffer.concat(picks.map((p) => pieces[p % pieces.length] as Uint8Array)))

  it("law: joined blocks decompress to the blocks' contents one after the other (copies never reach into another block)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(repetitive, fc.uint8Array({ maxLength: 3_000 })), { minLength: 1, maxLength: 8 }),
        (contents) => {
          const joined = concatBlocks(contents.map(compressBody))
          const expected = Buffer.concat(contents)
          expect(snappyDecodedLength(joined)).toBe(expected.length)
          const result = decompressBody(joined, expected.length)
          expect(Either.isRight(result) && Buffer.from(result.right).equals(expected)).toBe(true)
        },
      ),
      { numRuns: 300 },
    )
  })

  it("joins blocks whose lengths need a longer header than any of them (127 + 1 bytes: one header byte each, two for the sum)", () => {
    const a = Buffer.alloc(127, 1)
    const b = Buffer.alloc(1, 2)
    const joined = concatBlocks([compressBody(a), compressBody(b)])
    expect(joined[0]).toBe(0x80)
    expect(joined[1]).toBe(0x01)
    const result = decompressBody(joined, 128)
    expect(Either.isRight(result) && Buffer.from(result.right).equals(Buffer.concat([a, b]))).toBe(true)
  })

  it("gives a single block back as it is", () => {
    const block = compressBody(Buffer.from("one"))
    expect(concatBlocks([block])).toBe(block)
  })
})
