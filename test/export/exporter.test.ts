/**
 * The exporters through the real governor process, against loopback sinks whose answers each test
 * controls: retries (5xx, 429 with Retry-After, connection refused), no retry on 4xx, backpressure
 * on a full buffer with nothing lost, headers and a rotating bearer token, and the flush on SIGTERM.
 */

import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import * as grpc from "@grpc/grpc-js"
import { Either } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { encodeOtlpProtobuf } from "../../src/protocols/otlp/protobuf.js"
import { GrpcCode, retryDelayMs, STATUS_DETAILS_TRAILER } from "../../src/protocols/otlp/status.js"
import type { ExportMetricsServiceRequest } from "../../src/protocols/otlp/types.js"
import type { WriteRequest } from "../../src/protocols/prw/types.js"
import {
  flattenOtlp,
  type HttpAnswer,
  metricValue,
  otlpSeries,
  postOtlp,
  postPrw,
  prwMany,
  prwRequest,
  prwSeries,
  type Running,
  startWithReceivers,
  writeFile,
} from "../support/data-path.js"
import { freePort, type Governor, sleep, tempDir, waitFor } from "../support/governor.js"
import { RawMetricsClient } from "../support/grpc.js"
import { decodeRpcStatus } from "../support/rpc-status.js"
import { type Respond, Sink } from "../support/sink.js"

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const dir = (): string => {
  const d = tempDir("mg-export-")
  cleanup.push(() => fs.rmSync(d, { recursive: true, force: true }))
  return d
}

/** A governor with all three receivers on, exporting to the given endpoints; stopped after the test. */
const startWith = async (
  config: string,
  endpoints: { readonly otlp?: string; readonly prw?: string },
  configDir = dir(),
): Promise<Running> => {
  const running = await startWithReceivers(configDir, config, endpoints)
  cleanup.push(() => running.governor.stop())
  return running
}

const otlpSink = async (options: { port?: number; respond?: Respond } = {}) => {
  const s = await Sink.start("otlp", options)
  cleanup.push(() => s.close())
  return s
}

const prwSink = async (options: { port?: number; respond?: Respond } = {}) => {
  const s = await Sink.start("prw", options)
  cleanup.push(() => s.close())
  return s
}

const FAST = "buffer:\n  flush_interval: 50ms\nshutdown_timeout: 2s\n"

const count = (g: Governor, name: string, labels: Record<string, string>) => metricValue(g, name, labels)

const waitForValue = (
  g: Governor,
  name: string,
  labels: Record<string, string>,
  ok: (v: number) => boolean,
) =>
  waitFor(
    `${name}${JSON.stringify(labels)}`,
    async () => {
      const v = await count(g, name, labels)
      return ok(v) ? v : undefined
    },
    15_000,
    25,
  )

const waitForDelivered = (sink: Sink<unknown>, datapoints: number, timeoutMs = 15_000) =>
  waitFor(
    `${datapoints} datapoints at the ${sink.protocol} sink`,
    () => (sink.datapoints >= datapoints ? true : undefined),
    timeoutMs,
    10,
  )

/** In the end, what the sink acknowledged is exactly what the governor counts as sent. */
const expectSentEqualsSink = async (g: Governor, sink: Sink<unknown>, datapoints: number) => {
  await waitForValue(
    g,
    "metrics_governor_datapoints_sent_total",
    { protocol: sink.protocol },
    (v) => v >= datapoints,
  )
  expect(await count(g, "metrics_governor_datapoints_sent_total", { protocol: sink.protocol })).toBe(
    datapoints,
  )
  expect(sink.datapoints).toBe(datapoints)
  expect(sink.undecodable).toEqual([])
}

const names = (reqs: ReadonlyArray<ExportMetricsServiceRequest>) =>
  flattenOtlp(reqs).map((p) => `${p.metric}/${p.attributes.id}`)

const prwNames = (reqs: ReadonlyArray<WriteRequest>) =>
  reqs.flatMap((r) => r.timeseries.map((s) => s.labels.map((l) => `${l.name}=${l.value}`).join(",")))

