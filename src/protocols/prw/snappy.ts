/**
 * The snappy block format of a remote-write HTTP body (`Content-Encoding: snappy`: one raw block,
 * not the framed stream format).
 *
 * @module
 */

import * as Either from "effect/Either"
import { compressSync, uncompressSync } from "snappy"
import { PrwDecodeError } from "./errors.js"

/** The stream identifier chunk that starts the framed format, which remote write does not use. */
const FRAMED_MAGIC = [0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59] as const

/**
 * The uncompressed length a snappy block announces: the little-endian varint at its start (at most
 * 5 bytes, below 2^32). `undefined` when the header is missing or malformed.
 */
export const snappyDecodedLength = (block: Uint8Array): number | undefined => {
  let value = 0
  let scale = 1
  for (let i = 0; i < 5 && i < block.length; i++) {
    const byte = block[i] as number
    value += (byte & 0x7f) * scale
    if (byte < 0x80) return value <= 0xffffffff ? value : undefined
    scale *= 128
  }
  return undefined
}

const isFramed = (body: Uint8Array): boolean =>
  body.length >= FRAMED_MAGIC.length && FRAMED_MAGIC.every((byte, i) => body[i] === byte)

/**
 * Decompresses a remote-write body. The announced length is checked against
 * `maxDecompressedBytes` before anything is allocated, so a small body that claims gigabytes is
 * refused (`too_large`, answer 413) at the cost of reading five bytes; anything that is not a
 * valid block, including one whose content disagrees with its header, is `bad_snappy`.
 *
 * Decoded here rather than by the native library: into `into` when it is long enough (a thread's
 * scratch buffer, reused from one body to the next: nothing is allocated per body), else into a
 * buffer of its own; and measured faster than the native call, whose fresh external buffer per
 * body made the decoding threads' garbage (docs/performance.md §2).
 */
export const decompressBody = (
  body: Uint8Array,
  maxDecompressedBytes: number,
  into?: Uint8Array,
): Either.Either<Uint8Array, PrwDecodeError> => {
  if (isFramed(body)) {
    return Either.left(
      new PrwDecodeError({
        kind: "bad_snappy",
        reason: "framed snappy stream; remote write sends one snappy block",
      }),
    )
  }
  const length = snappyDecodedLength(body)
  if (length === undefined) {
    return Either.left(
      new PrwDecodeError({
        kind: "bad_snappy",
        reason: body.length === 0 ? "empty body" : "corrupt input (invalid length header)",
      }),
    )
  }
  if (length > maxDecompressedBytes) {
    return Either.left(
      new PrwDecodeError({
        kind: "too_large",
        reason: `uncompressed size ${length} bytes exceeds the limit of ${maxDecompressedBytes} bytes`,
      }),
    )
  }
  const out = into !== undefined && into.length >= length ? into : new Uint8Array(length)
  const bad = decodeBlock(body, out, length)
  if (bad !== undefined)
    return Either.left(new PrwDecodeError({ kind: "bad_snappy", reason: `corrupt input (${bad})` }))
  return Either.right(out.length === length ? out : out.subarray(0, length))
}

/** The bytes a varint length header of a valid block takes. */
const headerBytes = (block: Uint8Array): number => {
  let i = 0
  while (((block[i] as number) & 0x80) !== 0) i++
  return i + 1
}

/**
 * Decodes the elements of `src` (after its length header) into `out[0, length)`: literals copied
 * from the input, copies from what was decoded before them. Returns why it is not a valid block
 * (a literal or a copy past either end, a copy from before the start, a length that disagrees
 * with the header), or undefined.
 */
const decodeBlock = (src: Uint8Array, out: Uint8Array, length: number): string | undefined => {
  const end = src.length
  let i = headerBytes(src)
  let o = 0
  while (i < end) {
    const tag = src[i++] as number
    const kind = tag & 3
    if (kind === 0) {
      let len = tag >>> 2
      if (len >= 60) {
        const extra = len - 59
        if (i + extra > end) return "truncated literal length"
        len = 0
        for (let k = 0; k < extra; k++) len += (src[i + k] as number) * 2 ** (8 * k)
        i += extra
      }
      len += 1
      if (len > end - i) return "literal past the end of the input"
      if (len > length - o) return "literal past the announced length"
      if (len < 32) for (let k = 0; k < len; k++) out[o + k] = src[i + k] as number
      else out.set(src.subarray(i, i + len), o)
      i += len
      o += len
      continue
    }
    let len: number
    let offset: number
    if (kind === 1) {
      if (i >= end) return "truncated copy"
      len = 4 + ((tag >>> 2) & 7)
      offset = ((tag >>> 5) << 8) | (src[i++] as number)
    } else if (kind === 2) {
      if (i + 2 > end) return "truncated copy"
      len = 1 + (tag >>> 2)
      offset = (src[i] as number) | ((src[i + 1] as number) << 8)
      i += 2
    } else {
      if (i + 4 > end) return "truncated copy"
      len = 1 + (tag >>> 2)
      offset =
        ((src[i] as number) | ((src[i + 1] as number) << 8) | ((src[i + 2] as number) << 16)) +
        (src[i + 3] as number) * 2 ** 24
      i += 4
    }
    if (offset === 0 || offset > o) return "copy from before the start"
    if (len > length - o) return "copy past the announced length"
    if (offset >= len && len >= 32) out.copyWithin(o, o - offset, o - offset + len)
    else for (let k = 0; k < len; k++) out[o + k] = out[o - offset + k] as number
    o += len
  }
  return o === length ? undefined : "shorter than the announced length"
}

/** Compresses an encoded `WriteRequest` into the snappy block a remote-write body carries. */
export const compressBody = (bytes: Uint8Array): Uint8Array => compressSync(bytes)

/**
 * Valid snappy blocks (each decompressed successfully before) as the parts of one block that
 * decompresses to their contents one after the other, without decompressing them: a block is its
 * length header and a run of elements whose copies reach back at most into what the same block
 * produced, so the runs of elements can follow one another under one header giving the sum of the
 * lengths. Encoded `WriteRequest`s concatenate into one `WriteRequest` (their series and metadata
 * in order), so buffered remote-write bodies are sent as one request without compressing anything
 * again. The parts are the new length header, then each block's run of elements (views of the
 * blocks), sent one after the other: no allocation the size of the batch.
 */
export const blockParts = (blocks: ReadonlyArray<Uint8Array>): ReadonlyArray<Uint8Array> => {
  if (blocks.length === 1) return blocks
  let total = 0
  for (const block of blocks) total += snappyDecodedLength(block) as number
  if (total > 0xffffffff) {
    // Beyond what one block can announce (never with the request bounds): compressed again.
    const parts = blocks.map((b) => uncompressSync(b, { asBuffer: true }) as Buffer)
    return [compressSync(Buffer.concat(parts))]
  }
  const head: Array<number> = []
  for (let v = total; ; v = Math.floor(v / 128)) {
    if (v < 0x80) {
      head.push(v)
      break
    }
    head.push((v & 0x7f) | 0x80)
  }
  const out: Array<Uint8Array> = [Uint8Array.from(head)]
  for (const block of blocks) out.push(block.subarray(headerBytes(block)))
  return out
}
