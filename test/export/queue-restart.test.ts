import { afterEach, describe, expect, it } from "vitest"
import type { WriteRequest } from "../../src/protocols/prw/types.js"
import { postPrw, prwMany, queuedGovernor } from "../support/data-path.js"
import { type Governor, waitFor } from "../support/governor.js"
import { Sink } from "../support/sink.js"

/**
 * The durable queue as an operator meets it: a downstream that is down, a governor stopped (or
 * killed) with data accepted, a restart with the same queue path, and every accepted series
 * arriving once the downstream is back.
 */

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

const setup = async (queue: string) => {
  let up = false
  const sink = await Sink.start("prw", { respond: () => (up ? { status: 204 } : { status: 503 }) })
  cleanup.push(() => sink.close())
  const { prwPort, start } = await queuedGovernor(queue, () => sink.url, cleanup)
  return { sink, prwPort, start, setUp: () => (up = true) }
}

/** Sends `n` requests of 10 series each, named `<prefix>_<i>`; every one must be accepted (204). */
const send = async (port: number, prefix: string, n: number): Promise<Set<string>> => {
  const names = new Set<string>()
  for (let i = 0; i < n; i++) {
    const answer = await postPrw(port, prwMany(`${prefix}_${i}`, 10))
    expect(answer.status).toBe(204)
    names.add(`${prefix}_${i}`)
  }
  return names
}

/** Metric names in the requests the sink answered 2xx. */
const deliveredNames = (sink: Sink<WriteRequest>) =>
  new Set(
    sink.delivered.flatMap((w) =>
      w.timeseries.map((s) => s.labels.find((l) => l.name === "__name__")?.value),
    ),
  )

/** Waits until the sink accepted a series of every name. */
const allDelivered = (sink: Sink<WriteRequest>, names: ReadonlySet<string>) =>
  waitFor(
    "every accepted series delivered",
    async () => {
      const got = deliveredNames(sink)
      return [...names].every((n) => got.has(n)) ? true : undefined
    },
    10_000,
  )

const recovered = (gov: Governor) =>
  gov.logs.find((l) => l.message === "durable queue opened" && l.fields.protocol === "prw")?.fields

describe("durable queue across restarts", () => {
  it("SIGTERM with the downstream down: the governor exits within shutdown_timeout, nothing is counted lost, and the next start delivers every accepted series", async () => {
    const t = await setup("    sync_interval: 1s\n")
    const first = await t.start()
    const names = await send(t.prwPort, "before_stop", 20)
    await waitFor("a failed export", async () => (t.sink.requests.length > 0 ? true : undefined), 5_000)
    const stopAt = Date.now()
    first.signal("SIGTERM")
    const exit = await first.waitForExit(6_000)
    expect(exit.code).toBe(0)
    expect(exit.at - stopAt).toBeLessThan(2_000 + 2_000)
    expect(
      first.logs.some((l) => l.message === "datapoints left in the durable queue for the next start"),
    ).toBe(true)
    expect(first.logs.some((l) => l.message === "datapoints left unsent at shutdown")).toBe(false)

    t.setUp()
    const second = await t.start()
    expect(recovered(second)).toMatchObject({ recovered_datapoints: 200 })
    await allDelivered(t.sink, names)
    await waitFor(
      "the queue empty",
      async () =>
        (await second.metric('metrics_governor_queue_datapoints{protocol="prw"}')) === 0 ? true : undefined,
      5_000,
    )
    expect(await second.metric('metrics_governor_queue_bytes{protocol="prw"}')).toBe(0)
  }, 40_000)

  it("kill -9 with sync_interval 0s: every request answered 204 is delivered after the restart", async () => {
    const t = await setup("    sync_interval: 0s\n")
    const first = await t.start()
    const names = await send(t.prwPort, "before_kill", 15)
    first.signal("SIGKILL")
    await first.waitForExit(5_000)
    t.setUp()
    const second = await t.start()
    expect(recovered(second)).toMatchObject({ recovered_datapoints: 150 })
    await allDelivered(t.sink, names)
  }, 40_000)

  it("full_behavior reject: a full queue makes the receiver push back (503 + Retry-After), counted as buffer_full; the queue gauges show what waits", async () => {
    const t = await setup("    max_bytes: 3000\n    full_behavior: reject\n")
    const gov = await t.start()
    let refused = 0
    for (let i = 0; i < 40 && refused === 0; i++) {
      const a = await postPrw(t.prwPort, prwMany(`fill_${i}`, 20))
      if (a.status === 503) {
        refused++
        expect(a.headers["retry-after"]).toBe("1")
      } else expect(a.status).toBe(204)
    }
    expect(refused).toBe(1)
    expect(
      await gov.metric('metrics_governor_receiver_refused_total{protocol="prw",reason="buffer_full"}'),
    ).toBe(1)
    expect(await gov.metric('metrics_governor_queue_bytes{protocol="prw"}')).toBeGreaterThan(0)
    expect(await gov.metric('metrics_governor_queue_datapoints{protocol="prw"}')).toBeGreaterThan(0)
    expect(
      await gov.metric('metrics_governor_queue_oldest_age_seconds{protocol="prw"}'),
    ).toBeGreaterThanOrEqual(0)
  }, 30_000)
})