describe("exporter: retries until delivered", () => {
  it("retries on 503, for OTLP and remote write", async () => {
    const failFirst =
      (n: number): Respond =>
      (r) =>
        r.n <= n ? { status: 503, body: "unavailable" } : { status: 200 }
    const otlp = await otlpSink({ respond: failFirst(3) })
    const prw = await prwSink({ respond: failFirst(2) })
    const { governor, httpPort, prwPort } = await startWith(FAST, { otlp: otlp.url, prw: prw.url })

    expect((await postOtlp(httpPort, otlpSeries("retried", 6))).status).toBe(200)
    expect((await postPrw(prwPort, prwMany("retried", 4))).status).toBe(204)
    await waitForDelivered(otlp, 6)
    await waitForDelivered(prw, 4)

    // The same payload, sent again after each 503.
    expect(otlp.requests).toHaveLength(4)
    expect(new Set(otlp.requests.map((r) => r.body.toString("hex"))).size).toBe(1)
    expect(prw.requests).toHaveLength(3)
    expect(names(otlp.delivered)).toEqual([
      "retried/0",
      "retried/1",
      "retried/2",
      "retried/3",
      "retried/4",
      "retried/5",
    ])
    expect(prwNames(prw.delivered)).toEqual([0, 1, 2, 3].map((i) => `__name__=retried,id=${i}`))

    expect(
      await count(governor, "metrics_governor_export_requests_total", { protocol: "otlp", result: "retry" }),
    ).toBe(3)
    expect(
      await count(governor, "metrics_governor_export_requests_total", { protocol: "prw", result: "retry" }),
    ).toBe(2)
    await expectSentEqualsSink(governor, otlp, 6)
    await expectSentEqualsSink(governor, prw, 4)
    expect(
      await count(governor, "metrics_governor_export_requests_total", {
        protocol: "otlp",
        result: "success",
      }),
    ).toBe(1)
    expect(await count(governor, "metrics_governor_export_datapoints_lost_total", {})).toBe(0)
    const warned = governor.logs.filter((l) => l.message === "export failed, retrying")
    expect(warned.map((l) => [l.level, l.fields.protocol, l.fields.attempt])).toEqual(
      expect.arrayContaining([
        ["warn", "otlp", 1],
        ["warn", "prw", 1],
      ]),
    )
  })

  it("retries on 429 and waits for Retry-After", async () => {
    const otlp = await otlpSink({
      respond: (r) => (r.n === 1 ? { status: 429, headers: { "retry-after": "2" } } : { status: 200 }),
    })
    const prw = await prwSink({
      respond: (r) => (r.n === 1 ? { status: 429, headers: { "retry-after": "1" } } : { status: 200 }),
    })
    const { governor, httpPort, prwPort } = await startWith(FAST, { otlp: otlp.url, prw: prw.url })
    expect((await postOtlp(httpPort, otlpSeries("later", 3))).status).toBe(200)
    expect((await postPrw(prwPort, prwMany("later", 2))).status).toBe(204)
    await waitForDelivered(otlp, 3)
    await waitForDelivered(prw, 2)
    expect(otlp.requests).toHaveLength(2)
    expect(prw.requests).toHaveLength(2)
    // Without Retry-After the first pause is ~100 ms; the header asks for 2 s and 1 s (±20 % jitter).
    const otlpPause = (otlp.requests[1]?.at ?? 0) - (otlp.requests[0]?.at ?? 0)
    const prwPause = (prw.requests[1]?.at ?? 0) - (prw.requests[0]?.at ?? 0)
    expect(otlpPause).toBeGreaterThanOrEqual(1_500)
    expect(otlpPause).toBeLessThan(4_000)
    expect(prwPause).toBeGreaterThanOrEqual(750)
    expect(prwPause).toBeLessThan(3_000)
    expect(
      await count(governor, "metrics_governor_export_requests_total", { protocol: "otlp", result: "retry" }),
    ).toBe(1)
    expect(
      await count(governor, "metrics_governor_export_requests_total", { protocol: "prw", result: "retry" }),
    ).toBe(1)
    await expectSentEqualsSink(governor, otlp, 3)
    await expectSentEqualsSink(governor, prw, 2)
  })

  it("retries while the downstream refuses connections, and delivers once it listens", async () => {
    const otlpPort = await freePort()
    const prwPort0 = await freePort()
    const { governor, httpPort, prwPort } = await startWith(FAST, {
      otlp: `http://127.0.0.1:${otlpPort}/v1/metrics`,
      prw: `http://127.0.0.1:${prwPort0}/api/v1/write`,
    })
    expect((await postOtlp(httpPort, otlpSeries("refused", 5))).status).toBe(200)
    expect((await postPrw(prwPort, prwMany("refused", 3))).status).toBe(204)
    await waitForValue(
      governor,
      "metrics_governor_export_requests_total",
      { protocol: "otlp", result: "retry" },
      (v) => v >= 2,
    )
    await waitForValue(
      governor,
      "metrics_governor_export_requests_total",
      { protocol: "prw", result: "retry" },
      (v) => v >= 2,
    )
    const refused = governor.logs.find(
      (l) => l.message === "export failed, retrying" && l.fields.protocol === "otlp",
    )
    expect(String(refused?.fields.error)).toMatch(/ECONNREFUSED|connect/i)
    expect(await count(governor, "metrics_governor_datapoints_sent_total", { protocol: "otlp" })).toBe(0)

    const otlp = await otlpSink({ port: otlpPort })
    const prw = await prwSink({ port: prwPort0 })
    await waitForDelivered(otlp, 5)
    await waitForDelivered(prw, 3)
    expect(otlp.requests).toHaveLength(1)
    expect(prw.requests).toHaveLength(1)
    await expectSentEqualsSink(governor, otlp, 5)
    await expectSentEqualsSink(governor, prw, 3)
    expect(await count(governor, "metrics_governor_export_datapoints_lost_total", {})).toBe(0)
  })
})

