import * as fs from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import { metricValue, postPrw, prwMany, startWithReceivers } from "../support/data-path.js"
import { tempDir, waitFor } from "../support/governor.js"
import { Sink, type SinkAnswer } from "../support/sink.js"

/**
 * A downstream that is sick in every way at once: down for a while (the circuit opens, then closes),
 * then answering 500, 429 with Retry-After, 413, a 400 for one bad request, and hanging past the
 * timeout, in turn. Every datapoint accepted is delivered or counted lost with a reason, and the
 * counters add up: received = sent + lost, and the sink got exactly what was counted sent.
 */

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

describe("a sick downstream costs delay, never silent loss", () => {
  it("received = sent + lost (by reason); the sink holds exactly what was counted sent; the circuit opens while it is down and closes when it is back", async () => {
    const dir = tempDir("mg-sick-")
    cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }))
    let down = true
    let turn = 0
    const sink = await Sink.start("prw", {
      respond: (req): SinkAnswer => {
        if (down) return { status: 503 }
        if (req.names.includes("bad_request")) return { status: 400, body: "bad series in this request" }
        // The first answer once it is back is a success: the backoff of the outage starts over.
        switch (turn++ % 6) {
          case 1:
            return { status: 500, body: "internal error" }
          case 2:
            return { status: 429, headers: { "retry-after": "0" } }
          case 3:
            return req.names.length > 10 ? { status: 413, body: "too large" } : { status: 204 }
          case 4:
            return "hang"
          default:
            return { status: 204 }
        }
      },
    })
    cleanup.push(() => sink.close())
    const { governor: gov, prwPort } = await startWithReceivers(
      dir,
      "exporters:\n  prw:\n    timeout: 300ms\nbuffer:\n  flush_interval: 50ms\n  batch_size: 40\nshutdown_timeout: 2s\n",
      { prw: sink.url },
    )
    cleanup.push(() => gov.stop())

    // Down: accepted and held; the circuit opens after 5 failures in a row.
    for (let i = 0; i < 5; i++)
      expect((await postPrw(prwPort, prwMany(`while_down_${i}`, 10))).status).toBe(204)
    await waitFor(
      "the circuit to open",
      async () =>
        (await metricValue(gov, "metrics_governor_export_circuit_open", { protocol: "prw" })) === 1
          ? true
          : undefined,
      15_000,
    )
    expect(gov.logs.some((l) => l.message.startsWith("downstream unavailable: circuit open"))).toBe(true)

    // Back, but sick: every kind of answer in turn.
    down = false
    for (let i = 0; i < 20; i++) {
      const name = i === 7 ? "bad_request" : `sick_${i}`
      expect((await postPrw(prwPort, prwMany(name, 10))).status).toBe(204)
    }
    await waitFor(
      "everything delivered or counted lost",
      async () =>
        (await metricValue(gov, "metrics_governor_buffer_datapoints", { protocol: "prw" })) === 0
          ? true
          : undefined,
      30_000,
    )
    const received = await metricValue(gov, "metrics_governor_datapoints_received_total", { protocol: "prw" })
    const sent = await metricValue(gov, "metrics_governor_datapoints_sent_total", { protocol: "prw" })
    const lost = await metricValue(gov, "metrics_governor_export_datapoints_lost_total", { protocol: "prw" })
    expect(received).toBe(250)
    expect(sent + lost).toBe(received)
    expect(sink.datapoints).toBe(sent)
    // Only the bad request is refused for good: 413s split the batch, everything else is retried.
    expect(
      await metricValue(gov, "metrics_governor_export_datapoints_lost_total", {
        protocol: "prw",
        reason: "rejected_by_downstream",
      }),
    ).toBe(10)
    expect(lost).toBe(10)
    expect(await metricValue(gov, "metrics_governor_export_circuit_open", { protocol: "prw" })).toBe(0)
    expect(gov.logs.some((l) => l.message === "downstream available again: circuit closed")).toBe(true)
    sink.release()
  }, 60_000)
})
