/**
 * Bounded zstd decompression of request bodies (`Content-Encoding: zstd`), with `fzstd` (pure
 * JavaScript: Node 20's zlib has no zstd).
 *
 * Before anything is decoded, the frames are walked (headers and block headers only, no
 * decompression): a body that is not a sequence of zstd (or skippable) frames is `corrupt`; a frame
 * that declares more content than the bound, or whose declared contents add up past it, is
 * `too_large`; a frame whose window is larger than the decoder would allocate for it
 * (`max(bound, 8 MiB)`) is `too_large` too. Then the frames are decoded block by block (a block
 * is at most 128 KiB), and decoding stops as soon as the output passes the bound: a zstd bomb costs
 * at most the bound plus one block, and the time to produce it.
 *
 * @module
 */
import { Decompress } from "fzstd"

export type ZstdFailure =
  | { readonly kind: "too_large"; readonly reason: string }
  | { readonly kind: "corrupt"; readonly reason: string }

const ZSTD_MAGIC = 0xfd2fb528
/** Skippable frames: 0x184D2A50 to 0x184D2A5F. */
const isSkippable = (magic: number) => magic >>> 4 === 0x184d2a5
/** The window every decoder should support (RFC 8878 §3.1.1.1.2); larger ones must fit the bound. */
const MIN_WINDOW_LIMIT = 8 * 1024 * 1024
/** What fzstd refuses anyway. */
const FZSTD_MAX_WINDOW = 2_145_386_496

const u32 = (b: Uint8Array, at: number): number =>
  ((b[at] ?? 0) | ((b[at + 1] ?? 0) << 8) | ((b[at + 2] ?? 0) << 16) | ((b[at + 3] ?? 0) << 24)) >>> 0

class Stop extends Error {}

/** Walks the frames: their declared sizes and windows, without decoding. */
const scan = (body: Uint8Array, max: number): ZstdFailure | undefined => {
  const windowLimit = Math.min(FZSTD_MAX_WINDOW, Math.max(max, MIN_WINDOW_LIMIT))
  let at = 0
  let declared = 0
  let frames = 0
  if (body.length === 0) return { kind: "corrupt", reason: "empty body" }
  while (at < body.length) {
    if (body.length - at < 8) return { kind: "corrupt", reason: `truncated frame at byte ${at}` }
    const magic = u32(body, at)
    if (isSkippable(magic)) {
      at += 8 + u32(body, at + 4)
      if (at > body.length) return { kind: "corrupt", reason: "truncated skippable frame" }
      continue
    }
    if (magic !== ZSTD_MAGIC) return { kind: "corrupt", reason: `not a zstd frame at byte ${at}` }
    frames++
    const flags = body[at + 4] ?? 0
    const singleSegment = (flags >> 5) & 1
    const checksum = (flags >> 2) & 1
    const dictFlag = flags & 3
    const fcsFlag = flags >> 6
    if (flags & 8) return { kind: "corrupt", reason: `reserved bit set in frame header at byte ${at}` }
    if (dictFlag !== 0) return { kind: "corrupt", reason: "frames that need a dictionary are not supported" }
    let p = at + 5
    let window = 0
    if (!singleSegment) {
      const wd = body[p] ?? 0
      const base = 2 ** (10 + (wd >> 3))
      window = base + (base / 8) * (wd & 7)
      p++
    }
    const fcsBytes = fcsFlag === 0 ? singleSegment : 1 << fcsFlag
    if (p + fcsBytes > body.length) return { kind: "corrupt", reason: "truncated frame header" }
    let size: number | undefined
    if (fcsBytes > 0) {
      size = 0
      for (let i = fcsBytes - 1; i >= 0; i--) size = size * 256 + (body[p + i] ?? 0)
      if (fcsBytes === 2) size += 256
    }
    p += fcsBytes
    if (singleSegment) window = size ?? 0
    if (size !== undefined) {
      declared += size
      if (declared > max) return { kind: "too_large", reason: `decompresses to more than ${max} bytes` }
    }
    if (window > windowLimit) {
      return {
        kind: "too_large",
        reason: `zstd window of ${window} bytes is larger than ${windowLimit} bytes`,
      }
    }
    // Blocks: a 3-byte header each (last, type, size); an RLE block holds one byte.
    for (;;) {
      if (p + 3 > body.length) return { kind: "corrupt", reason: "truncated zstd block" }
      const h = (body[p] ?? 0) | ((body[p + 1] ?? 0) << 8) | ((body[p + 2] ?? 0) << 16)
      const last = h & 1
      const type = (h >> 1) & 3
      const blockSize = h >>> 3
      if (type === 3) return { kind: "corrupt", reason: "reserved zstd block type" }
      p += 3 + (type === 1 ? 1 : blockSize)
      if (p > body.length) return { kind: "corrupt", reason: "truncated zstd block" }
      if (last) break
    }
    p += checksum * 4
    if (p > body.length) return { kind: "corrupt", reason: "truncated zstd frame checksum" }
    at = p
  }
  return frames === 0 ? { kind: "corrupt", reason: "no zstd frame" } : undefined
}

/**
 * Decompresses a zstd body (one or more frames, as the HTTP encoding allows) to at most `max`
 * bytes. Never throws.
 */
export const decompressZstd = (
  body: Uint8Array,
  max: number,
): { readonly ok: Uint8Array } | { readonly error: ZstdFailure } => {
  if (!Number.isSafeInteger(max) || max < 1) {
    return { error: { kind: "too_large", reason: `invalid decompression limit ${max}` } }
  }
  const problem = scan(body, max)
  if (problem !== undefined) return { error: problem }
  const chunks: Array<Uint8Array> = []
  let total = 0
  const stream = new Decompress((data) => {
    if (data.length === 0) return
    total += data.length
    if (total > max) throw new Stop()
    chunks.push(data.slice())
  })
  try {
    stream.push(body, true)
  } catch (e) {
    if (e instanceof Stop) {
      return { error: { kind: "too_large", reason: `decompresses to more than ${max} bytes` } }
    }
    return { error: { kind: "corrupt", reason: e instanceof Error ? e.message : String(e) } }
  }
  if (chunks.length === 1) return { ok: chunks[0] as Uint8Array }
  const out = new Uint8Array(total)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return { ok: out }
}
