/**
 * Bounded gzip decompression of request bodies (`Content-Encoding: gzip`).
 *
 * zlib stops inflating as soon as the output would pass `maxDecompressedBytes`
 * (`maxOutputLength`), so a zip bomb costs at most that much memory and the time to produce it:
 * kind `too_large` (answer `413`, the sender must not retry). Anything that is not gzip, or is
 * truncated, is kind `bad_gzip`. Concatenated gzip members are inflated as one body, as HTTP
 * allows.
 */
import { kMaxLength } from "node:buffer"
import * as zlib from "node:zlib"
import * as Either from "effect/Either"
import { OtlpDecodeError } from "./errors.js"

const isTooLarge = (e: unknown): boolean =>
  e instanceof Error && (e as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE"

const toError = (e: unknown, max: number): OtlpDecodeError =>
  isTooLarge(e)
    ? new OtlpDecodeError({ kind: "too_large", reason: `decompresses to more than ${max} bytes` })
    : new OtlpDecodeError({
        kind: "bad_gzip",
        reason: e instanceof Error ? e.message : String(e),
      })

const checkLimit = (max: number): OtlpDecodeError | undefined =>
  Number.isSafeInteger(max) && max >= 1
    ? undefined
    : new OtlpDecodeError({ kind: "too_large", reason: `invalid decompression limit ${max}` })

const view = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength)

/** Clamped to what a Node buffer can hold; zlib rejects larger `maxOutputLength` values. */
const outputLimit = (max: number): number => Math.min(max, kMaxLength)

/**
 * Inflates a gzip body to at most `maxDecompressedBytes` bytes, synchronously (blocks the event
 * loop for the inflation: about 1 ms per MB). Never throws.
 */
export const decompressGzip = (
  body: Uint8Array,
  maxDecompressedBytes: number,
): Either.Either<Uint8Array, OtlpDecodeError> => {
  const invalid = checkLimit(maxDecompressedBytes)
  if (invalid !== undefined) return Either.left(invalid)
  try {
    return Either.right(zlib.gunzipSync(view(body), { maxOutputLength: outputLimit(maxDecompressedBytes) }))
  } catch (e) {
    return Either.left(toError(e, maxDecompressedBytes))
  }
}

/**
 * Inflates a `Content-Encoding: deflate` body (zlib format, as HTTP defines it; a raw deflate
 * stream, which some clients send instead, is accepted too) to at most `maxDecompressedBytes`
 * bytes, synchronously. Never throws.
 */
export const decompressDeflate = (
  body: Uint8Array,
  maxDecompressedBytes: number,
): Either.Either<Uint8Array, OtlpDecodeError> => {
  const invalid = checkLimit(maxDecompressedBytes)
  if (invalid !== undefined) return Either.left(invalid)
  const options = { maxOutputLength: outputLimit(maxDecompressedBytes) }
  try {
    return Either.right(zlib.inflateSync(view(body), options))
  } catch (e) {
    if (isTooLarge(e)) return Either.left(toError(e, maxDecompressedBytes))
    try {
      return Either.right(zlib.inflateRawSync(view(body), options))
    } catch (raw) {
      return Either.left(toError(isTooLarge(raw) ? raw : e, maxDecompressedBytes))
    }
  }
}
