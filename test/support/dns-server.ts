/**
 * A tiny authoritative DNS server on loopback (UDP) for the sharding tests: it answers A queries
 * for the names it was given with their current addresses (changeable while it runs), AAAA and
 * other types with an empty answer, and unknown names with NXDOMAIN.
 */
import * as dgram from "node:dgram"
import type { AddressInfo } from "node:net"

const TYPE_A = 1

/** The question's name (lower-cased) and type, and where the question section ends. */
const readQuestion = (msg: Buffer): { name: string; type: number; end: number } | undefined => {
  let at = 12
  const labels: Array<string> = []
  while (at < msg.length) {
    const len = msg[at] as number
    at++
    if (len === 0) break
    if (len > 63 || at + len > msg.length) return undefined
    labels.push(msg.toString("ascii", at, at + len))
    at += len
  }
  if (at + 4 > msg.length) return undefined
  return { name: labels.join(".").toLowerCase(), type: msg.readUInt16BE(at), end: at + 4 }
}

export class DnsServer {
  /** Queries answered, by name. */
  readonly queries = new Map<string, number>()
  /** How long each answer is held back (ms): a slow resolver. */
  delayMs = 0

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly records: Map<string, ReadonlyArray<string>>,
  ) {}

  static async start(records: Readonly<Record<string, ReadonlyArray<string>>>): Promise<DnsServer> {
    const socket = dgram.createSocket("udp4")
    const server = new DnsServer(
      socket,
      new Map(Object.entries(records).map(([k, v]) => [k.toLowerCase(), v])),
    )
    socket.on("message", (msg, from) => {
      const reply = server.answer(msg)
      if (reply === undefined) return
      const send = () => socket.send(reply, from.port, from.address)
      if (server.delayMs > 0) setTimeout(send, server.delayMs)
      else send()
    })
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()))
    return server
  }

  /** `host:port` of the server, as `sharding.dns.server` takes it. */
  get address(): string {
    const a = this.socket.address() as AddressInfo
    return `${a.address}:${a.port}`
  }

  /** Replaces the addresses `name` resolves to (an empty list: NXDOMAIN). */
  set(name: string, addresses: ReadonlyArray<string>): void {
    this.records.set(name.toLowerCase(), addresses)
  }

  private answer(msg: Buffer): Buffer | undefined {
    if (msg.length < 12) return undefined
    const q = readQuestion(msg)
    if (q === undefined) return undefined
    this.queries.set(q.name, (this.queries.get(q.name) ?? 0) + 1)
    const addresses = this.records.get(q.name) ?? []
    const answers = q.type === TYPE_A ? addresses : []
    const header = Buffer.alloc(12)
    msg.copy(header, 0, 0, 2) // id
    // QR, opcode 0, AA, RD copied; RA; rcode NXDOMAIN (3) for a name with no addresses
    header.writeUInt16BE(
      0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | (addresses.length === 0 ? 3 : 0),
      2,
    )
    header.writeUInt16BE(1, 4)
    header.writeUInt16BE(answers.length, 6)
    const question = msg.subarray(12, q.end)
    const records = answers.map((ip) => {
      const rr = Buffer.alloc(16)
      rr.writeUInt16BE(0xc00c, 0) // pointer to the question's name
      rr.writeUInt16BE(TYPE_A, 2)
      rr.writeUInt16BE(1, 4) // class IN
      rr.writeUInt32BE(1, 6) // TTL 1 s
      rr.writeUInt16BE(4, 10)
      const parts = ip.split(".").map(Number)
      for (let i = 0; i < 4; i++) rr[12 + i] = parts[i] as number
      return rr
    })
    return Buffer.concat([header, question, ...records])
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()))
  }
}
