/**
 * Protobuf wire format primitives: a bounds-checked reader and a growable writer, the ground the
 * hand-written OTLP codec (`protobuf.ts`) and the `google.rpc.Status` codec (`status.ts`) stand on.
 *
 * The reader throws `WireError` on malformed input; the public decoders catch it (and anything
 * else) and return a typed error, so no caller ever sees a throw.
 */
import { isUtf8 } from "node:buffer"
import { BoundedReader, type RequestBounds, UNBOUNDED } from "./bounds.js"

/** Malformed protobuf input; internal to the decoders, which turn it into `OtlpDecodeError`. */
export class WireError extends Error {
  override readonly name = "WireError"
}

/** Wire types. */
export const VARINT = 0
export const I64 = 1
export const LEN = 2
export const SGROUP = 3
export const EGROUP = 4
export const I32 = 5

/** The tag of field `field` with wire type `wireType`, as it is written on the wire. */
export const tag = (field: number, wireType: number): number => ((field << 3) | wireType) >>> 0

/** Nesting limit for recursive messages (`AnyValue`, groups), as in the C++ protobuf runtime. */
export const MAX_DEPTH = 100

/** Reads protobuf wire data from `buf[pos, end)`; every read is checked against `end`. */
export class ProtoReader extends BoundedReader {
  readonly buf: Buffer
  readonly view: DataView
  readonly end: number
  pos: number
  /** Where the field whose tag `next` read last starts. */
  at = 0
  private lastLo = -1
  private lastHi = -1
  private last = 0n

  constructor(bytes: Uint8Array, bounds: RequestBounds = UNBOUNDED) {
    super(bounds)
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.pos = 0
    this.end = bytes.byteLength
  }

  fail(what: string, at: number = this.pos): never {
    throw new WireError(`${what} at byte ${at}`)
  }

  /**
   * The field loop of a message ending at `end`: the next field's tag (its start is kept in `at`),
   * 0 once the message is read (0 is no valid tag). Every decoder has the same shape:
   *
   * ```ts
   * for (let t = r.next(end); t !== 0; t = r.next(end)) {
   *   switch (t) {
   *     case T1_LEN: name = r.string(end); break
   *     default: unknown = r.keep(t, end, unknown)
   *   }
   * }
   * r.done(end)
   * ```
   */
  next(end: number): number {
    const pos = this.pos
    if (pos >= end) return 0
    this.at = pos
    // Tags of fields 1 to 15 are one byte: most of them.
    const b = this.buf[pos] as number
    if (b < 0x80 && b !== 0) {
      this.pos = pos + 1
      return b
    }
    const t = this.uint32()
    if (t === 0) this.fail("invalid field number 0")
    return t
  }

  /** After the field loop: the last field must end exactly where its message does. */
  done(end: number): void {
    if (this.pos !== end) this.fail("field overruns its message")
  }

  /** Skips the field of tag `t` that `next` read, kept as raw bytes appended to `acc` (see `unknown`). */
  keep(t: number, end: number, acc: Uint8Array | undefined): Uint8Array {
    return this.unknown(t, this.at, end, acc)
  }

  /** Skips the field of tag `t` that `next` read, dropping it. */
  skipField(t: number, end: number): void {
    this.skip(t, end, 0)
    if (this.pos > end) this.fail("field overruns its message", this.at)
  }

  /** A varint's low 32 bits, unsigned (tags, lengths, `uint32`; `int32`/enums: `| 0` it). */
  uint32(): number {
    const buf = this.buf
    let pos = this.pos
    if (pos + 10 > this.end) return this.uint32Slow()
    let b = buf[pos++] as number
    // One byte: most tags and lengths.
    if (b < 0x80) {
      this.pos = pos
      return b
    }
    let v = b & 0x7f
    for (let shift = 7; shift < 28; shift += 7) {
      b = buf[pos++] as number
      v |= (b & 0x7f) << shift
      if (b < 0x80) {
        this.pos = pos
        return v >>> 0
      }
    }
    b = buf[pos++] as number
    v |= (b & 0x0f) << 28
    // Bytes 6..10 only carry bits above 32 (sign extension of negative int32): skip them.
    for (let i = 5; b >= 0x80; i++) {
      if (i === 10) this.fail("varint longer than 10 bytes", pos)
      b = buf[pos++] as number
    }
    this.pos = pos
    return v >>> 0
  }

