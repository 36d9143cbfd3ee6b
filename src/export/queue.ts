/**
 * The durable export queue of one protocol (docs/exporting.md#durable-queue): what a receiver accepted is appended to
 * segment files before its answer, taken from there in order by the exporter, and forgotten once
 * the exporter acknowledged it (delivered, or counted lost). A restart with the same directory
 * sends what was not acknowledged.
 *
 * On disk, in `dir`:
 * - `<id>.seg` segments (`id` 16 hex digits, increasing), each a run of records:
 *   `magic u8 (0xa7) | version u8 | reserved u16 (0) | length u32 | datapoints u32 | at f64 (ms) |
 *   crc32 u32 | payload (length bytes)`, little-endian; the CRC-32 covers the header's length,
 *   datapoints and at fields and the payload (version 2: the whole header before it, the version
 *   included, so a flipped version is found too). Version 1: the payload compressed here (snappy);
 *   version 2: the payload as it was pushed, for protocols whose payloads are compressed already
 *   (remote write's snappy blocks: `storeAsIs`). A segment is written by one process only,
 *   appended to and never rewritten; it is deleted once every record in it is acknowledged.
 * - `ack`: `<segment id> <offset>`, the first record not acknowledged, written at every sync.
 *   Records before it were acknowledged; records after it may have been (acknowledgements can come
 *   out of order), and are sent again after a restart: delivery is at least once.
 * - `lock`: the pid of the process using the directory.
 *
 * A record whose header or CRC does not check out is corruption. Found when the queue is opened,
 * the segment is searched on from there for the next record that checks out (magic, version,
 * length and CRC): the bytes in between are skipped and counted, and every record after them is
 * sent (a torn tail, the last write of a crash, is skipped to the end). Found when a record is read
 * back, that record is skipped and counted with its datapoints.
 *
 * Writes are synchronous (`writeSync`) so a push is on disk (in the page cache) before the
 * receiver answers; `fsync` runs every `syncIntervalMs`, or on every push when it is 0.
 *
 * @module
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { crc32 } from "node:zlib"
import { Data } from "effect"
import { compressSync, uncompressSync } from "snappy"
import { type Buffered, type ExportQueue, PushSignal } from "./buffer.js"

const MAGIC = 0xa7
/** A record whose payload the queue compressed (snappy). */
const VERSION_COMPRESSED = 1
/** A record whose payload is stored as it was pushed. */
const VERSION_AS_IS = 2
const isVersion = (v: number | undefined) => v === VERSION_COMPRESSED || v === VERSION_AS_IS
export const HEADER_BYTES = 24
const SEGMENT_SUFFIX = ".seg"

export type FullBehavior = "reject" | "drop_oldest"

export interface QueueSettings {
  readonly dir: string
  /** Bytes on disk (records not acknowledged) before `full_behavior` applies. */
  readonly maxBytes: number
  /** 0: fsync on every push, before the receiver answers. */
  readonly syncIntervalMs: number
  readonly fullBehavior: FullBehavior
  /** Payload bytes kept in memory for sending; the rest is read back from disk when taken. */
  readonly memoryBytes: number
  /** A segment is closed and a new one started past this size. */
  readonly segmentBytes?: number
  /**
   * Payloads are compressed already (remote write's snappy blocks): stored as they are (version 2),
   * and a payload of a version-1 record (compressed here, as earlier versions stored every
   * protocol's) is turned into one of now by `upgrade` once decompressed.
   */
  readonly storeAsIs?: { readonly upgrade: (payload: Uint8Array) => Uint8Array }
}

/** What a queue reports to its owner: drops, corruption. */
export interface QueueEvents {
  /** Datapoints dropped unsent by `drop_oldest`. */
  readonly dropped: (datapoints: number) => void
  /** Bytes found corrupt (and the datapoints in them, when known). */
  readonly corrupt: (bytes: number, datapoints: number, where: string) => void
}

export class QueueOpenError extends Error {
  override readonly name = "QueueOpenError"
}

/** The durable queue could not be opened at start (directory in use, not writable). Exit 1. */
export class QueueError extends Data.TaggedError("QueueError")<{
  readonly protocol: string
  readonly path: string
  readonly reason: string
}> {
  override get message(): string {
    return `durable queue (${this.protocol}) at ${this.path}: ${this.reason}`
  }
}

