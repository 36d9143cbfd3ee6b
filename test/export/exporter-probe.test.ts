/**
 * While the head of the export queue is refused, the exporter probes the downstream with the next
 * data in the buffer. A request pushed while that probe is in flight is not part of it: it must stay
 * in the buffer and be sent later, not be taken (and acknowledged) with the probe's requests.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { startTextExporter } from "../support/exporter.js"
import { waitFor } from "../support/governor.js"

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

describe("exporter: probing past a refused request", () => {
  it("a request pushed while a probe is in flight is sent later, not taken with the probe", async () => {
    const item = (payload: string) => ({ payload, datapoints: 1, bytes: payload.length, at: Date.now() })
    const delivered: Array<string> = []
    let probes = 0
    const server = http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        const lines = Buffer.concat(chunks).toString("utf8").split("\n")
        if (lines.includes("poison")) {
          res.writeHead(500).end("refused: poison")
          return
        }
        // The probe is in flight: a receiver accepts another request meanwhile.
        if (lines.includes("probe") && probes++ === 0) exporter.buffer.push(item("late"))
        delivered.push(...lines)
        res.writeHead(204).end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const exporter = await startTextExporter(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, {
      timeoutMs: 2_000,
      minBackoffMs: 10,
      maxBackoffMs: 40,
    })
    cleanup.push(exporter.stop)
    const buffer = exporter.buffer
    // The refused request is taken alone; what follows it waits in the buffer for the probe.
    buffer.push(item("poison"))
    await waitFor("the refused request taken", () => (buffer.length === 0 ? true : undefined), 5_000, 5)
    buffer.push(item("probe"))
    await waitFor("the probe delivered", () => (delivered.includes("probe") ? true : undefined), 5_000)
    await waitFor(
      "the request pushed during the probe delivered",
      () => (delivered.includes("late") ? true : undefined),
      5_000,
    )
    expect(delivered.filter((l) => l === "probe" || l === "late")).toEqual(["probe", "late"])
  })
})
