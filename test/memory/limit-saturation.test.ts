/**
 * `-memory-limit` under saturating load on two receivers at once, with a downstream that answers
 * every export request after 200 ms: resident memory stays under the limit, both receivers push
 * back, and once the load stops the governor delivers everything it accepted and its memory falls.
 */
import * as fs from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import { encodeOtlpProtobuf } from "../../src/protocols/otlp/protobuf.js"
import { otlpGauge, send } from "../support/data-path.js"
import { freePort, type Governor, sleep, startGovernor, waitFor } from "../support/governor.js"
import { remoteWriteBody } from "../support/remote-write.js"
import { Sink } from "../support/sink.js"

const MiB = 1024 * 1024
const LIMIT = 256 * MiB
const SENDERS = 8 // per protocol
const LOAD_MS = 15_000
const MAX_REQUESTS = 3_000 // per sender: every loop is bounded in count as well as in time
const SERIES = 2_000 // per request
const ANSWER_DELAY_MS = 200

const rssOf = (pid: number): number => {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return Number(m?.[1] ?? Number.NaN) * 1024
  } catch {
    return Number.NaN
  }
}

/** A random suffix: labels that do not repeat make bodies that compress poorly. */
const noise = () => `${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`

let gov: Governor | undefined
const sinks: Array<{ close: () => Promise<void> }> = []
afterEach(async () => {
  await gov?.stop()
  gov = undefined
  for (const s of sinks.splice(0)) await s.close()
})

