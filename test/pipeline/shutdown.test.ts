/**
 * Shutdown is bounded whatever clients do: the real governor process, clients on raw TCP sockets
 * that trickle request bodies (or headers) to every HTTP server, an idle keep-alive connection, a
 * request that completes during the grace, and accepted datapoints buffered for a downstream that
 * is down. After SIGTERM the process exits 0 within `shutdown_timeout` plus the documented margin,
 * and every accepted datapoint that was not delivered is counted in the error log.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { encodeOtlpProtobuf } from "../../src/protocols/otlp/protobuf.js"
import {
  metricValue,
  otlpSeries,
  postOtlp,
  postPrw,
  prwBody,
  prwMany,
  startWithReceivers,
} from "../support/data-path.js"
import { type Governor, sleep, tempDir, waitFor } from "../support/governor.js"

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

/** The margin documented in docs/exporting.md#shutdown: the process exits within shutdown_timeout + 2 s. */
const MARGIN_MS = 2_000

/** A client on a raw TCP socket: what it sends, when, and everything the server answered. */
class RawClient {
  answer = ""
  closed = false
  private timer: NodeJS.Timeout | undefined

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding("latin1")
    socket.on("data", (d: string) => {
      this.answer += d
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      this.closed = true
      if (this.timer !== undefined) clearInterval(this.timer)
    })
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1", () => resolve(new RawClient(s)))
      s.once("error", reject)
    })
  }

  write(data: string | Uint8Array): void {
    if (!this.closed) this.socket.write(data)
  }

  /** Sends `piece` every `everyMs` until the socket closes (a slowloris client). */
  trickle(piece: string, everyMs: number): void {
    this.timer = setInterval(() => this.write(piece), everyMs)
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.socket.destroy()
  }
}

const open = async (port: number): Promise<RawClient> => {
  const c = await RawClient.connect(port)
  cleanup.push(() => c.close())
  return c
}

