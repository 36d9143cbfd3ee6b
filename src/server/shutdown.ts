import type { Socket } from "node:net"
import { Context, Effect } from "effect"
import { logWarn } from "../telemetry/log.js"

/** The part of `shutdown_timeout` that requests in progress get to finish: a fifth, at most 5 s. */
export const graceOf = (shutdownTimeoutMs: number): number =>
  Math.min(5_000, Math.floor(shutdownTimeoutMs / 5))

/**
 * One clock for the whole shutdown, so that its phases share one budget instead of each taking its
 * own: `begin` (idempotent) marks the start and makes every server stop accepting at once; requests
 * in progress have until `graceDeadline` to finish, then their connections are closed; the exporters
 * flush what is buffered with what is left until `deadline` (start + `shutdown_timeout`).
 */
export interface ShutdownClock {
  readonly timeoutMs: number
  readonly graceMs: number
  /** Marks the start of shutdown (the first call counts) and runs every `onBegin` callback. */
  readonly begin: () => void
  /** Runs `stop` when shutdown begins (at once if it has begun): a server stops accepting. */
  readonly onBegin: (stop: () => void) => void
  /** Milliseconds left until the end of the grace for requests in progress (0 when passed). */
  readonly graceLeftMs: () => number
  /** Milliseconds left of `shutdown_timeout` (all of it before shutdown begins; 0 when passed). */
  readonly remainingMs: () => number
  /** A new `shutdown_timeout` (a reload) for a shutdown that has not begun; the grace follows it. */
  readonly retune: (timeoutMs: number) => void
}

export const makeShutdownClock = (initialMs: number, initialGraceMs?: number): ShutdownClock => {
  let startedAt: number | undefined
  let timeoutMs = initialMs
  let graceMs = initialGraceMs ?? graceOf(initialMs)
  const stops: Array<() => void> = []
  const left = (span: number) => (startedAt === undefined ? span : Math.max(0, startedAt + span - Date.now()))
  return {
    get timeoutMs() {
      return timeoutMs
    },
    get graceMs() {
      return graceMs
    },
    retune: (next) => {
      if (startedAt !== undefined) return
      timeoutMs = next
      graceMs = graceOf(next)
    },
    begin: () => {
      if (startedAt !== undefined) return
      startedAt = Date.now()
      for (const stop of stops.splice(0)) stop()
    },
    onBegin: (stop) => {
      if (startedAt === undefined) stops.push(stop)
      else stop()
    },
    graceLeftMs: () => left(graceMs),
    remainingMs: () => left(timeoutMs),
  }
}

/** The shutdown clock of the running program (provided by the data path, read by the control server). */
export class Shutdown extends Context.Tag("metrics-governor/Shutdown")<Shutdown, ShutdownClock>() {}

/** True when `done` settles within `ms`, false when the time runs out first. */
const closedWithin = (done: Promise<void>, ms: number): Promise<boolean> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    done.then(() => {
      clearTimeout(timer)
      resolve(true)
    })
  })

/**
 * What `drainHttpServer` needs of a server: a `node:http` server, or a listener that hands its
 * connections to several of them (a receiver whose TLS a reload turns on or off).
 */
export interface DrainableServer {
  readonly listening: boolean
  on(event: "connection", listener: (socket: Socket) => void): unknown
  /** Stops accepting; `done` once every connection it accepted has closed. */
  close(done: () => void): unknown
  closeIdleConnections(): void
  closeAllConnections(): void
}

/**
 * Bounded close of a `node:http` server: when shutdown begins it stops accepting and closes its idle
 * keep-alive connections (and each one that becomes idle after its answer); requests in progress get
 * until the end of the grace; the connections still open then (a client trickling its body or its
 * headers) are destroyed and counted in a warning. Resolves once the server is closed.
 */
export const drainHttpServer = (what: string, server: DrainableServer, clock: ShutdownClock) => {
  const sockets = new Set<Socket>()
  server.on("connection", (s: Socket) => {
    sockets.add(s)
    s.once("close", () => sockets.delete(s))
  })
  let closed: Promise<void> | undefined
  const stopAccepting = (): Promise<void> => {
    if (closed !== undefined) return closed
    // A keep-alive connection whose answer is sent while we wait becomes idle: closed within 50 ms.
    const idleSweep = setInterval(() => server.closeIdleConnections(), 50)
    idleSweep.unref()
    closed = new Promise<void>((resolve) => {
      if (!server.listening) resolve()
      else server.close(() => resolve())
    }).finally(() => clearInterval(idleSweep))
    server.closeIdleConnections()
    return closed
  }
  clock.onBegin(() => void stopAccepting())
  return Effect.gen(function* () {
    clock.begin()
    const done = stopAccepting()
    // A plain race: this runs as a finalizer of an interrupted fiber, where an interruptible
    // region (which `Effect.timeout` would need to stop the wait) ends at once.
    const inTime = yield* Effect.promise(() => closedWithin(done, clock.graceLeftMs()))
    if (inTime) return
    const open = sockets.size
    server.closeAllConnections()
    for (const s of sockets) s.destroy()
    yield* logWarn("connections still open at shutdown closed", {
      server: what,
      connections: open,
      grace_ms: clock.graceMs,
    })
    yield* Effect.promise(() => done)
  })
}
