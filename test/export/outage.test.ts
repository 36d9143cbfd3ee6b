import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { HEADER_BYTES } from "../../src/export/queue.js"
import type { WriteRequest } from "../../src/protocols/prw/types.js"
import {
  metricValue,
  postPrw,
  prwRequest,
  prwSeries,
  queuedGovernor,
  settledMetricValue,
} from "../support/data-path.js"
import { freePort, type Governor, waitFor } from "../support/governor.js"
import { Prometheus, prometheusAvailable } from "../support/prometheus.js"
import { Sink } from "../support/sink.js"

/**
 * The durable queue at the scale of an outage: 100,000 datapoints accepted while the downstream is
 * away, the governor stopped (`SIGTERM`) or killed (`kill -9`), restarted on the same queue path,
 * and every datapoint arriving downstream, counted one by one; and a queue whose files were
 * damaged while the governor was down.
 */

const SERIES = 1_000
const REQUESTS = 100
const TOTAL = SERIES * REQUESTS
/** Sample times: request `r` carries `T0 + r` seconds, recent enough for Prometheus to append. */
const T0 = Date.now() - 10 * 60_000

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

/**
 * Request `r`: `outage_points{id="0".."999"}`, one sample each at `T0 + r` s with value `r`; with
 * `padded`, each series also carries a label of digits that hardly repeat (bodies that compress
 * poorly, so the queue's records fill several segments).
 */
const request = (r: number, padded = false): WriteRequest =>
  prwRequest(
    Array.from({ length: SERIES }, (_, i) =>
      prwSeries(
        {
          __name__: "outage_points",
          id: String(i),
          ...(padded
            ? { pad: String(((r * SERIES + i) * 2654435761) % 1e12).padStart(24, String(i % 10)) }
            : {}),
        },
        [r],
        T0 + r * 1000,
      ),
    ),
  )

/** Sends the 100 requests in order; every one must be accepted (204). */
const sendAll = async (port: number, padded = false) => {
  for (let r = 0; r < REQUESTS; r++) expect((await postPrw(port, request(r, padded))).status).toBe(204)
}

const setup = (queue: string, endpoint: () => string) => queuedGovernor(queue, endpoint, cleanup)

const recovered = (gov: Governor) =>
  gov.logs.find((l) => l.message === "durable queue opened" && l.fields.protocol === "prw")?.fields

const queueEmpty = (gov: Governor, timeoutMs = 30_000) =>
  waitFor(
    "the durable queue empty",
    async () =>
      (await metricValue(gov, "metrics_governor_queue_datapoints", { protocol: "prw" })) === 0
        ? true
        : undefined,
    timeoutMs,
  )

/** How many times the sink accepted each (series, time): every key of what was sent is `id/r`. */
const deliveries = (sink: Sink<WriteRequest>): Map<string, number> => {
  const seen = new Map<string, number>()
  for (const w of sink.delivered)
    for (const s of w.timeseries) {
      const id = s.labels.find((l) => l.name === "id")?.value
      for (const p of s.samples) {
        const key = `${id}/${(p.timestamp - T0) / 1000}`
        seen.set(key, (seen.get(key) ?? 0) + 1)
      }
    }
  return seen
}

const available = prometheusAvailable()
if (!available && process.env.CI === "true")
  throw new Error("`prometheus` must be installed in CI (see .ci/run)")