interface Segment {
  readonly id: number
  readonly file: string
  fd: number | undefined
  size: number
  /** Records in it not acknowledged. */
  live: number
}

interface Rec {
  readonly segment: Segment
  readonly offset: number
  /** Header and payload, on disk. */
  readonly size: number
  readonly datapoints: number
  readonly at: number
  readonly bytes: number
  payload: Uint8Array | undefined
  taken: boolean
  acked: boolean
}

const segmentName = (id: number) => `${id.toString(16).padStart(16, "0")}${SEGMENT_SUFFIX}`

/** The CRC-32 of a record: from its length field on (version 1), from its first byte on (version 2). */
const checksum = (header: Uint8Array, payload: Uint8Array): number =>
  crc32(payload, crc32(header.subarray(header[1] === VERSION_AS_IS ? 0 : 4, 20))) >>> 0

/** A record parsed from bytes at `offset`, or why it is not one. */
const parseRecord = (
  bytes: Uint8Array,
  offset: number,
):
  | { readonly version: number; readonly length: number; readonly datapoints: number; readonly at: number }
  | string => {
  if (bytes.length - offset < HEADER_BYTES) return "truncated header"
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, HEADER_BYTES)
  if (view.getUint8(0) !== MAGIC || !isVersion(view.getUint8(1)) || view.getUint16(2, true) !== 0)
    return "bad record header"
  const length = view.getUint32(4, true)
  if (bytes.length - offset - HEADER_BYTES < length) return "truncated record"
  const payload = bytes.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length)
  if (checksum(bytes.subarray(offset, offset + HEADER_BYTES), payload) !== view.getUint32(20, true))
    return "checksum mismatch"
  return {
    version: view.getUint8(1),
    length,
    datapoints: view.getUint32(8, true),
    at: view.getFloat64(12, true),
  }
}

/** The offset of the first record from `from` on that checks out (CRC included), if any. */
const nextRecord = (bytes: Buffer, from: number): number | undefined => {
  for (let o = bytes.indexOf(MAGIC, from); o !== -1; o = bytes.indexOf(MAGIC, o + 1)) {
    if (isVersion(bytes[o + 1]) && typeof parseRecord(bytes, o) !== "string") return o
  }
  return undefined
}

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

export class DurableQueue implements ExportQueue<Uint8Array> {
  readonly durable = true
  private readonly records: Array<Rec> = []
  /** Index in `records` of the first record not taken. */
  private next = 0
  private readonly byItem = new Map<Buffered<Uint8Array>, Rec>()
  private readonly segments: Array<Segment> = []
  private current: Segment | undefined
  private nextId = 1
  private bytesQueued = 0
  private datapointsWaiting = 0
  private memoryHeld = 0
  private dirty = false
  private timer: NodeJS.Timeout | undefined
  private readonly pushes = new PushSignal()
  private readonly segmentBytes: number
  /** Records found on disk at open, and their datapoints. */
  readonly recovered: { records: number; datapoints: number } = { records: 0, datapoints: 0 }

  private constructor(
    public settings: QueueSettings,
    private readonly events: QueueEvents,
  ) {
    this.segmentBytes = settings.segmentBytes ?? Math.max(1 << 20, Math.min(64 << 20, settings.maxBytes / 8))
  }

  /** Opens (creating) the queue in `settings.dir`, reading what a previous run left. */
  static open(settings: QueueSettings, events: QueueEvents): DurableQueue {
    const q = new DurableQueue(settings, events)
    q.load()
    q.startTimer()
    return q
  }

