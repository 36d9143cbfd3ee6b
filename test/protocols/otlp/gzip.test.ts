import * as zlib from "node:zlib"
import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { OtlpDecodeError } from "../../../src/protocols/otlp/errors.js"
import { decompressGzip } from "../../../src/protocols/otlp/gzip.js"

const MB = 1024 * 1024

/** 1 GiB of zeros in about 1 MB of gzip: inflating it unbounded would take a gigabyte. */
const bomb = (): Buffer => {
  const chunk = zlib.gzipSync(Buffer.alloc(64 * MB), { level: 9 })
  return Buffer.concat(Array.from({ length: 16 }, () => chunk)) // concatenated members
}

describe("gzip request bodies", () => {
  it("inflates a body, including concatenated members", () => {
    const body = Buffer.from("hello, otlp")
    expect(decompressGzip(zlib.gzipSync(body), MB)).toEqual(Either.right(body))
    const two = Buffer.concat([zlib.gzipSync(body), zlib.gzipSync(body)])
    expect(Either.map(decompressGzip(two, MB), (b) => Buffer.from(b).toString())).toEqual(
      Either.right("hello, otlphello, otlp"),
    )
  })

  it("accepts exactly the limit and refuses one byte more (too_large, 413)", () => {
    const body = zlib.gzipSync(Buffer.alloc(1000, 7))
    expect(Either.map(decompressGzip(body, 1000), (b) => b.length)).toEqual(Either.right(1000))
    const over = decompressGzip(body, 999)
    expect(over).toEqual(
      Either.left(new OtlpDecodeError({ kind: "too_large", reason: "decompresses to more than 999 bytes" })),
    )
    if (Either.isLeft(over)) {
      expect(over.left.httpStatus).toBe(413)
      expect(over.left.message).toBe("body too large: decompresses to more than 999 bytes")
    }
  })

  it("stops a gzip bomb at the limit, quickly and without the memory", async () => {
    const body = bomb()
    expect(body.length).toBeLessThan(2 * MB)
    const before = process.memoryUsage().arrayBuffers
    const started = performance.now()
    const r = decompressGzip(body, 4 * MB)
    const elapsed = performance.now() - started
    expect(Either.isLeft(r) && r.left.kind).toBe("too_large")
    expect(elapsed).toBeLessThan(2_000)
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * MB)
  })

  it("rejects what is not gzip (bad_gzip, 400)", async () => {
    for (const body of [
      Buffer.from("not gzip at all"),
      Buffer.alloc(0),
      zlib.gzipSync(Buffer.from("x")).subarray(0, 12),
    ]) {
      const r = decompressGzip(body, MB)
      expect(Either.isLeft(r) && r.left.kind).toBe("bad_gzip")
      if (Either.isLeft(r)) expect(r.left.httpStatus).toBe(400)
    }
    const r = decompressGzip(Buffer.from("not gzip at all"), MB)
    expect(Either.isLeft(r) && r.left.message).toBe("invalid gzip body: incorrect header check")
  })

  it("refuses a nonsensical limit instead of throwing", () => {
    for (const limit of [0, -1, Number.NaN, 1.5]) {
      expect(Either.isLeft(decompressGzip(zlib.gzipSync(Buffer.from("x")), limit))).toBe(true)
    }
  })
})
