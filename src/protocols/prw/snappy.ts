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
 */
export const decompressBody = (
  body: Uint8Array,
  maxDecompressedBytes: number,
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
  try {
    return Either.right(uncompressSync(body, { asBuffer: true }) as Buffer)
  } catch (e) {
    const detail = e instanceof Error ? e.message.replace(/^snappy: /, "") : String(e)
    return Either.left(new PrwDecodeError({ kind: "bad_snappy", reason: detail }))
  }
}

/** Compresses an encoded `WriteRequest` into the snappy block a remote-write body carries. */
export const compressBody = (bytes: Uint8Array): Uint8Array => compressSync(bytes)

/** How many bytes the varint length header of a valid block takes. */
const headerBytes = (block: Uint8Array): number => {
  let i = 0
  while (((block[i] as number) & 0x80) !== 0) i++
  return i + 1
}

/**
 * Valid snappy blocks (each decompressed successfully before) joined into one block that
 * decompresses to their contents one after the other, without decompressing them: a block is its
 * length header and a run of elements whose copies reach back at most into what the same block
 * produced, so the runs of elements can follow one another under one header giving the sum of the
 * lengths. Encoded `WriteRequest`s concatenate into one `WriteRequest` (their series and metadata
 * in order), so buffered remote-write bodies are sent as one request without compressing anything
 * again.
 */
export const concatBlocks = (blocks: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (blocks.length === 1) return blocks[0] as Uint8Array
  let total = 0
  let size = 0
  for (const block of blocks) {
    total += snappyDecodedLength(block) as number
    size += block.length - headerBytes(block)
  }
  if (total > 0xffffffff) {
    // Beyond what one block can announce (never with the request bounds): compressed again.
    const parts = blocks.map((b) => uncompressSync(b, { asBuffer: true }) as Buffer)
    return compressSync(Buffer.concat(parts))
  }
  let head = 1
  for (let v = total; v >= 0x80; v = Math.floor(v / 128)) head++
  const out = new Uint8Array(head + size)
  let at = 0
  for (let v = total; ; v = Math.floor(v / 128)) {
    if (v < 0x80) {
      out[at++] = v
      break
    }
    out[at++] = (v & 0x7f) | 0x80
  }
  for (const block of blocks) {
    const body = block.subarray(headerBytes(block))
    out.set(body, at)
    at += body.length
  }
  return out
}