  private uint32Slow(): number {
    let v = 0
    for (let i = 0; ; i++) {
      if (i === 10) this.fail("varint longer than 10 bytes")
      if (this.pos >= this.end) this.fail("truncated varint")
      const b = this.buf[this.pos++] as number
      if (i < 5) v |= (b & 0x7f) << (7 * i)
      if (b < 0x80) return v >>> 0
    }
  }

  /** A varint as an unsigned 64-bit `bigint`. */
  uint64(): bigint {
    const buf = this.buf
    let pos = this.pos
    // Up to 7 bytes (49 bits) are exact in a double: the common case, one BigInt conversion.
    let v = 0
    let scale = 1
    for (let i = 0; i < 7; i++) {
      if (pos >= this.end) this.fail("truncated varint")
      const b = buf[pos++] as number
      v += (b & 0x7f) * scale
      if (b < 0x80) {
        this.pos = pos
        return BigInt(v)
      }
      scale *= 128
    }
    let big = BigInt(v)
    let shift = 49n
    for (let i = 7; ; i++) {
      if (i === 10) this.fail("varint longer than 10 bytes", pos)
      if (pos >= this.end) this.fail("truncated varint")
      const b = buf[pos++] as number
      big |= BigInt(b & 0x7f) << shift
      if (b < 0x80) {
        this.pos = pos
        return BigInt.asUintN(64, big)
      }
      shift += 7n
    }
  }

  /** A varint as a signed 64-bit `bigint` (`int64`). */
  int64(): bigint {
    return BigInt.asIntN(64, this.uint64())
  }

  /** `sint32` (zigzag). */
  sint32(): number {
    const v = this.uint32()
    return (v >>> 1) ^ -(v & 1)
  }

  bool(): boolean {
    // A bool is a varint of any length; only zero is false.
    const start = this.pos
    const v = this.uint32()
    if (v !== 0) return true
    // 0 in the low 32 bits: a longer varint may still carry high bits.
    for (let p = start; p < this.pos; p++) if (((this.buf[p] as number) & 0x7f) !== 0) return true
    return false
  }

  /**
   * `fixed64`. The value read last is kept: the timestamps of one request are mostly equal, and
   * handing out the same `bigint` again saves an allocation per data point.
   */
  fixed64(): bigint {
    const pos = this.pos
    if (pos + 8 > this.end) this.fail("truncated fixed64")
    this.pos = pos + 8
    const view = this.view
    const lo = view.getUint32(pos, true)
    const hi = view.getUint32(pos + 4, true)
    if (lo === this.lastLo && hi === this.lastHi) return this.last
    this.lastLo = lo
    this.lastHi = hi
    this.last = view.getBigUint64(pos, true)
    return this.last
  }

  sfixed64(): bigint {
    const pos = this.pos
    if (pos + 8 > this.end) this.fail("truncated fixed64")
    this.pos = pos + 8
    return this.view.getBigInt64(pos, true)
  }

  double(): number {
    const pos = this.pos
    if (pos + 8 > this.end) this.fail("truncated double")
    this.pos = pos + 8
    return this.view.getFloat64(pos, true)
  }

  /** Reads a length prefix and returns the end of the delimited bytes, checked against `limit`. */
  len(limit: number): number {
    const at = this.pos
    const n = this.uint32()
    const end = this.pos + n
    if (end > limit) this.fail(`length ${n} overruns its message`, at)
    return end
  }

  /**
   * A length-delimited string. It must be valid UTF-8, as proto3 requires: invalid bytes are an
   * error rather than U+FFFD, which would make distinct names and labels one.
   */
  string(limit: number): string {
    const end = this.len(limit)
    const start = this.pos
    this.pos = end
    const n = end - start
    if (n === 0) return ""
    if (n > INTERN_MAX_BYTES) {
      if (!isUtf8(this.buf.subarray(start, end))) this.fail("invalid UTF-8", start)
      return this.buf.toString("utf8", start, end)
    }
    return intern(this.buf, start, end)
  }

  /** A length-delimited byte string, copied (so it does not pin the request body in memory). */
  bytes(limit: number): Uint8Array {
    const end = this.len(limit)
    const start = this.pos
    this.pos = end
    return copy(this.buf, start, end)
  }

