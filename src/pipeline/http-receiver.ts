import type { IncomingMessage, ServerResponse } from "node:http"
import { Data, Effect } from "effect"
import { type Admission, REFUSAL_RETRY_AFTER_MS, UNDECLARED_BYTES } from "../memory/guard.js"
import type { ProtocolName } from "../protocols/protocol.js"
import type { ListenAddress } from "../server/address.js"
import { drainHttpServer, type ShutdownClock } from "../server/shutdown.js"
import type { Instruments } from "../telemetry/metrics.js"
import { readBody } from "../wire/body.js"
import type { RequestBounds } from "../wire/bounds.js"
import type { IngestOutcome } from "./ingest.js"
import { ReceiverSecurity } from "./receiver-security.js"
import { SwitchingHttpServer } from "./switching-server.js"

/** A receiver's listen address could not be bound (in use, permission). The process exits 1. */
export class ListenError extends Data.TaggedError("ListenError")<{
  readonly what: string
  readonly address: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.what}: cannot listen on ${this.address}: ${this.reason}`
  }
}

/** What a route answers. */
export interface Reply {
  readonly status: number
  readonly body?: Uint8Array | string
  readonly headers?: Readonly<Record<string, string>>
}

export interface Route {
  readonly method: "POST"
  readonly path: string
  readonly protocol: ProtocolName
  /** Largest body accepted as sent; bigger is answered 413 without being read. */
  readonly maxRequestBytes: number
  /** The reply, or a promise of it (a body decoded in another thread). */
  readonly handle: (req: IncomingMessage, body: Uint8Array) => Reply | Promise<Reply>
  /** The protocol's push-back answer (OTLP: 429, remote write: 503), with a Retry-After. */
  readonly refused: (req: IncomingMessage, message: string, retryAfterMs: number) => Reply
}

/**
 * What a protocol's route is made with: its size bounds, where batches go and what decodes bodies.
 * The bounds are read at every request: they may be getters that a reload changes
 * (`LiveReceiverLimits`).
 */
export interface RouteOptions<Batch, Decoder> {
  readonly maxRequestBytes: number
  readonly maxDecompressedBytes: number
  /** Most datapoints and elements one request may hold (413 past them). */
  readonly bounds: RequestBounds
  readonly ingest: (req: Batch, bytes: number) => IngestOutcome
  /** Inflates and decodes bodies, in this thread or in worker threads. */
  readonly decoder: Decoder
}

/** The media type of a request's `Content-Type`, lower case, without parameters ("" when absent). */
export const mediaType = (req: IncomingMessage): string =>
  (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? ""

const send = (res: ServerResponse, reply: Reply) => {
  res.statusCode = reply.status
  for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v)
  if (reply.body === undefined) res.end()
  else {
    if (typeof reply.body === "string" && !res.hasHeader("content-type")) {
      res.setHeader("content-type", "text/plain; charset=utf-8")
    }
    res.end(reply.body)
  }
}

/** Text replies for errors: short, one line, for an operator reading a client's log. */
export const textReply = (status: number, message: string, headers: Record<string, string> = {}): Reply => ({
  status,
  body: `${message}\n`,
  headers,
})

/**
 * A plain `node:http` receiver (the data path stays out of per-request Effect overhead): one route
 * table, bodies read with a size bound, every answer counted by protocol and status code. Before a
 * body is read, `admission` (the memory limit) is asked for its declared size: a refusal is the
 * route's push-back answer, counted with reason `memory`, and costs no read. A handler
 * that throws is answered 500 and logged; the server keeps serving. On close it stops accepting when
 * shutdown begins and gives requests in progress the shutdown grace, then cuts the connections still
 * open (see `drainHttpServer`): a slow client cannot hold shutdown open. `security` is followed:
 * credentials are checked at every request, TLS is chosen at every new connection
 * (`SwitchingHttpServer`).
 */
export const serveReceiver = (
  what: string,
  address: ListenAddress,
  routes: ReadonlyArray<Route>,
  telemetry: Instruments,
  onError: (e: unknown) => void,
  shutdown: ShutdownClock,
  admission: Admission,
  security: ReceiverSecurity = new ReceiverSecurity(),
) =>
  Effect.acquireRelease(
    Effect.async<Effect.Effect<void>, ListenError>((resume) => {
      const protocol = routes[0]?.protocol
      const onRequest = (req: IncomingMessage, res: ServerResponse) => {
        // Credentials first: a request without them costs no read, no admission, no other count.
        const auth = security.auth
        if (auth !== undefined && !auth.check(req.headers.authorization)) {
          if (protocol !== undefined) {
            telemetry.receiverAuthFailures.inc({ protocol })
            telemetry.receiverRequests.inc({ protocol, code: "401" })
          }
          res.shouldKeepAlive = false
          res.setHeader("www-authenticate", [...auth.challenges])
          send(res, textReply(401, "missing or invalid credentials"))
          return
        }
        const url = req.url ?? "/"
        const path = url.indexOf("?") === -1 ? url : url.slice(0, url.indexOf("?"))
        const route = routes.find((r) => r.path === path)
        if (route === undefined) {
          // Counted under the receiver's protocol: a sender pointed at the wrong path shows up.
          if (protocol !== undefined) telemetry.receiverRequests.inc({ protocol, code: "404" })
          send(res, textReply(404, `not found: ${path}`))
          return
        }
        const count = (status: number) =>
          telemetry.receiverRequests.inc({ protocol: route.protocol, code: String(status) })
        if (req.method !== route.method) {
          count(405)
          send(
            res,
            textReply(405, `method ${req.method} not allowed; use ${route.method}`, { allow: route.method }),
          )
          return
        }
        const declared = Number(req.headers["content-length"])
        const charge = Math.min(
          Number.isFinite(declared) && declared >= 0 ? declared : UNDECLARED_BYTES,
          route.maxRequestBytes,
        )
        if (!admission.admit(charge)) {
          telemetry.receiverRefused.inc({ protocol: route.protocol, reason: "memory" })
          const reply = route.refused(req, "memory limit reached, retry later", REFUSAL_RETRY_AFTER_MS)
          count(reply.status)
          // The body is not read: the connection closes after the answer rather than draining it.
          res.shouldKeepAlive = false
          send(res, reply)
          return
        }
        let released = false
        const answer = (reply: Reply) => {
          if (!released) {
            released = true
            admission.release(charge)
          }
          count(reply.status)
          if (!res.destroyed) send(res, reply)
        }
        const failed = (e: unknown) => {
          onError(e)
          answer(textReply(500, "internal error"))
        }
        readBody(req, route.maxRequestBytes).then(
          (body) => {
            if (body._tag === "TooLarge")
              return answer(textReply(413, `request body exceeds ${body.limit} bytes`))
            if (body._tag === "Aborted") return answer(textReply(400, `request body: ${body.reason}`))
            let reply: Reply | Promise<Reply>
            try {
              reply = route.handle(req, body.bytes)
            } catch (e) {
              return failed(e)
            }
            if (reply instanceof Promise) reply.then(answer, failed)
            else answer(reply)
          },
          (e) => {
            onError(e)
            answer(textReply(500, "internal error"))
          },
        )
      }
      // One listener for the life of the process; TLS (on, off, mutual) follows the last reload.
      const server = new SwitchingHttpServer(onRequest, security)
      const fail = (e: Error) =>
        resume(
          Effect.fail(
            new ListenError({
              what,
              address: `${address.host ?? ""}:${address.port}`,
              reason: e.message,
            }),
          ),
        )
      // Tracks the connections from the start; the effect it returns is the bounded close.
      const drain = drainHttpServer(what, server, shutdown)
      server.listen(address.port, address.host, () => resume(Effect.succeed(drain)), fail)
    }),
    (drain) => drain,
  ).pipe(Effect.asVoid)