/** Request head of a body trickled one byte at a time: far more than ever arrives. */
const trickledPost = (path: string, contentType: string): string =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\nContent-Length: 1000000\r\n\r\n`

/** The datapoints each protocol's exporter reported as lost at shutdown, from the error log. */
const lostAtShutdown = (g: Governor): Record<string, number> => {
  const lost: Record<string, number> = {}
  for (const l of g.logs) {
    if (l.message !== "export abandoned at shutdown" && l.message !== "datapoints left unsent at shutdown")
      continue
    expect(l.level).toBe("error")
    const p = String(l.fields.protocol)
    lost[p] = (lost[p] ?? 0) + Number(l.fields.datapoints)
  }
  return lost
}

describe("shutdown with slow clients", () => {
  it("SIGTERM with clients trickling bodies to every HTTP server and a downstream that is down: exits 0 within shutdown_timeout + 2 s and logs every accepted datapoint as lost", async () => {
    const d = tempDir("mg-shutdown-")
    cleanup.push(() => fs.rmSync(d, { recursive: true, force: true }))
    // Down, and held by this test so that no other process can take the port: every export
    // attempt has its connection reset.
    const resetting = net.createServer((s) => s.resetAndDestroy())
    await new Promise<void>((r) => resetting.listen(0, "127.0.0.1", r))
    cleanup.push(() => new Promise((r) => resetting.close(r)))
    const down = (resetting.address() as net.AddressInfo).port
    const config = [
      "buffer:",
      "  flush_interval: 50ms",
      "exporters:",
      "  otlp:",
      "    timeout: 1s",
      "  prw:",
      "    timeout: 1s",
      "shutdown_timeout: 5s",
      "",
    ].join("\n")
    const { governor, httpPort, prwPort } = await startWithReceivers(d, config, {
      otlp: `http://127.0.0.1:${down}/v1/metrics`,
      prw: `http://127.0.0.1:${down}/api/v1/write`,
    })
    cleanup.push(() => governor.child.kill("SIGKILL"))

    // Accepted: 40 remote-write and 5 OTLP datapoints, held in the buffers while the exporters retry.
    expect((await postPrw(prwPort, prwMany("held", 40))).status).toBe(204)
    expect((await postOtlp(httpPort, otlpSeries("held", 5))).status).toBe(200)
    for (const protocol of ["otlp", "prw"]) {
      await waitFor(
        `${protocol} export retries`,
        async () =>
          (await metricValue(governor, "metrics_governor_export_requests_total", {
            protocol,
            result: "retry",
          })) >= 1
            ? true
            : undefined,
        15_000,
      )
    }

    // Slow clients: bodies trickled to both receivers and to the control server, headers trickled to
    // the control server, and an idle keep-alive connection.
    const slowOtlp = await open(httpPort)
    slowOtlp.write(trickledPost("/v1/metrics", "application/x-protobuf"))
    slowOtlp.trickle("\n", 200)
    const slowPrw = await open(prwPort)
    slowPrw.write(trickledPost("/api/v1/write", "application/x-protobuf"))
    slowPrw.trickle("\n", 200)
    const slowControl = await open(governor.statsPort)
    slowControl.write(trickledPost("/-/reload", "application/json"))
    slowControl.trickle("x", 200)
    const slowHeaders = await open(governor.statsPort)
    slowHeaders.write("GET /metrics HTTP/1.1\r\nHost: x\r\n")
    slowHeaders.trickle("X-Slow: 1\r\n", 200)
    const idle = await open(httpPort)
    idle.write("GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
    await waitFor("the idle connection's answer", () => (idle.answer.includes("\r\n\r\n") ? true : undefined))

    // In progress at SIGTERM, complete shortly after: answered, and its datapoints are ours.
    const late = prwBody(prwMany("late", 7))
    const lateClient = await open(prwPort)
    lateClient.write(
      `POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: ${late.length}\r\n\r\n`,
    )
    lateClient.write(late.subarray(0, 10))
    // And one OTLP request in progress the same way.
    const lateOtlp = encodeOtlpProtobuf(otlpSeries("late", 3))
    const lateOtlpClient = await open(httpPort)
    lateOtlpClient.write(
      `POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: ${lateOtlp.length}\r\n\r\n`,
    )
    lateOtlpClient.write(lateOtlp.subarray(0, 5))
    await sleep(500)

    const sent = Date.now()
    governor.signal("SIGTERM")
    await sleep(200)
    lateClient.write(late.subarray(10))
    lateOtlpClient.write(lateOtlp.subarray(5))
    const exit = await governor.waitForExit(5_000 + MARGIN_MS + 5_000)
    expect(exit.code).toBe(0)
    expect(exit.at - sent).toBeLessThan(5_000 + MARGIN_MS)

    expect(lateClient.answer).toMatch(/^HTTP\/1\.1 204 /)
    expect(lateOtlpClient.answer).toMatch(/^HTTP\/1\.1 200 /)
    expect(idle.closed).toBe(true)
    for (const c of [slowOtlp, slowPrw]) expect(c.answer).not.toMatch(/^HTTP\/1\.1 2/)
    // Everything accepted and not delivered is counted, and logged at error.
    expect(lostAtShutdown(governor)).toEqual({ otlp: 5 + 3, prw: 40 + 7 })
    // The flush had what was left of shutdown_timeout since `stopping`, not a fresh one of its own.
    const stopping = governor.logs.find((l) => l.message === "metrics-governor stopping")
    const stoppedAt = Date.parse(stopping?.ts ?? "")
    for (const l of governor.logs.filter((l) => l.message === "export abandoned at shutdown")) {
      expect(Date.parse(l.ts) - stoppedAt).toBeLessThan(5_000 + 500)
    }
    const cut = governor.logs.filter((l) => l.message === "connections still open at shutdown closed")
    expect(cut.map((l) => l.fields.server).sort()).toEqual(
      ["OTLP/HTTP receiver", "control server", "remote-write receiver"].sort(),
    )
    // Cut at the end of the grace (a fifth of shutdown_timeout), before the exporters' flush.
    for (const l of cut) {
      expect(Date.parse(l.ts) - stoppedAt).toBeLessThan(1_000 + 500)
      expect(l.fields.connections).toBeGreaterThanOrEqual(1)
    }
  }, 40_000)
})
