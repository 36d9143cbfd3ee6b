import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { InvalidUtf8, readUtf8, utf8Length, writeUtf8 } from "../../src/wire/utf8.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** Any UTF-16 string, lone surrogates included. */
const anyString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 50 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 50 }),
  fc.string({ unit: "grapheme-ascii", maxLength: 80 }),
)

describe("utf8", () => {
  it("writes what TextEncoder writes (lone surrogates as U+FFFD), with the length it announces", () => {
    fc.assert(
      fc.property(anyString, (text) => {
        const expected = encoder.encode(text)
        expect(utf8Length(text)).toBe(expected.length)
        const out = new Uint8Array(expected.length + 2)
        expect(writeUtf8(text, out, 1)).toBe(expected.length + 1)
        expect(Buffer.from(out.subarray(1, expected.length + 1)).equals(Buffer.from(expected))).toBe(true)
      }),
      { numRuns: 1_000 },
    )
  })

  it("reads what it writes, short and long, keeping a leading BOM", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), fc.boolean(), (text, bom) => {
        const value = bom ? `\ufeff${text}` : text
        const bytes = encoder.encode(`xy${value}`)
        expect(readUtf8(bytes, 2, bytes.length)).toBe(value)
      }),
      { numRuns: 1_000 },
    )
  })

  it("refuses what TextDecoder refuses", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        let expected: string | undefined
        try {
          expected = decoder.decode(bytes)
        } catch {
          expected = undefined
        }
        if (expected === undefined) expect(() => readUtf8(bytes, 0, bytes.length)).toThrow(InvalidUtf8)
        else expect(readUtf8(bytes, 0, bytes.length)).toBe(expected)
      }),
      { numRuns: 2_000 },
    )
  })
})