describe("exporter: no retry on 4xx", () => {
  it("a 400 is not retried: counted as lost (rejected_by_downstream) and logged once", async () => {
    const otlp = await otlpSink({
      respond: () => ({ status: 400, body: "bad request: out of order sample" }),
    })
    const prw = await prwSink({ respond: () => ({ status: 400, body: "out of order sample" }) })
    const { governor, httpPort, prwPort } = await startWith(FAST, { otlp: otlp.url, prw: prw.url })
    expect((await postOtlp(httpPort, otlpSeries("rejected", 7))).status).toBe(200)
    expect((await postPrw(prwPort, prwMany("rejected", 5))).status).toBe(204)
    const lost = { reason: "rejected_by_downstream" }
    await waitForValue(
      governor,
      "metrics_governor_export_datapoints_lost_total",
      { protocol: "otlp", ...lost },
      (v) => v > 0,
    )
    await waitForValue(
      governor,
      "metrics_governor_export_datapoints_lost_total",
      { protocol: "prw", ...lost },
      (v) => v > 0,
    )
    await sleep(1_000) // long enough for several retries, were there any
    expect(otlp.requests).toHaveLength(1)
    expect(prw.requests).toHaveLength(1)
    expect(
      await count(governor, "metrics_governor_export_datapoints_lost_total", { protocol: "otlp", ...lost }),
    ).toBe(7)
    expect(
      await count(governor, "metrics_governor_export_datapoints_lost_total", { protocol: "prw", ...lost }),
    ).toBe(5)
    for (const protocol of ["otlp", "prw"]) {
      expect(
        await count(governor, "metrics_governor_export_requests_total", { protocol, result: "rejected" }),
      ).toBe(1)
      expect(
        await count(governor, "metrics_governor_export_requests_total", { protocol, result: "retry" }),
      ).toBe(0)
      expect(await count(governor, "metrics_governor_datapoints_sent_total", { protocol })).toBe(0)
    }
    const logged = governor.logs.filter((l) => l.message === "export rejected by downstream, not retrying")
    expect(logged).toHaveLength(2)
    const otlpLine = logged.find((l) => l.fields.protocol === "otlp")
    expect(otlpLine?.level).toBe("error")
    expect(otlpLine?.fields.datapoints).toBe(7)
    expect(String(otlpLine?.fields.error)).toContain("400")
    expect(String(otlpLine?.fields.error)).toContain("out of order sample")
    expect(logged.find((l) => l.fields.protocol === "prw")?.fields.datapoints).toBe(5)
    expect(governor.logs.filter((l) => l.message === "export failed, retrying")).toEqual([])

    // The exporter goes on with the next batch.
    otlp.respond = () => ({ status: 200 })
    expect((await postOtlp(httpPort, otlpSeries("next", 2))).status).toBe(200)
    await waitForDelivered(otlp, 2)
    expect(names(otlp.delivered)).toEqual(["next/0", "next/1"])
  })
})

/**
 * A downstream that answers every request with `status` and a body that does not end: 64 KiB chunks,
 * as fast as the connection takes them (never more than one chunk beyond what the socket accepted),
 * until the governor cuts the connection or `cap` bytes are written. Records the bytes written per
 * response.
 */