  /**
   * Skips the field whose tag was read at `tagStart` and returns its raw bytes (tag included)
   * appended to `acc`: how unknown fields are kept for re-encoding.
   *
   * Linear in the total: from the second field on, `acc` is a prefix view of a buffer with room
   * to grow (doubling), which only the one message being decoded appends to. Copying the whole
   * accumulation per field made a message of a million 2-byte unknown fields cost a terabyte of
   * copying.
   */
  unknown(t: number, tagStart: number, limit: number, acc: Uint8Array | undefined): Uint8Array {
    this.skip(t, limit, 0)
    if (this.pos > limit) this.fail("field overruns its message", tagStart)
    if (acc === undefined) return copy(this.buf, tagStart, this.pos)
    const n = this.pos - tagStart
    const length = acc.length + n
    let grown = acc
    if (acc.byteOffset !== 0 || acc.buffer.byteLength < length) {
      grown = new Uint8Array(Math.max(2 * length, 64)).subarray(0, acc.length)
      grown.set(acc, 0)
    }
    const out = new Uint8Array(grown.buffer, 0, length)
    out.set(this.buf.subarray(tagStart, this.pos), acc.length)
    return out
  }

  private skip(t: number, limit: number, depth: number): void {
    const field = t >>> 3
    if (field === 0) this.fail("invalid field number 0")
    switch (t & 7) {
      case VARINT:
        this.uint32()
        return
      case I64:
        if (this.pos + 8 > this.end) this.fail("truncated fixed64")
        this.pos += 8
        return
      case LEN:
        this.pos = this.len(limit)
        return
      case I32:
        if (this.pos + 4 > this.end) this.fail("truncated fixed32")
        this.pos += 4
        return
      case SGROUP: {
        if (depth >= MAX_DEPTH) this.fail("groups nested too deeply")
        for (;;) {
          if (this.pos >= limit) this.fail(`unterminated group ${field}`)
          const inner = this.uint32()
          if ((inner & 7) === EGROUP) {
            if (inner >>> 3 !== field) this.fail(`mismatched end of group ${field}`)
            return
          }
          this.skip(inner, limit, depth + 1)
        }
      }
      default:
        this.fail(`invalid wire type ${t & 7} for field ${field}`)
    }
  }
}

/**
 * Short strings are interned: a direct-mapped cache of strings by their UTF-8 bytes, shared by
 * all decodes. Attribute keys and most values repeat across data points and requests; a hit
 * costs a hash and a byte comparison instead of a new string, and the decoded requests share one
 * copy of each. Bounded: `INTERN_SLOTS` strings of at most `INTERN_MAX_BYTES` bytes.
 */
const INTERN_MAX_BYTES = 32
const INTERN_SLOTS = 4096
const internBytes = new Uint8Array(INTERN_SLOTS * INTERN_MAX_BYTES)
const internLength = new Uint8Array(INTERN_SLOTS)
const internString: string[] = new Array<string>(INTERN_SLOTS).fill("")

const intern = (buf: Buffer, start: number, end: number): string => {
  const n = end - start
  let h = 0x811c9dc5 ^ n
  let high = 0
  for (let p = start; p < end; p++) {
    const b = buf[p] as number
    high |= b
    h = Math.imul(h ^ b, 0x01000193)
  }
  const slot = (h ^ (h >>> 15)) & (INTERN_SLOTS - 1)
  const base = slot * INTERN_MAX_BYTES
  if (internLength[slot] === n) {
    let i = 0
    while (i < n && internBytes[base + i] === buf[start + i]) i++
    if (i === n) return internString[slot] as string
  }
  // A hit returned bytes validated when they were cached; only new non-ASCII bytes need a check.
  if (high >= 0x80 && !isUtf8(buf.subarray(start, end))) throw new WireError(`invalid UTF-8 at byte ${start}`)
  const s = buf.toString("utf8", start, end)
  for (let i = 0; i < n; i++) internBytes[base + i] = buf[start + i] as number
  internLength[slot] = n
  internString[slot] = s
  return s
}

const copy = (buf: Buffer, start: number, end: number): Uint8Array => {
  const out = new Uint8Array(end - start)
  out.set(buf.subarray(start, end), 0)
  return out
}

/** Number of bytes of `v` (an unsigned 32-bit integer) as a varint. */
export const varintSize = (v: number): number =>
  v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5

/** Writes protobuf wire data into a buffer that grows by doubling. */
export class ProtoWriter {
  buf: Buffer
  view: DataView
  pos = 0

