import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https"
import { createServer as createNetServer, type Socket } from "node:net"
import type { ServerTls } from "../security/material.js"
import type { DrainableServer } from "../server/shutdown.js"
import type { ReceiverSecurity } from "./receiver-security.js"

/** The HTTP server that serves one mode (plaintext, or TLS with one `ServerTls`) and its connections. */
interface Front {
  readonly server: Server
  readonly tls: ServerTls | undefined
  /** A reload replaced this mode: no new connection comes here, and those open close after their request. */
  retired: boolean
  readonly sockets: Set<Socket>
  /** Answers not yet sent: told at retirement that they are their connection's last. */
  readonly answering: Set<ServerResponse>
  /** Stops following the material's rotation. */
  readonly unfollow: () => void
}

const KEEP_ALIVE_TIMEOUT_MS = 65_000

/**
 * An HTTP receiver's server whose TLS a reload may turn on or off (or mutual TLS): one TCP listener
 * on the address for the life of the process, handing each new connection to the HTTP server of the
 * mode in force when it arrived (`security.tls`: plaintext, or HTTPS with that material). When a
 * reload replaces the mode, the previous mode's server is retired: its idle keep-alive connections
 * close at once, and each busy one closes after the answer it is writing (`Connection: close`), so
 * no client keeps talking in the mode that ended; requests in progress are not cut. Rotated
 * material of the same mode applies to new connections (`setSecureContext`).
 */
export class SwitchingHttpServer implements DrainableServer {
  private readonly listener = createNetServer()
  private readonly fronts = new Set<Front>()
  private current: Front
  private readonly unfollowSecurity: () => void

  constructor(
    private readonly onRequest: (req: IncomingMessage, res: ServerResponse) => void,
    private readonly security: ReceiverSecurity,
  ) {
    this.current = this.frontFor(security.tls)
    this.listener.on("connection", (socket) => this.accept(socket))
    this.unfollowSecurity = security.onTlsReplaced(() => this.switchTo(this.security.tls))
  }

  /** Opens the listener; `onError` if it cannot (address in use, permission). */
  listen(port: number, host: string | undefined, onListening: () => void, onError: (e: Error) => void): void {
    const fail = (e: Error) => onError(e)
    this.listener.once("error", fail)
    this.listener.listen({ port, ...(host === undefined ? {} : { host }) }, () => {
      this.listener.off("error", fail)
      onListening()
    })
  }

  get listening(): boolean {
    return this.listener.listening
  }

  on(event: "connection", listener: (socket: Socket) => void): this {
    this.listener.on(event, listener)
    return this
  }

  close(done: () => void): this {
    this.unfollowSecurity()
    this.listener.close(() => {
      for (const f of [...this.fronts]) this.dispose(f)
      done()
    })
    this.closeIdleConnections()
    return this
  }

  closeIdleConnections(): void {
    for (const f of this.fronts) f.server.closeIdleConnections()
  }

  closeAllConnections(): void {
    for (const f of this.fronts) f.server.closeAllConnections()
  }

  private frontFor(tls: ServerTls | undefined): Front {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      // The mode this connection speaks has ended: this answer is its last.
      if (front.retired) res.shouldKeepAlive = false
      else {
        front.answering.add(res)
        res.once("close", () => front.answering.delete(res))
      }
      this.onRequest(req, res)
    }
    // TLS 1.2 or later (`secureOptions`).
    const server: Server =
      tls === undefined
        ? createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, handler)
        : (createHttpsServer(
            { keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, ...tls.secureOptions() },
            handler,
          ) as unknown as Server)
    const front: Front = {
      server,
      tls,
      retired: false,
      sockets: new Set(),
      answering: new Set(),
      unfollow:
        tls === undefined
          ? () => {}
          : tls.onChange(() => (server as unknown as HttpsServer).setSecureContext(tls.secureOptions())),
    }
    // This server never listens itself (the listener hands it its connections): its connection
    // tracking (idle keep-alive connections, the headers and request timeouts) starts on the event
    // a listening server emits.
    server.emit("listening")
    this.fronts.add(front)
    return front
  }

  private accept(socket: Socket): void {
    const front = this.current
    front.sockets.add(socket)
    socket.once("close", () => {
      front.sockets.delete(socket)
      if (front.retired && front.sockets.size === 0) this.dispose(front)
    })
    front.server.emit("connection", socket)
  }

  private switchTo(tls: ServerTls | undefined): void {
    const old = this.current
    if (old.tls === tls) return
    this.current = this.frontFor(tls)
    old.retired = true
    old.unfollow()
    // Requests in progress are answered, with `Connection: close`; an answer already under way
    // leaves its connection idle, closed when it has been sent.
    for (const res of old.answering) {
      if (!res.headersSent) res.shouldKeepAlive = false
      else res.once("finish", () => setImmediate(() => old.server.closeIdleConnections()))
    }
    old.answering.clear()
    old.server.closeIdleConnections()
    if (old.sockets.size === 0) this.dispose(old)
  }

  private dispose(front: Front): void {
    if (!this.fronts.delete(front)) return
    front.unfollow()
    // Stops its connection checks; it has no listening socket of its own to close.
    front.server.close()
  }
}