const endlessBody = async (status: number, cap = 256 * 1024 * 1024) => {
  const responses: Array<{ at: number; written: number; ended: boolean }> = []
  const chunk = Buffer.alloc(64 * 1024, "e")
  const server = http.createServer((req, res) => {
    req.resume()
    req.on("end", () => {
      const r = { at: Date.now(), written: 0, ended: false }
      responses.push(r)
      res.writeHead(status, { "content-type": "text/plain" })
      const pump = () => {
        while (!res.destroyed && r.written < cap) {
          r.written += chunk.length
          if (!res.write(chunk)) return
        }
        if (!res.destroyed) {
          r.ended = true
          res.end()
        }
      }
      res.on("drain", pump)
      res.on("error", () => {})
      pump()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  cleanup.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  return { responses, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/write` }
}

describe("exporter: what is read of an answer", () => {
  const config = [
    "buffer:",
    "  flush_interval: 50ms",
    "exporters:",
    "  prw:",
    "    timeout: 5s",
    "shutdown_timeout: 2s",
    "",
  ].join("\n")
  // Loopback socket buffers hold a few MiB; reading the whole answer would take all 256 MiB.
  const SMALL = 16 * 1024 * 1024

  it("a 500 with an endless body: a few KiB are read, the connection is cut, retries go on", async () => {
    const down = await endlessBody(500)
    const { governor, prwPort } = await startWith(config, { prw: down.url })
    expect((await postPrw(prwPort, prwMany("endless", 3))).status).toBe(204)
    await waitForValue(
      governor,
      "metrics_governor_export_requests_total",
      { protocol: "prw", result: "retry" },
      (v) => v >= 4,
    )
    expect(down.responses.length).toBeGreaterThanOrEqual(4)
    for (const r of down.responses.slice(0, -1)) {
      expect(r.ended).toBe(false)
      expect(r.written).toBeLessThan(SMALL)
    }
    const warned = governor.logs.find((l) => l.message === "export failed, retrying")
    expect(String(warned?.fields.error)).toMatch(/^HTTP 500: e{100,4096}$/)
    expect(await count(governor, "metrics_governor_datapoints_sent_total", { protocol: "prw" })).toBe(0)
    expect(await count(governor, "metrics_governor_export_datapoints_lost_total", {})).toBe(0)
  })

  it("a 2xx with an endless body: delivered at once, the body is not read to its end", async () => {
    const sink = await endlessBody(200)
    const { governor, prwPort } = await startWith(config, { prw: sink.url })
    const sent = Date.now()
    expect((await postPrw(prwPort, prwMany("endless-ok", 3))).status).toBe(204)
    await waitForValue(governor, "metrics_governor_datapoints_sent_total", { protocol: "prw" }, (v) => v >= 3)
    // Well within the 5 s timeout: the exporter did not wait for the body to end.
    expect(Date.now() - sent).toBeLessThan(3_000)
    expect((await postPrw(prwPort, prwMany("endless-ok-2", 2))).status).toBe(204)
    await waitForValue(governor, "metrics_governor_datapoints_sent_total", { protocol: "prw" }, (v) => v >= 5)
    expect(sink.responses).toHaveLength(2)
    for (const r of sink.responses) {
      expect(r.ended).toBe(false)
      expect(r.written).toBeLessThan(SMALL)
    }
    expect(
      await count(governor, "metrics_governor_export_requests_total", { protocol: "prw", result: "retry" }),
    ).toBe(0)
  })
})

/** A remote-write request with a good series and the `poison` marker series: 2 datapoints. */
const poisoned = (tag: string) =>
  prwRequest([
    prwSeries({ __name__: `with-poison-${tag}`, id: "0" }, [1]),
    prwSeries({ __name__: "poison", id: "0" }, [1]),
  ])

/**
 * Sends a batch's worth of requests around a poisoned one (within one flush interval), then one good
 * request every 150 ms until `done()`; returns the names of the good series sent, in order.
 */
const sendAroundPoison = async (prwPort: number, done: () => Promise<boolean>): Promise<Array<string>> => {
  const good: Array<string> = []
  const sendGood = async (metric: string, n: number) => {
    expect((await postPrw(prwPort, prwMany(metric, n))).status).toBe(204)
    for (let i = 0; i < n; i++) good.push(`__name__=${metric},id=${i}`)
  }
  await sendGood("before-a", 2)
  await sendGood("before-b", 3)
  expect((await postPrw(prwPort, poisoned("1"))).status).toBe(204)
  await sendGood("after-a", 2)
  await sendGood("after-b", 1)
  const until = Date.now() + 20_000
  for (let i = 0; !(await done()); i++) {
    if (Date.now() > until) throw new Error("the poisoned request was never dropped")
    await sendGood(`later-${i}`, 1)
    await sleep(150)
  }
  await sendGood("last", 2)
  return good
}

const POISON_CONFIG = "buffer:\n  flush_interval: 300ms\nshutdown_timeout: 2s\n"

describe("exporter: a request the downstream refuses does not hold back the rest", () => {
  it("a 500 for every request holding one poisoned series: the rest of its batch and everything after it arrive, in order; the poisoned request is dropped and counted as poisoned", async () => {
    const prw = await prwSink({
      respond: (r) =>
        r.names.includes("poison") ? { status: 500, body: "duplicate label name: poison" } : { status: 204 },
    })
    const { governor, prwPort } = await startWith(POISON_CONFIG, { prw: prw.url })
    const lost = { protocol: "prw", reason: "poisoned" }
    const good = await sendAroundPoison(
      prwPort,
      async () => (await count(governor, "metrics_governor_export_datapoints_lost_total", lost)) > 0,
    )
    await waitForDelivered(prw, good.length)
    expect(prwNames(prw.delivered)).toEqual(good)
    await expectSentEqualsSink(governor, prw, good.length)
    expect(await count(governor, "metrics_governor_export_datapoints_lost_total", lost)).toBe(2)
    expect(await count(governor, "metrics_governor_export_datapoints_lost_total", {})).toBe(2)
    const dropped = governor.logs.filter((l) => l.message.startsWith("export dropped as poisoned"))
    expect(dropped).toHaveLength(1)
    expect(dropped[0]?.level).toBe("error")
    expect(dropped[0]?.fields.datapoints).toBe(2)
    expect(String(dropped[0]?.fields.error)).toBe("HTTP 500: duplicate label name: poison")
    // Only the requests holding the marker were refused; it was tried a bounded number of times.
    const refused = prw.requests.filter((r) => r.names.includes("poison"))
    expect(refused.length).toBeLessThanOrEqual(12)
    expect(
      prw.requests.filter((r) => r.names.join() === "with-poison-1,poison").length,
    ).toBeGreaterThanOrEqual(3)
  })

  it("a 400 for every request holding one poisoned series: the batch is split, only the poisoned request is dropped (rejected_by_downstream), the rest arrives in order", async () => {
    const prw = await prwSink({
      respond: (r) =>
        r.names.includes("poison") ? { status: 400, body: "duplicate label name: poison" } : { status: 204 },
    })
    const { governor, prwPort } = await startWith(POISON_CONFIG, { prw: prw.url })
    const lost = { protocol: "prw", reason: "rejected_by_downstream" }
    const good = await sendAroundPoison(
      prwPort,
      async () => (await count(governor, "metrics_governor_export_datapoints_lost_total", lost)) > 0,
    )
    await waitForDelivered(prw, good.length)
    expect(prwNames(prw.delivered)).toEqual(good)
    await expectSentEqualsSink(governor, prw, good.length)
    expect(await count(governor, "metrics_governor_export_datapoints_lost_total", lost)).toBe(2)
    expect(await count(governor, "metrics_governor_export_datapoints_lost_total", {})).toBe(2)
    const rejected = governor.logs.filter((l) => l.message === "export rejected by downstream, not retrying")
    expect(rejected.map((l) => l.fields.datapoints)).toEqual([2])
    expect(governor.logs.filter((l) => l.message === "export failed, retrying")).toEqual([])
  })

  it("a downstream that answers 500 to everything for 2 s and then recovers: nothing is lost or dropped", async () => {
    let down = true
    const prw = await prwSink({
      respond: () => (down ? { status: 500, body: "internal error" } : { status: 204 }),
    })
    const { governor, prwPort } = await startWith(POISON_CONFIG, { prw: prw.url })
    const sent: Array<string> = []
    const started = Date.now()
    for (let i = 0; Date.now() - started < 2_000; i++) {
      expect((await postPrw(prwPort, prwMany(`outage-${i}`, 2))).status).toBe(204)
      sent.push(`__name__=outage-${i},id=0`, `__name__=outage-${i},id=1`)
      await sleep(120)
    }
    expect(prw.datapoints).toBe(0)
    down = false
    await waitForDelivered(prw, sent.length)
    await expectSentEqualsSink(governor, prw, sent.length)
    // Each accepted datapoint arrived exactly once.
    expect(prwNames(prw.delivered).sort()).toEqual([...sent].sort())
    expect(await count(governor, "metrics_governor_export_datapoints_lost_total", {})).toBe(0)
    expect(governor.logs.filter((l) => l.level === "error")).toEqual([])
  })
})

/** Posts `send()` until it is answered `pushback`, at most `max` times; returns what was accepted. */
const fillUntilPushback = async (
  max: number,
  send: () => Promise<HttpAnswer>,
  accepted: number,
  perRequest: number,
  pushback: number,
): Promise<{ accepted: number; answer: HttpAnswer }> => {
  let total = 0
  for (let i = 0; i < max; i++) {
    const a = await send()
    if (a.status === pushback) return { accepted: total, answer: a }
    expect(a.status).toBe(accepted)
    total += perRequest
    await sleep(20)
  }
  throw new Error(`no ${pushback} after ${max} requests (accepted ${total} datapoints)`)
}

const grpcExport = (port: number, body: Uint8Array): Promise<grpc.ServiceError | null> => {
  const client = new RawMetricsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
  return new Promise<grpc.ServiceError | null>((resolve) => {
    ;(
      client as unknown as {
        export: (r: Buffer, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void
      }
    ).export(Buffer.from(body), { deadline: Date.now() + 10_000 }, (e) => resolve(e))
  }).finally(() => client.close())
}

describe("exporter: backpressure", () => {
  it("a full buffer answers 429 (OTLP/HTTP), RESOURCE_EXHAUSTED (gRPC) and 503 (remote write); after recovery everything accepted arrives", async () => {
    const otlp = await otlpSink({ respond: () => "hang" })
    const prw = await prwSink({ respond: () => ({ status: 503, body: "down for maintenance" }) })
    const config = [
      "buffer:",
      "  size: 10",
      "  flush_interval: 50ms",
      "exporters:",
      "  otlp:",
      "    timeout: 300ms",
      "  prw:",
      "    timeout: 300ms",
      "shutdown_timeout: 2s",
      "",
    ].join("\n")
    const { governor, httpPort, prwPort, grpcPort } = await startWith(config, {
      otlp: otlp.url,
      prw: prw.url,
    })

    // A first request each, taken by the exporters, which then hang on it (OTLP) or retry it (remote
    // write): from here on nothing leaves the buffers.
    let n = 0
    const nextOtlp = () => postOtlp(httpPort, otlpSeries(`bp${n++}`, 4))
    let m = 0
    const nextPrw = () => postPrw(prwPort, prwMany(`bp${m++}`, 4))
    expect((await nextOtlp()).status).toBe(200)
    expect((await nextPrw()).status).toBe(204)
    await waitFor("the OTLP exporter to hang on its first batch", () =>
      otlp.requests.length > 0 ? true : undefined,
    )
    await waitForValue(
      governor,
      "metrics_governor_export_requests_total",
      { protocol: "prw", result: "retry" },
      (v) => v > 0,
    )

    // 4 + 4 datapoints fit a buffer of 10; the third request would not.
    const o = await fillUntilPushback(20, nextOtlp, 200, 4, 429)
    expect(o.accepted).toBe(8)
    expect(o.answer.headers["retry-after"]).toBe("1")
    const status = Either.getOrThrow(decodeRpcStatus(o.answer.body))
    expect(status.code).toBe(GrpcCode.RESOURCE_EXHAUSTED)
    expect(retryDelayMs(status)).toBe(1_000)
    // Still full: more requests are pushed back, and cost nothing.
    expect((await nextOtlp()).status).toBe(429)
    const rpc = await grpcExport(grpcPort, encodeOtlpProtobuf(otlpSeries("bp-grpc", 4)))
    expect(rpc?.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    const trailer = rpc?.metadata.get(STATUS_DETAILS_TRAILER)[0]
    expect(trailer).toBeInstanceOf(Buffer)
    expect(retryDelayMs(Either.getOrThrow(decodeRpcStatus(trailer as Buffer)))).toBe(1_000)

    const p = await fillUntilPushback(20, nextPrw, 204, 4, 503)
    expect(p.accepted).toBe(8)
    expect(p.answer.headers["retry-after"]).toBe("1")
    expect((await nextPrw()).status).toBe(503)
    const otlpAccepted = 4 + o.accepted
    const prwAccepted = 4 + p.accepted

    expect(await count(governor, "metrics_governor_datapoints_received_total", { protocol: "otlp" })).toBe(
      otlpAccepted,
    )
    expect(await count(governor, "metrics_governor_datapoints_received_total", { protocol: "prw" })).toBe(
      prwAccepted,
    )
    expect(
      await count(governor, "metrics_governor_receiver_requests_total", { protocol: "otlp", code: "429" }),
    ).toBe(2)
    expect(
      await count(governor, "metrics_governor_receiver_requests_total", { protocol: "prw", code: "503" }),
    ).toBe(2)
    expect(
      await count(governor, "metrics_governor_receiver_requests_total", {
        protocol: "otlp",
        code: "grpc_resource_exhausted",
      }),
    ).toBe(1)
    expect(otlp.datapoints).toBe(0)
    expect(prw.datapoints).toBe(0)
    await waitForValue(
      governor,
      "metrics_governor_export_requests_total",
      { protocol: "otlp", result: "retry" },
      (v) => v > 0,
    )

    // The downstream recovers.
    otlp.respond = () => ({ status: 200 })
    otlp.release()
    prw.respond = () => ({ status: 200 })
    await waitForDelivered(otlp, otlpAccepted)
    await waitForDelivered(prw, prwAccepted)
    await expectSentEqualsSink(governor, otlp, otlpAccepted)
    await expectSentEqualsSink(governor, prw, prwAccepted)
    // Each accepted request arrived exactly once, in order.
    const expectedOtlp = Array.from({ length: otlpAccepted / 4 }, (_, i) =>
      [0, 1, 2, 3].map((j) => `bp${i}/${j}`),
    ).flat()
    expect(names(otlp.delivered)).toEqual(expectedOtlp)
    expect(prwNames(prw.delivered)).toEqual(
      Array.from({ length: prwAccepted / 4 }, (_, i) =>
        [0, 1, 2, 3].map((j) => `__name__=bp${i},id=${j}`),
      ).flat(),
    )
    expect(await count(governor, "metrics_governor_export_datapoints_lost_total", {})).toBe(0)
    // And the receivers take traffic again.
    expect((await nextOtlp()).status).toBe(200)
    expect((await nextPrw()).status).toBe(204)
  })
})

describe("exporter: headers and bearer token", () => {
  it("sends the configured headers and the token file's bearer token, re-read when the file changes", async () => {
    const d = dir()
    const otlpToken = writeFile(d, "otlp-token", "otlp-one\n")
    const prwToken = writeFile(d, "prw-token", "prw-first")
    const config = [
      "buffer:",
      "  flush_interval: 50ms",
      "exporters:",
      "  otlp:",
      "    headers:",
      "      X-Scope-OrgID: tenant-otlp",
      `    bearer_token_file: ${otlpToken}`,
      "  prw:",
      "    headers:",
      "      X-Scope-OrgID: tenant-prw",
      "      X-Custom-Header: custom value",
      `    bearer_token_file: ${prwToken}`,
      "shutdown_timeout: 2s",
      "",
    ].join("\n")
    const otlp = await otlpSink()
    const prw = await prwSink()
    const { governor, httpPort, prwPort } = await startWith(config, { otlp: otlp.url, prw: prw.url }, d)

    expect((await postPrw(prwPort, prwMany("tok", 1))).status).toBe(204)
    expect((await postOtlp(httpPort, otlpSeries("tok", 1))).status).toBe(200)
    await waitForDelivered(prw, 1)
    await waitForDelivered(otlp, 1)
    const first = prw.requests[0]?.headers
    expect(first?.["x-scope-orgid"]).toBe("tenant-prw")
    expect(first?.["x-custom-header"]).toBe("custom value")
    expect(first?.authorization).toBe("Bearer prw-first")
    expect(first?.["content-type"]).toBe("application/x-protobuf")
    expect(first?.["content-encoding"]).toBe("snappy")
    expect(first?.["x-prometheus-remote-write-version"]).toBe("0.1.0")
    expect(otlp.requests[0]?.headers["x-scope-orgid"]).toBe("tenant-otlp")
    expect(otlp.requests[0]?.headers.authorization).toBe("Bearer otlp-one")
    expect(otlp.requests[0]?.headers["content-type"]).toBe("application/x-protobuf")

    // Rewritten in place: the next request carries the new token, no restart.
    fs.writeFileSync(prwToken, "prw-second-token")
    expect((await postPrw(prwPort, prwMany("tok", 1))).status).toBe(204)
    await waitForDelivered(prw, 2)
    expect(prw.requests[1]?.headers.authorization).toBe("Bearer prw-second-token")
    expect(prw.requests[1]?.headers["x-scope-orgid"]).toBe("tenant-prw")

    // Same length, rewritten in place.
    await sleep(20)
    fs.writeFileSync(prwToken, "prw-third-token!")
    expect((await postPrw(prwPort, prwMany("tok", 1))).status).toBe(204)
    await waitForDelivered(prw, 3)
    expect(prw.requests[2]?.headers.authorization).toBe("Bearer prw-third-token!")

    // Replaced by a rename, as a Kubernetes Secret update does.
    fs.writeFileSync(path.join(d, "otlp-token.new"), "otlp-two")
    fs.renameSync(path.join(d, "otlp-token.new"), otlpToken)
    expect((await postOtlp(httpPort, otlpSeries("tok", 1))).status).toBe(200)
    await waitForDelivered(otlp, 2)
    expect(otlp.requests[1]?.headers.authorization).toBe("Bearer otlp-two")

    // A missing token file is a retryable failure: nothing is sent without the token, nothing is lost.
    fs.rmSync(prwToken)
    expect((await postPrw(prwPort, prwMany("tok", 2))).status).toBe(204)
    await waitForValue(
      governor,
      "metrics_governor_export_requests_total",
      { protocol: "prw", result: "retry" },
      (v) => v > 0,
    )
    expect(prw.requests).toHaveLength(3)
    fs.writeFileSync(prwToken, "prw-restored")
    await waitForDelivered(prw, 5)
    expect(prw.requests).toHaveLength(4)
    expect(prw.requests[3]?.headers.authorization).toBe("Bearer prw-restored")
    await expectSentEqualsSink(governor, prw, 5)
    await expectSentEqualsSink(governor, otlp, 2)
  })
})

describe("exporter: shutdown", () => {
  it("SIGTERM flushes what is buffered to the sinks and exits 0 within shutdown_timeout + 2 s", async () => {
    const otlp = await otlpSink()
    const prw = await prwSink()
    // A long flush interval and a large batch: nothing leaves the buffer until shutdown.
    const config = "buffer:\n  flush_interval: 1h\n  batch_size: 100000\nshutdown_timeout: 3s\n"
    const { governor, httpPort, prwPort, grpcPort } = await startWith(config, {
      otlp: otlp.url,
      prw: prw.url,
    })
    expect((await postOtlp(httpPort, otlpSeries("flushed", 5))).status).toBe(200)
    expect((await postOtlp(httpPort, otlpSeries("flushed-json", 2), "json")).status).toBe(200)
    expect(await grpcExport(grpcPort, encodeOtlpProtobuf(otlpSeries("flushed-grpc", 1)))).toBeNull()
    expect((await postPrw(prwPort, prwMany("flushed", 3))).status).toBe(204)
    await sleep(300)
    expect(otlp.requests).toHaveLength(0)
    expect(prw.requests).toHaveLength(0)

    const sent = Date.now()
    governor.signal("SIGTERM")
    const exit = await governor.waitForExit(5_000)
    expect(exit.code).toBe(0)
    expect(exit.at - sent).toBeLessThan(3_000 + 2_000)
    expect(otlp.datapoints).toBe(8)
    expect(prw.datapoints).toBe(3)
    expect(names(otlp.delivered).sort()).toEqual(
      [
        "flushed/0",
        "flushed/1",
        "flushed/2",
        "flushed/3",
        "flushed/4",
        "flushed-json/0",
        "flushed-json/1",
        "flushed-grpc/0",
      ].sort(),
    )
    const flushed = governor.logs
      .filter((l) => l.message === "exporter flushed")
      .map((l) => l.fields.protocol)
    expect(flushed.sort()).toEqual(["otlp", "prw"])
    expect(governor.logs.filter((l) => l.level === "error")).toEqual([])
  })

  it("SIGTERM with both downstreams failing gives up after shutdown_timeout, logs the loss and exits 0 within shutdown_timeout + 2 s", async () => {
    const otlp = await otlpSink({ respond: () => ({ status: 503 }) })
    const prw = await prwSink({ respond: () => ({ status: 503 }) })
    const config = "buffer:\n  flush_interval: 50ms\nshutdown_timeout: 2s\n"
    const { governor, httpPort, prwPort } = await startWith(config, { otlp: otlp.url, prw: prw.url })
    expect((await postOtlp(httpPort, otlpSeries("stuck", 5))).status).toBe(200)
    expect((await postPrw(prwPort, prwMany("stuck", 3))).status).toBe(204)
    // Down for a while: the exporters are in ever longer backoff pauses (0.1, 0.2, 0.4, 0.8, 1.6 s…).
    for (const protocol of ["otlp", "prw"]) {
      await waitForValue(
        governor,
        "metrics_governor_export_requests_total",
        { protocol, result: "retry" },
        (v) => v >= 5,
      )
    }

    const sent = Date.now()
    governor.signal("SIGTERM")
    const exit = await governor.waitForExit(8_000)
    expect(exit.code).toBe(0)
    expect(exit.at - sent).toBeLessThan(2_000 + 2_000)
    const lost = governor.logs.filter(
      (l) =>
        l.message === "export abandoned at shutdown" || l.message === "datapoints left unsent at shutdown",
    )
    expect(lost.map((l) => [l.fields.protocol, l.fields.datapoints]).sort()).toEqual([
      ["otlp", 5],
      ["prw", 3],
    ])
  })

  it("SIGTERM while the downstream hangs: the request in flight is cut off at the deadline and counted as lost", async () => {
    const otlp = await otlpSink({ respond: () => "hang" })
    const prw = await prwSink({ respond: () => "hang" })
    // The request timeout (60 s) is far beyond shutdown_timeout: only the deadline can end it.
    const config = [
      "buffer:",
      "  flush_interval: 50ms",
      "exporters:",
      "  otlp:",
      "    timeout: 60s",
      "  prw:",
      "    timeout: 60s",
      "shutdown_timeout: 1s",
      "",
    ].join("\n")
    const { governor, httpPort, prwPort } = await startWith(config, { otlp: otlp.url, prw: prw.url })
    expect((await postOtlp(httpPort, otlpSeries("hung", 5))).status).toBe(200)
    expect((await postPrw(prwPort, prwMany("hung", 3))).status).toBe(204)
    await waitFor("both requests at the sinks", () =>
      otlp.requests.length > 0 && prw.requests.length > 0 ? true : undefined,
    )

    const sent = Date.now()
    governor.signal("SIGTERM")
    const exit = await governor.waitForExit(15_000)
    expect(exit.code).toBe(0)
    expect(exit.at - sent).toBeLessThan(1_000 + 2_000)
    const lost = governor.logs.filter((l) => l.message === "datapoints left unsent at shutdown")
    expect(lost.map((l) => [l.fields.protocol, l.fields.datapoints]).sort()).toEqual([
      ["otlp", 5],
      ["prw", 3],
    ])
    expect(governor.logs.filter((l) => l.message === "exporter flushed")).toEqual([])
  })

  it("SIGTERM during a long backoff pause retries at once, and delivers when the downstream is back", async () => {
    // Six 503s: the pause after the sixth is 3.2 s (±20 %), longer than shutdown_timeout + 1 s.
    const otlp = await otlpSink({ respond: (r) => (r.n <= 6 ? { status: 503 } : { status: 200 }) })
    const config = "buffer:\n  flush_interval: 50ms\nshutdown_timeout: 1s\n"
    const { governor, httpPort } = await startWith(config, { otlp: otlp.url })
    expect((await postOtlp(httpPort, otlpSeries("late", 4))).status).toBe(200)
    await waitFor("six attempts", () => (otlp.requests.length >= 6 ? true : undefined), 10_000, 10)
    await sleep(100)
    expect(otlp.requests).toHaveLength(6) // in the long pause

    const sent = Date.now()
    governor.signal("SIGTERM")
    const exit = await governor.waitForExit(10_000)
    expect(exit.code).toBe(0)
    expect(exit.at - sent).toBeLessThan(1_000 + 2_000)
    expect(otlp.requests).toHaveLength(7)
    expect((otlp.requests[6]?.at ?? 0) - sent).toBeLessThan(1_000)
    expect(otlp.datapoints).toBe(4)
    expect(names(otlp.delivered)).toEqual(["late/0", "late/1", "late/2", "late/3"])
    expect(governor.logs.filter((l) => l.level === "error")).toEqual([])
  })
})