describe("an outage and a restart", () => {
  it.runIf(available)(
    "Prometheus down, 100,000 datapoints accepted, SIGTERM, Prometheus up, restart on the same path: Prometheus holds all 100,000, none sent twice",
    async () => {
      const promPort = await freePort()
      const t = await setup("    sync_interval: 1s\n", () => `http://127.0.0.1:${promPort}/api/v1/write`)
      const first = await t.start()
      await sendAll(t.prwPort)
      first.signal("SIGTERM")
      expect((await first.waitForExit(8_000)).code).toBe(0)
      const left = first.logs.find(
        (l) => l.message === "datapoints left in the durable queue for the next start",
      )
      expect(left?.fields).toMatchObject({ datapoints: TOTAL })

      const prom = await Prometheus.start({ port: promPort })
      cleanup.push(() => prom.stop())
      const second = await t.start()
      expect(recovered(second)).toMatchObject({ recovered_datapoints: TOTAL })
      await queueEmpty(second)
      // Sent once each: the first process sent nothing, the second exactly what was accepted.
      expect(
        await settledMetricValue(
          second,
          "metrics_governor_datapoints_sent_total",
          { protocol: "prw" },
          TOTAL,
        ),
      ).toBe(TOTAL)
      const at = T0 + REQUESTS * 1000
      const samples = await prom.query("sum(count_over_time(outage_points[30m]))", at)
      expect(samples[0]?.value).toBe(TOTAL)
      expect((await prom.query("count(count_over_time(outage_points[30m]))", at))[0]?.value).toBe(SERIES)
    },
    90_000,
  )

  it("kill -9 mid-delivery with sync_interval 0s: after the restart the sink holds every one of the 100,000 datapoints; the ones sent twice are at most one export batch", async () => {
    const sink = await Sink.start("prw", { answerDelayMs: 150 })
    cleanup.push(() => sink.close())
    const t = await setup("    sync_interval: 0s\n", () => sink.url)
    const first = await t.start()
    await sendAll(t.prwPort)
    await waitFor("a delivery", async () => (sink.datapoints > 0 ? true : undefined), 10_000)
    first.signal("SIGKILL")
    await first.waitForExit(5_000)
    const beforeKill = sink.datapoints
    expect(beforeKill).toBeLessThan(TOTAL)

    sink.answerDelayMs = 0
    const second = await t.start()
    await queueEmpty(second)
    const seen = deliveries(sink)
    expect(seen.size).toBe(TOTAL)
    const twice = [...seen.values()].reduce((n, c) => n + (c - 1), 0)
    // One export (buffer.batch_size, 5,000 datapoints) is in flight at a time: only an export
    // answered 2xx whose acknowledgement the kill cut off is sent again.
    expect(twice).toBeLessThanOrEqual(5_000)
    expect(sink.datapoints).toBe(TOTAL + twice)
  }, 90_000)

  it("a segment with flipped bytes and one cut short while the governor was down: it starts, counts and logs the damage, and sends every record that checks out", async () => {
    let up = false
    const sink = await Sink.start("prw", { respond: () => ({ status: up ? 204 : 503 }) })
    cleanup.push(() => sink.close())
    // 8 MiB per protocol: 1 MiB segments, so the 100 requests span several.
    const t = await setup("    sync_interval: 1s\n    max_bytes: 8388608\n", () => sink.url)
    const first = await t.start()
    await sendAll(t.prwPort, true)
    first.signal("SIGTERM")
    expect((await first.waitForExit(8_000)).code).toBe(0)

    // Every record on disk: its file, offset, size and datapoints.
    const files = fs
      .readdirSync(t.queueDir, { recursive: true, encoding: "utf8" })
      .filter((f) => f.endsWith(".seg"))
      .sort()
      .map((f) => path.join(t.queueDir, f))
    expect(files.length).toBeGreaterThanOrEqual(2)
    const records = files.flatMap((file) => {
      const bytes = fs.readFileSync(file)
      const out: Array<{ file: string; offset: number; size: number; datapoints: number; index: number }> = []
      for (let o = 0; o < bytes.length; ) {
        const view = new DataView(bytes.buffer, bytes.byteOffset + o)
        const size = HEADER_BYTES + view.getUint32(4, true)
        out.push({ file, offset: o, size, datapoints: view.getUint32(8, true), index: 0 })
        o += size
      }
      return out
    })
    records.forEach((r, i) => {
      r.index = i
    })
    expect(records.length).toBe(REQUESTS)
    // Flip bytes in the middle of the payload of the second record of the first segment...
    const flipped = records[1] as (typeof records)[number]
    const damaged = fs.readFileSync(flipped.file)
    for (let k = flipped.offset + HEADER_BYTES + 100; k < flipped.offset + HEADER_BYTES + 104; k++)
      damaged[k] = (damaged[k] as number) ^ 0x5a
    fs.writeFileSync(flipped.file, damaged)
    // ...and cut the last segment in the middle of its last record.
    const last = records[records.length - 1] as (typeof records)[number]
    fs.truncateSync(last.file, last.offset + Math.floor(last.size / 2))
    const lostBytes = flipped.size + Math.floor(last.size / 2)
    const lostIds = new Set([flipped.index, last.index])

    up = true
    const second = await t.start()
    await queueEmpty(second)
    expect(await metricValue(second, "metrics_governor_queue_corrupt_bytes_total", { protocol: "prw" })).toBe(
      lostBytes,
    )
    const logged = second.logs.filter((l) => l.message === "durable queue: corrupt data skipped")
    expect(logged.map((l) => l.level)).toEqual(["error", "error"])
    expect(logged.map((l) => String(l.fields.where))).toEqual([
      expect.stringContaining(path.basename(flipped.file)),
      expect.stringContaining(path.basename(last.file)),
    ])
    // Every other record arrived, once: request r is record r (one record per accepted request).
    const seen = deliveries(sink)
    const expected = Array.from({ length: REQUESTS }, (_, r) => r).filter((r) => !lostIds.has(r))
    expect(seen.size).toBe(expected.length * SERIES)
    for (const r of expected) expect(seen.get(`0/${r}`)).toBe(1)
    for (const r of lostIds) expect(seen.has(`0/${r}`)).toBe(false)
    expect(await metricValue(second, "metrics_governor_datapoints_sent_total", { protocol: "prw" })).toBe(
      expected.length * SERIES,
    )
  }, 90_000)
})