describe("-memory-limit 256MiB, remote write and OTLP/HTTP saturated at once, downstream answering in 200 ms", () => {
  it("RSS stays under the limit, both receivers refuse (counted), the buffers drain after the load, RSS falls, and every accepted datapoint is delivered", async () => {
    const prwSink = await Sink.start("prw", { answerDelayMs: ANSWER_DELAY_MS })
    const otlpSink = await Sink.start("otlp", { answerDelayMs: ANSWER_DELAY_MS })
    sinks.push(prwSink, otlpSink)
    const prwPort = await freePort()
    const httpPort = await freePort()
    gov = await startGovernor({
      args: [
        "-prw-listen",
        `127.0.0.1:${prwPort}`,
        "-http-listen",
        `127.0.0.1:${httpPort}`,
        "-prw-exporter-endpoint",
        prwSink.url,
        "-exporter-endpoint",
        otlpSink.url,
        "-memory-limit",
        "256MiB",
      ],
      // As the container image starts it: through the launcher, which sizes the main thread's heap
      // for the limit (old generation 128 MiB, semi-space 2 MiB) and keeps malloc to two arenas.
      // Started as a plain `node dist/main.js`, with V8's default heap sizes, this load took the
      // process to 257-275 MiB; through the launcher, 240-246 MiB in development runs.
      launcher: true,
    })
    expect(await gov.metric("metrics_governor_memory_limit_bytes")).toBe(LIMIT)
    // The launcher sized the heap: V8's limit is the old generation (128 MiB) and the young one.
    const inForce = gov.stdout.split("\n").find((l) => l.includes('"memory limit in force"')) ?? ""
    expect(JSON.parse(inForce).fields.heap_limit_bytes).toBeLessThan(140 * MiB)
    const pid = gov.pid

    // 4 bodies per protocol, 2,000 series each with distinct long label values.
    const prwBodies = Array.from({ length: 4 }, (_, b) =>
      remoteWriteBody(
        Array.from({ length: SERIES }, (_, i) => ({
          labels: { __name__: `sat_prw_${b}`, id: `${i}-${noise()}`, pod: `pod-${i % 97}-${noise()}` },
          samples: [{ value: i, timestamp: 1_700_000_000_000 + i }],
        })),
      ),
    )
    const otlpBodies = Array.from({ length: 4 }, (_, b) =>
      encodeOtlpProtobuf(
        otlpGauge(
          `sat_otlp_${b}`,
          Array.from({ length: SERIES }, (_, i) => ({
            attributes: { id: `${i}-${noise()}`, pod: `pod-${i % 97}-${noise()}` },
            value: i,
          })),
        ),
      ),
    )

    let peak = 0
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid) || 0)
    }, 100)

    interface Tally {
      accepted: number
      refused: number
      other: number
      errors: number
    }
    const tally = {
      prw: { accepted: 0, refused: 0, other: 0, errors: 0 },
      otlp: { accepted: 0, refused: 0, other: 0, errors: 0 },
    }
    const deadline = Date.now() + LOAD_MS
    const sender = async (
      k: number,
      t: Tally,
      port: number,
      path: string,
      headers: Record<string, string>,
      bodies: ReadonlyArray<Uint8Array>,
      refusal: number,
    ) => {
      for (let n = 0; n < MAX_REQUESTS && Date.now() < deadline; n++) {
        try {
          const a = await send(port, {
            path,
            headers,
            body: bodies[(k + n) % bodies.length] as Uint8Array,
            timeoutMs: 10_000,
          })
          if (a.status >= 200 && a.status < 300) t.accepted++
          else if (a.status === refusal) {
            t.refused++
            // A sender would wait for the Retry-After of 1 s; a short pause keeps the pressure on.
            await sleep(20)
          } else t.other++
        } catch {
          // A refusal closes the connection without reading the body: the client may see a reset.
          t.errors++
          await sleep(20)
        }
      }
    }
    const prwHeaders = { "content-type": "application/x-protobuf", "content-encoding": "snappy" }
    const otlpHeaders = { "content-type": "application/x-protobuf" }
    await Promise.all([
      ...Array.from({ length: SENDERS }, (_, k) =>
        sender(k, tally.prw, prwPort, "/api/v1/write", prwHeaders, prwBodies, 503),
      ),
      ...Array.from({ length: SENDERS }, (_, k) =>
        sender(k, tally.otlp, httpPort, "/v1/metrics", otlpHeaders, otlpBodies, 429),
      ),
    ])
    const loadPeak = Math.max(peak, rssOf(pid) || 0)

    expect(gov.exit).toBeUndefined()
    const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`
    expect(loadPeak, `peak RSS under load ${mib(loadPeak)}`).toBeLessThan(LIMIT)
    expect(tally.prw.accepted).toBeGreaterThan(0)
    expect(tally.otlp.accepted).toBeGreaterThan(0)
    expect(tally.prw.other + tally.otlp.other).toBe(0)

    const refused = async (protocol: string) =>
      ((await gov?.metric(
        `metrics_governor_receiver_refused_total{protocol="${protocol}",reason="memory"}`,
      )) ?? 0) +
      ((await gov?.metric(
        `metrics_governor_receiver_refused_total{protocol="${protocol}",reason="buffer_full"}`,
      )) ?? 0)
    const refusedPrw = await refused("prw")
    const refusedOtlp = await refused("otlp")
    expect(refusedPrw).toBeGreaterThan(0)
    expect(refusedOtlp).toBeGreaterThan(0)
    // Every refusal the clients saw is counted (a reset connection may hide one from the client).
    expect(refusedPrw).toBeGreaterThanOrEqual(tally.prw.refused)
    expect(refusedOtlp).toBeGreaterThanOrEqual(tally.otlp.refused)

    // The drain: both buffers empty (accepted and not yet delivered = 0).
    const drainStart = Date.now()
    await waitFor(
      "both export buffers to be empty",
      async () => {
        const prw = await gov?.metric('metrics_governor_buffer_datapoints{protocol="prw"}')
        const otlp = await gov?.metric('metrics_governor_buffer_datapoints{protocol="otlp"}')
        return prw === 0 && otlp === 0 ? true : undefined
      },
      30_000,
      100,
    )
    const drainMs = Date.now() - drainStart
    // The drain is not under the receivers' push-back (no request arrives): the limit holds for it
    // too.
    const drainPeak = Math.max(peak, rssOf(pid) || 0)
    // After the drain, resident memory falls, but not back to idle: in development runs (2 shared
    // cores) it plateaued at about 237 MiB, some 100 MiB above the idle process: pages the
    // allocator and V8 keep once they have them. The lowest reading within 20 s of the drain was
    // 0.87-0.93 of the peak, so the bound is 0.95 of the peak (a bound near idle, or under the 75%
    // mark where the receivers take more than one request at a time again, would fail).
    const afterDrain = rssOf(pid)
    let low = afterDrain
    const fallDeadline = Date.now() + 20_000
    while (Date.now() < fallDeadline && low >= 0.95 * drainPeak) {
      await sleep(100)
      low = Math.min(low, rssOf(pid))
    }
    clearInterval(sampler)
    peak = Math.max(peak, rssOf(pid) || 0)
    expect(peak, `peak RSS, load and drain ${mib(peak)}`).toBeLessThan(LIMIT)
    expect(low, `RSS after the drain (${drainMs} ms) ${mib(low)}, peak ${mib(drainPeak)}`).toBeLessThan(
      0.95 * drainPeak,
    )

    // Counters against what the sink received.
    for (const [protocol, sink, t] of [
      ["prw", prwSink, tally.prw],
      ["otlp", otlpSink, tally.otlp],
    ] as const) {
      const received = await gov.metric(`metrics_governor_datapoints_received_total{protocol="${protocol}"}`)
      const sent = await gov.metric(`metrics_governor_datapoints_sent_total{protocol="${protocol}"}`)
      const lost =
        (await gov.metric(`metrics_governor_export_datapoints_lost_total{protocol="${protocol}"}`)) ?? 0
      expect(sink.undecodable).toEqual([])
      expect(sent).toBe(sink.datapoints)
      expect(lost).toBe(0)
      expect(received).toBe((sent ?? 0) + lost)
      // What the clients saw answered 2xx was accepted; a reset connection may hide an answer.
      expect(received).toBeGreaterThanOrEqual(t.accepted * SERIES)
      if (t.errors === 0) expect(received).toBe(t.accepted * SERIES)
    }
  }, 90_000)
})