  private startTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    if (this.settings.syncIntervalMs > 0) {
      this.timer = setInterval(() => this.sync(), this.settings.syncIntervalMs)
      this.timer.unref()
    }
  }

  /**
   * New bounds from a reload (the directory stays): `max_bytes` and `full_behavior` apply to the
   * next push (`drop_oldest` drops at once what is over the new bound), `sync_interval` from now.
   */
  retune(next: Pick<QueueSettings, "maxBytes" | "syncIntervalMs" | "fullBehavior" | "memoryBytes">): void {
    const before = this.settings
    this.settings = { ...before, ...next }
    if (next.syncIntervalMs !== before.syncIntervalMs) {
      this.sync()
      this.startTimer()
    }
    if (this.settings.fullBehavior === "drop_oldest") this.dropOldest()
  }

  get datapoints(): number {
    return this.datapointsWaiting
  }
  get length(): number {
    return this.records.length - this.next
  }
  /** Bytes on disk of records not acknowledged. */
  get bytes(): number {
    return this.bytesQueued
  }
  /** Datapoints on disk not acknowledged (taken or not). */
  get datapointsQueued(): number {
    let n = 0
    for (const r of this.records) if (!r.acked) n += r.datapoints
    return n
  }

  /** Wall-clock ms of the oldest record not acknowledged, or undefined when there is none. */
  get oldestAt(): number | undefined {
    for (const r of this.records) if (!r.acked) return r.at
    return undefined
  }

  private load(): void {
    const dir = this.settings.dir
    fs.mkdirSync(dir, { recursive: true })
    const lock = path.join(dir, "lock")
    try {
      const pid = Number(fs.readFileSync(lock, "utf8").trim())
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
        throw new QueueOpenError(`queue directory ${dir} is in use by process ${pid}`)
      }
    } catch (e) {
      if (e instanceof QueueOpenError) throw e
    }
    fs.writeFileSync(lock, `${process.pid}\n`)
    let ackSegment = 0
    let ackOffset = 0
    try {
      const [s, o] = fs.readFileSync(path.join(dir, "ack"), "utf8").trim().split(" ")
      if (/^[0-9a-f]+$/.test(s ?? "") && /^\d+$/.test(o ?? "")) {
        ackSegment = Number.parseInt(s as string, 16)
        ackOffset = Number(o)
      }
    } catch {
      // no acknowledgement yet: everything is sent
    }
    const ids = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith(SEGMENT_SUFFIX) && /^[0-9a-f]{16}$/.test(f.slice(0, 16)))
      .map((f) => Number.parseInt(f.slice(0, 16), 16))
      .sort((a, b) => a - b)
    for (const id of ids) {
      this.nextId = Math.max(this.nextId, id + 1)
      const file = path.join(dir, segmentName(id))
      if (id < ackSegment) {
        fs.rmSync(file, { force: true })
        continue
      }
      const bytes = fs.readFileSync(file)
      const segment: Segment = { id, file, fd: undefined, size: bytes.length, live: 0 }
      let offset = id === ackSegment ? Math.min(ackOffset, bytes.length) : 0
      while (offset < bytes.length) {
        const r = parseRecord(bytes, offset)
        if (typeof r === "string") {
          const resume = nextRecord(bytes, offset + 1)
          const end = resume ?? bytes.length
          this.events.corrupt(
            end - offset,
            0,
            `${file} bytes ${offset}-${end}: ${r}${resume === undefined ? "" : `, records resume at byte ${resume}`}`,
          )
          if (resume === undefined) break
          offset = resume
          continue
        }
        const size = HEADER_BYTES + r.length
        this.addRecord({
          segment,
          offset,
          size,
          datapoints: r.datapoints,
          at: r.at,
          bytes: r.length,
          payload: undefined,
          taken: false,
          acked: false,
        })
        this.recovered.records++
        this.recovered.datapoints += r.datapoints
        offset += size
      }
      if (segment.live === 0) fs.rmSync(file, { force: true })
      else this.segments.push(segment)
    }
    this.writeAck()
  }

  private addRecord(rec: Rec): void {
    this.records.push(rec)
    rec.segment.live++
    this.bytesQueued += rec.size
    this.datapointsWaiting += rec.datapoints
  }

  private openSegment(): Segment {
    const id = this.nextId++
    const file = path.join(this.settings.dir, segmentName(id))
    const segment: Segment = { id, file, fd: fs.openSync(file, "a+"), size: 0, live: 0 }
    this.segments.push(segment)
    return segment
  }

  private closeCurrent(): void {
    const c = this.current
    if (c?.fd !== undefined) {
      fs.fsyncSync(c.fd)
      fs.closeSync(c.fd)
      c.fd = undefined
    }
    this.current = undefined
    if (c !== undefined && c.live === 0) this.removeSegment(c)
  }

  canTake(_datapoints: number, bytes: number): boolean {
    if (this.settings.fullBehavior === "drop_oldest") return true
    if (this.records.length === 0) return true
    return this.bytesQueued + HEADER_BYTES + bytes <= this.settings.maxBytes
  }

  push(item: Buffered<Uint8Array>): void {
    const asIs = this.settings.storeAsIs !== undefined
    const compressed = asIs ? item.payload : compressSync(item.payload)
    const header = new Uint8Array(HEADER_BYTES)
    const view = new DataView(header.buffer)
    view.setUint8(0, MAGIC)
    view.setUint8(1, asIs ? VERSION_AS_IS : VERSION_COMPRESSED)
    view.setUint32(4, compressed.length, true)
    view.setUint32(8, item.datapoints, true)
    view.setFloat64(12, item.at, true)
    view.setUint32(20, checksum(header, compressed), true)
    if (this.current === undefined || this.current.size >= this.segmentBytes) {
      this.closeCurrent()
      this.current = this.openSegment()
    }
    const segment = this.current
    const fd = segment.fd as number
    const offset = segment.size
    fs.writeSync(fd, header)
    fs.writeSync(fd, compressed)
    segment.size += HEADER_BYTES + compressed.length
    if (this.settings.syncIntervalMs === 0) fs.fsyncSync(fd)
    else this.dirty = true
    const keep = this.memoryHeld + item.payload.length <= this.settings.memoryBytes
    if (keep) this.memoryHeld += item.payload.length
    this.addRecord({
      segment,
      offset,
      size: HEADER_BYTES + compressed.length,
      datapoints: item.datapoints,
      at: item.at,
      bytes: item.bytes,
      payload: keep ? item.payload : undefined,
      taken: false,
      acked: false,
    })
    if (this.settings.fullBehavior === "drop_oldest") this.dropOldest()
    this.pushes.fire()
  }

  /** Drops records not taken, oldest first, until the queue is within `maxBytes` (never the newest). */
  private dropOldest(): void {
    let dropped = 0
    while (this.bytesQueued > this.settings.maxBytes && this.next < this.records.length - 1) {
      const r = this.records[this.next] as Rec
      this.next++
      r.taken = true
      this.datapointsWaiting -= r.datapoints
      dropped += r.datapoints
      this.settle(r)
    }
    if (dropped > 0) {
      this.compact()
      this.events.dropped(dropped)
    }
  }

  oldest(): number | undefined {
    return this.records[this.next]?.at
  }

  peek(maxDatapoints: number): Array<Buffered<Uint8Array>> {
    return this.collect(maxDatapoints, false)
  }

  take(maxDatapoints: number): Array<Buffered<Uint8Array>> {
    return this.collect(maxDatapoints, true)
  }

  private collect(maxDatapoints: number, taking: boolean): Array<Buffered<Uint8Array>> {
    const out: Array<Buffered<Uint8Array>> = []
    let n = 0
    let i = this.next
    while (i < this.records.length) {
      const r = this.records[i] as Rec
      if (out.length > 0 && n + r.datapoints > maxDatapoints) break
      i++
      if (r.taken) continue // found corrupt by an earlier peek
      const payload = r.payload ?? this.readBack(r)
      if (payload === undefined) {
        // Corrupt on disk: counted once, skipped, and done with.
        r.taken = true
        this.datapointsWaiting -= r.datapoints
        this.settle(r)
        continue
      }
      const item: Buffered<Uint8Array> = { payload, datapoints: r.datapoints, bytes: r.bytes, at: r.at }
      out.push(item)
      n += r.datapoints
      if (taking) {
        r.taken = true
        this.datapointsWaiting -= r.datapoints
        this.byItem.set(item, r)
        if (r.payload !== undefined) {
          this.memoryHeld -= r.payload.length
          r.payload = undefined
        }
      } else if (r.payload === undefined) {
        r.payload = payload
        this.memoryHeld += payload.length
      }
    }
    if (taking) {
      this.next = i
      this.compact()
    }
    return out
  }

  /** Reads a record's payload from its segment; undefined (counted) when it is corrupt. */
  private readBack(r: Rec): Uint8Array | undefined {
    const where = `${r.segment.file} at byte ${r.offset}`
    try {
      const fd = r.segment.fd ?? fs.openSync(r.segment.file, "r")
      try {
        const bytes = new Uint8Array(r.size)
        const read = fs.readSync(fd, bytes, 0, r.size, r.offset)
        const parsed = parseRecord(bytes.subarray(0, read), 0)
        if (typeof parsed === "string") {
          this.events.corrupt(r.size, r.datapoints, `${where}: ${parsed}`)
          return undefined
        }
        const stored = bytes.subarray(HEADER_BYTES, HEADER_BYTES + parsed.length)
        if (parsed.version === VERSION_AS_IS) return stored
        const payload = uncompressSync(stored, { asBuffer: true }) as Buffer
        return this.settings.storeAsIs === undefined ? payload : this.settings.storeAsIs.upgrade(payload)
      } finally {
        if (r.segment.fd === undefined) fs.closeSync(fd)
      }
    } catch (e) {
      this.events.corrupt(r.size, r.datapoints, `${where}: ${e instanceof Error ? e.message : String(e)}`)
      return undefined
    }
  }

  ack(items: ReadonlyArray<Buffered<Uint8Array>>): void {
    for (const item of items) {
      const r = this.byItem.get(item)
      if (r === undefined) continue
      this.byItem.delete(item)
      this.settle(r)
    }
    this.compact()
    // With `sync_interval: 0s` no timer records the acknowledgements: they are recorded here, or a
    // crash would send again everything the current segment ever held. (Written, not fsync'd: an
    // acknowledgement lost to a machine crash costs a duplicate, never a loss.)
    if (this.settings.syncIntervalMs === 0 && this.dirty) {
      this.dirty = false
      this.writeAck()
    }
  }

  /** A record is done with: its bytes leave the count, its segment may go. */
  private settle(r: Rec): void {
    if (r.acked) return
    r.acked = true
    r.payload = undefined
    this.bytesQueued -= r.size
    r.segment.live--
    this.dirty = true
    if (r.segment.live === 0 && r.segment !== this.current) this.removeSegment(r.segment)
  }

  private removeSegment(s: Segment): void {
    const i = this.segments.indexOf(s)
    if (i >= 0) this.segments.splice(i, 1)
    if (s.fd !== undefined) {
      fs.closeSync(s.fd)
      s.fd = undefined
    }
    fs.rmSync(s.file, { force: true })
  }

  /** Forgets the acknowledged records at the front. */
  private compact(): void {
    let k = 0
    while (k < this.next && (this.records[k] as Rec).acked) k++
    if (k > 1024 || (k > 0 && k === this.records.length)) {
      this.records.splice(0, k)
      this.next -= k
    }
  }

  /** The first record not acknowledged, as `ack` records it. */
  private ackPosition(): { readonly segment: number; readonly offset: number } {
    for (const r of this.records) if (!r.acked) return { segment: r.segment.id, offset: r.offset }
    return { segment: this.current?.id ?? this.nextId, offset: this.current?.size ?? 0 }
  }

  private writeAck(): void {
    const { segment, offset } = this.ackPosition()
    const file = path.join(this.settings.dir, "ack")
    const tmp = `${file}.tmp`
    fs.writeFileSync(tmp, `${segment.toString(16).padStart(16, "0")} ${offset}\n`)
    fs.renameSync(tmp, file)
  }

  /** Makes what was pushed durable (fsync) and records the acknowledgements. */
  sync(): void {
    if (!this.dirty) return
    this.dirty = false
    const fd = this.current?.fd
    if (fd !== undefined) fs.fsyncSync(fd)
    this.writeAck()
  }

  nextPush(): Promise<void> {
    return this.pushes.next()
  }

  /** Syncs and closes the files; what is not acknowledged is sent by the next run. */
  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.dirty = true
    this.sync()
    this.closeCurrent()
    for (const s of this.segments) {
      if (s.fd !== undefined) {
        fs.closeSync(s.fd)
        s.fd = undefined
      }
    }
    fs.rmSync(path.join(this.settings.dir, "lock"), { force: true })
  }
}
