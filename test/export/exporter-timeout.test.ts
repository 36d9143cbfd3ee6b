/**
 * The exporter's request timeout, in process, against raw loopback sockets, with the garbage
 * collector running all the time: a downstream that accepts and never answers, and one that answers
 * its headers and then trickles the body, must both be cut off at `timeout` on every attempt, so
 * retries keep coming at the pace of timeout + backoff for as long as the downstream hangs.
 *
 * A timeout made of `AbortSignal.any([…, AbortSignal.timeout(ms)])` loses its timer when the
 * collector reclaims the timeout signal (only weakly held by the combined one): the first attempt
 * then hangs for good. A `gc()` every 100 ms reproduces that at once.
 */
import * as net from "node:net"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { afterEach, describe, expect, it } from "vitest"
import { startTextExporter } from "../support/exporter.js"
import { sleep } from "../support/governor.js"

v8.setFlagsFromString("--expose-gc")
const gc = vm.runInNewContext("gc") as () => void

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

interface Connection {
  readonly opened: number
  /** When the first bytes of a request arrived (undici may open a connection it does not use). */
  requested?: number
  closed?: number
}

/** A TCP server on loopback that records when each connection opened, was used and closed. */
const rawServer = async (onConnection: (socket: net.Socket) => void) => {
  const connections: Array<Connection> = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    const c: Connection = { opened: Date.now() }
    connections.push(c)
    sockets.add(socket)
    socket.once("data", () => {
      c.requested = Date.now()
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      c.closed = Date.now()
      sockets.delete(socket)
    })
    onConnection(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  cleanup.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  )
  return {
    connections,
    /** The connections a request was sent on: one per attempt. */
    attempts: () => connections.filter((c) => c.requested !== undefined),
    port: (server.address() as net.AddressInfo).port,
  }
}

/** Runs one exporter in this process until the test ends. */
const startExporter = async (endpoint: string, timeoutMs: number) => {
  const { buffer, telemetry, stop } = await startTextExporter(endpoint, {
    timeoutMs,
    minBackoffMs: 20,
    maxBackoffMs: 100,
  })
  cleanup.push(stop)
  buffer.push({ payload: "one", datapoints: 1, bytes: 3, at: Date.now() })
  return { buffer, telemetry }
}

/** Collects garbage every 100 ms until the test ends. */
const collectGarbage = () => {
  const timer = setInterval(gc, 100)
  cleanup.push(() => clearInterval(timer))
}

/**
 * Attempts kept coming until the end: at one per timeout (200 ms) + pause (at most 100 ms), about
 * thirteen in 4 s; far fewer on a loaded machine (a full collection every 100 ms is not cheap), but
 * several, and the last one recent. Abandoned connections do not pile up (undici closes an aborted
 * request's socket lazily, so one or two may still be open).
 */
const expectPaced = (connections: ReadonlyArray<Connection>) => {
  const attempts = connections.filter((c) => c.requested !== undefined)
  expect(attempts.length).toBeGreaterThanOrEqual(4)
  expect(Date.now() - (attempts.at(-1)?.requested ?? 0)).toBeLessThan(2_000)
  expect(connections.filter((c) => c.closed === undefined).length).toBeLessThanOrEqual(3)
}

describe("exporter: the request timeout survives garbage collection", () => {
  it("a downstream that accepts and never answers: every attempt is cut off at the timeout, attempts keep coming", async () => {
    const { connections, port } = await rawServer((socket) => socket.on("data", () => {}))
    collectGarbage()
    await startExporter(`http://127.0.0.1:${port}/write`, 200)
    await sleep(4_000)
    // Without the fix there is exactly one attempt, hanging to the end.
    expectPaced(connections)
  })

  it("a 2xx whose body is still trickling at the timeout: delivered once, not sent again", async () => {
    const { attempts, port } = await rawServer((socket) => {
      socket.once("data", () => {
        socket.write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n")
        const drip = setInterval(() => {
          if (socket.destroyed) clearInterval(drip)
          else socket.write("x")
        }, 20)
        socket.on("close", () => clearInterval(drip))
      })
    })
    const { telemetry } = await startExporter(`http://127.0.0.1:${port}/write`, 200)
    await sleep(1_500)
    expect(attempts()).toHaveLength(1)
    const sent = await telemetry.datapointsSent.get()
    expect(sent.values.find((v) => v.labels.protocol === "prw")?.value).toBe(1)
  })

  it("a downstream that sends a 500's headers and then trickles its body: the timeout covers the body too", async () => {
    const { connections, port } = await rawServer((socket) => {
      socket.once("data", () => {
        socket.write("HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n\r\n")
        const drip = setInterval(() => {
          if (socket.destroyed) clearInterval(drip)
          else socket.write("x")
        }, 20)
        socket.on("close", () => clearInterval(drip))
      })
    })
    collectGarbage()
    await startExporter(`http://127.0.0.1:${port}/write`, 200)
    await sleep(4_000)
    expectPaced(connections)
  })
})