  constructor(initialCapacity = 4096) {
    this.buf = Buffer.allocUnsafeSlow(Math.max(64, initialCapacity))
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n
    if (need <= this.buf.length) return
    let cap = this.buf.length * 2
    while (cap < need) cap *= 2
    const next = Buffer.allocUnsafeSlow(cap)
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength)
  }

  /** The written bytes; copied into a right-sized buffer when most of the capacity is unused. */
  finish(): Uint8Array {
    const used = this.buf.subarray(0, this.pos)
    if (this.buf.length - this.pos <= 4096 || this.pos * 4 >= this.buf.length * 3) return used
    const out = Buffer.allocUnsafeSlow(this.pos)
    used.copy(out, 0)
    return out
  }

  /** An unsigned 32-bit varint (tags, lengths, `uint32`, non-negative `int32`). */
  uint32(v: number): void {
    this.ensure(5)
    const buf = this.buf
    let pos = this.pos
    v >>>= 0
    while (v >= 0x80) {
      buf[pos++] = (v & 0x7f) | 0x80
      v >>>= 7
    }
    buf[pos++] = v
    this.pos = pos
  }

  tag(field: number, wireType: number): void {
    this.uint32(tag(field, wireType))
  }

  /** Writes a precomputed tag (`tag(field, wireType)`) and returns the writer for the field's value. */
  tagged(t: number): this {
    this.uint32(t)
    return this
  }

  /** `int32` and enums: negative values are sign-extended to 10 bytes, as the spec requires. */
  int32(v: number): void {
    if (v >= 0) this.uint32(v)
    else this.uint64(BigInt.asUintN(64, BigInt(v)))
  }

  sint32(v: number): void {
    this.uint32((v << 1) ^ (v >> 31))
  }

  /** An unsigned 64-bit varint (`uint64`); other values are taken modulo 2^64. */
  uint64(v: bigint): void {
    if (v >= 0n && v < 0x80000000n) {
      this.uint32(Number(v))
      return
    }
    const u = BigInt.asUintN(64, v)
    this.ensure(10)
    const buf = this.buf
    let pos = this.pos
    let lo = Number(u & 0xffffffffn)
    let hi = Number(u >> 32n)
    while (hi > 0 || lo >= 0x80) {
      buf[pos++] = (lo & 0x7f) | 0x80
      lo = ((lo >>> 7) | ((hi & 0x7f) << 25)) >>> 0
      hi >>>= 7
    }
    buf[pos++] = lo
    this.pos = pos
  }

  /** `int64` (two's complement varint). */
  int64(v: bigint): void {
    this.uint64(BigInt.asUintN(64, v))
  }

  bool(v: boolean): void {
    this.ensure(1)
    this.buf[this.pos++] = v ? 1 : 0
  }

  fixed64(v: bigint): void {
    this.ensure(8)
    this.view.setBigUint64(this.pos, BigInt.asUintN(64, v), true)
    this.pos += 8
  }

  sfixed64(v: bigint): void {
    this.ensure(8)
    this.view.setBigInt64(this.pos, BigInt.asIntN(64, v), true)
    this.pos += 8
  }

  double(v: number): void {
    this.ensure(8)
    this.view.setFloat64(this.pos, v, true)
    this.pos += 8
  }

  /** A length-prefixed UTF-8 string (lone surrogates become U+FFFD). */
  string(s: string): void {
    const n = s.length
    if (n < 43) {
      // At most 3 bytes per UTF-16 unit: fits a one-byte length prefix.
      this.ensure(1 + 3 * n)
      const buf = this.buf
      const lenAt = this.pos
      let p = lenAt + 1
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i)
        if (c >= 0x80) {
          p = lenAt + 1 + buf.write(s, lenAt + 1, "utf8")
          break
        }
        buf[p++] = c
      }
      buf[lenAt] = p - lenAt - 1
      this.pos = p
      return
    }
    const len = Buffer.byteLength(s, "utf8")
    this.uint32(len)
    this.ensure(len)
    this.pos += this.buf.write(s, this.pos, "utf8")
  }

  bytes(b: Uint8Array): void {
    this.uint32(b.length)
    this.raw(b)
  }

  /** Bytes copied verbatim (unknown fields). */
  raw(b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }

  /**
   * Starts a length-delimited field whose length is not known yet: writes the tag, reserves one
   * byte for the length and returns a mark for `endLen`.
   */
  beginLen(field: number): number {
    this.uint32(tag(field, LEN))
    this.ensure(1)
    return this.pos++
  }

  /** Ends the field started at `mark`: writes its length, moving the content when it needs more bytes. */
  endLen(mark: number): void {
    const len = this.pos - mark - 1
    if (len < 0x80) {
      this.buf[mark] = len
      return
    }
    const extra = varintSize(len) - 1
    this.ensure(extra)
    const buf = this.buf
    buf.copyWithin(mark + 1 + extra, mark + 1, this.pos)
    this.pos += extra
    let p = mark
    let v = len
    while (v >= 0x80) {
      buf[p++] = (v & 0x7f) | 0x80
      v >>>= 7
    }
    buf[p] = v
  }
}
