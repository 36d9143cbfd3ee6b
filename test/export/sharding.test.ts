/**
 * Sharding with real processes: a governor in front of several sinks on loopback (or sinks found
 * through a DNS server of our own), fed over remote write and OTLP.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { HashRing, positionOf } from "../../src/export/ring.js"
import { fingerprintSeries } from "../../src/limits/fingerprint.js"
import type { ExportMetricsServiceRequest, KeyValue } from "../../src/protocols/otlp/types.js"
import type { WriteRequest } from "../../src/protocols/prw/types.js"
import { settledMetricValue } from "../support/data-path.js"
import { DnsServer } from "../support/dns-server.js"
import { freePort, type Governor, startGovernor, tempDir, waitFor } from "../support/governor.js"
import { gaugeBody, postOtlp } from "../support/otlp-traffic.js"
import { pushRemoteWrite, type TestSeries } from "../support/remote-write.js"
import { Sink } from "../support/sink.js"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const startSink = async <P extends "otlp" | "prw">(
  protocol: P,
  options: Parameters<typeof Sink.start>[1] = {},
) => {
  const sink = await Sink.start(protocol, options)
  cleanups.push(() => sink.close())
  return sink
}

const governor = async (args: ReadonlyArray<string>) => {
  const gov = await startGovernor({ args })
  cleanups.push(() => gov.stop())
  return gov
}

/** `count` series of `metric`, numbered from `from`, one sample each at `t`. */
const series = (metric: string, from: number, count: number, t = Date.now()): Array<TestSeries> =>
  Array.from({ length: count }, (_, i) => ({
    labels: { __name__: metric, i: String(from + i) },
    samples: [{ value: i, timestamp: t }],
  }))

/** Sends `total` series in requests of `per`, one after another; every answer must be 2xx. */
const send = async (url: string, metric: string, total: number, per = 500) => {
  const t = Date.now()
  for (let from = 0; from < total; from += per) {
    const status = await pushRemoteWrite(url, series(metric, from, Math.min(per, total - from), t))
    expect(status).toBe(204)
  }
}

/** Every series each sink has received: `i` label → how many times. */
const seen = (sink: Sink<WriteRequest>, metric: string): Map<string, number> => {
  const out = new Map<string, number>()
  for (const req of sink.delivered) {
    for (const ts of req.timeseries) {
      if (ts.labels.find((l) => l.name === "__name__")?.value !== metric) continue
      const i = ts.labels.find((l) => l.name === "i")?.value ?? ""
      out.set(i, (out.get(i) ?? 0) + ts.samples.length)
    }
  }
  return out
}

const delivered = (sinks: ReadonlyArray<Sink<unknown>>) => sinks.reduce((n, s) => n + s.datapoints, 0)

const waitDelivered = (sinks: ReadonlyArray<Sink<unknown>>, total: number, timeoutMs = 15_000) =>
  waitFor(
    `${total} datapoints delivered`,
    async () => (delivered(sinks) >= total ? true : undefined),
    timeoutMs,
  )

/** Which sink (index) got each series of `metric`; fails if one got it on two sinks. */
const owners = (sinks: ReadonlyArray<Sink<WriteRequest>>, metric: string): Map<string, number> => {
  const out = new Map<string, number>()
  sinks.forEach((sink, s) => {
    for (const key of seen(sink, metric).keys()) {
      expect(out.has(key), `series ${key} on two endpoints`).toBe(false)
      out.set(key, s)
    }
  })
  return out
}

/** For each series of `metric`, the sink whose count of it grew since `before` (one per series). */
const gained = (
  sinks: ReadonlyArray<Sink<WriteRequest>>,
  metric: string,
  before: ReadonlyArray<Map<string, number>>,
): Map<string, number> => {
  const out = new Map<string, number>()
  sinks.forEach((sink, s) => {
    for (const [key, n] of seen(sink, metric)) {
      if (n > (before[s]?.get(key) ?? 0)) {
        expect(out.has(key), `series ${key} on two endpoints`).toBe(false)
        out.set(key, s)
      }
    }
  })
  return out
}

/** Where the ring puts a test series (key: series), as the governor computes it. */
const ringOwner = (ring: HashRing, metric: string, i: number): number => {
  const fp = new Uint32Array(2)
  fingerprintSeries(metric, ["i", String(i)], fp)
  return ring.ownerAt(positionOf(fp[0] as number, fp[1] as number))
}

/** The `id` attribute of an OTLP data point. */
const idOf = (attributes: ReadonlyArray<KeyValue>): string => {
  const v = attributes.find((a) => a.key === "id")?.value
  return v?.type === "string" ? v.value : ""
}

const writeConfig = (dir: string, body: string) => {
  const file = path.join(dir, "config.yaml")
  fs.writeFileSync(file, body)
  return file
}

const prwSharding = (urls: ReadonlyArray<string>, extra = "") =>
  `buffer:\n  flush_interval: 50ms\nexporters:\n  prw:\n    sharding:\n      endpoints: [${urls.join(", ")}]\n${extra}`

const prwArgs = async (config: string) => {
  const port = await freePort()
  return {
    url: `http://127.0.0.1:${port}/api/v1/write`,
    args: ["-prw-listen", `127.0.0.1:${port}`, "-http-listen", "", "-config", config, "-reload-watch=false"],
  }
}

describe("sharding over several endpoints", () => {
  it("puts every series on exactly one endpoint, spread within ±25%, the same one across requests and restarts; a fourth endpoint takes about a quarter and only it gains keys", async () => {
    const sinks = [await startSink("prw"), await startSink("prw"), await startSink("prw")]
    const dir = tempDir("mg-shard-")
    const config = writeConfig(dir, prwSharding(sinks.map((s) => s.url)))
    const { url, args } = await prwArgs(config)
    let gov: Governor = await governor(args)

    await send(url, "shard_test", 10_000)
    await waitDelivered(sinks, 10_000)
    const first = owners(sinks, "shard_test")
    expect(first.size).toBe(10_000)
    for (const sink of sinks) {
      expect(sink.undecodable).toEqual([])
      const n = seen(sink, "shard_test").size
      expect(n).toBeGreaterThan((10_000 / 3) * 0.75)
      expect(n).toBeLessThan((10_000 / 3) * 1.25)
    }
    expect(await gov.metric('metrics_governor_export_endpoints{protocol="prw"}')).toBe(3)
    for (const sink of sinks) {
      expect(
        await gov.metric(
          `metrics_governor_export_endpoint_datapoints_sent_total{protocol="prw",endpoint="${sink.url}"}`,
        ),
      ).toBe(seen(sink, "shard_test").size)
    }

    // The same series again, and again after a restart: each on the endpoint it was on.
    await send(url, "shard_test", 10_000)
    await waitDelivered(sinks, 20_000)
    await gov.stop()
    gov = await governor(args)
    await send(url, "shard_test", 10_000)
    await waitDelivered(sinks, 30_000)
    sinks.forEach((sink, s) => {
      for (const [key, n] of seen(sink, "shard_test")) {
        expect(first.get(key)).toBe(s)
        expect(n).toBe(3)
      }
    })

    // A fourth endpoint by reload: about a quarter of the keys move, all of them onto it.
    const fourth = await startSink("prw")
    writeConfig(dir, prwSharding([...sinks, fourth].map((s) => s.url)))
    gov.signal("SIGHUP")
    await gov.waitForVersion(2)
    await waitFor("4 endpoints", async () =>
      (await gov.metric('metrics_governor_export_endpoints{protocol="prw"}')) === 4 ? true : undefined,
    )
    const snapshot = [...sinks, fourth].map((sink) => seen(sink, "shard_test"))
    await send(url, "shard_test", 10_000)
    await waitDelivered([...sinks, fourth], 40_000)
    const after = gained([...sinks, fourth], "shard_test", snapshot)
    expect(after.size).toBe(10_000)
    let moved = 0
    for (const [key, s] of after) {
      if (s !== first.get(key)) {
        moved++
        expect(s).toBe(3)
      }
    }
    expect(moved / 10_000).toBeGreaterThan(0.15)
    expect(moved / 10_000).toBeLessThan(0.35)
  }, 90_000)

  it("keeps a failing endpoint's share for it (not spilled onto the others) and delivers it when it returns", async () => {
    let up = false
    const sinks = [
      await startSink("prw"),
      await startSink("prw", { respond: () => (up ? { status: 204 } : { status: 503 }) }),
      await startSink("prw"),
    ]
    const dir = tempDir("mg-shard-")
    const { url, args } = await prwArgs(writeConfig(dir, prwSharding(sinks.map((s) => s.url))))
    const gov = await governor(args)
    // Where each series belongs, by the same ring the governor builds.
    const ring = new HashRing(
      sinks.map((sink) => sink.url),
      160,
    )
    const share = [0, 0, 0]
    for (let i = 0; i < 3_000; i++) {
      const e = ringOwner(ring, "down_test", i)
      share[e] = (share[e] as number) + 1
    }
    await send(url, "down_test", 3_000)
    // The healthy endpoints get their whole share while the second one refuses; its share waits.
    await waitFor("the healthy endpoints' share", async () =>
      seen(sinks[0] as Sink<WriteRequest>, "down_test").size === share[0] &&
      seen(sinks[2] as Sink<WriteRequest>, "down_test").size === share[2]
        ? true
        : undefined,
    )
    await waitFor("the refused share held", async () =>
      (await gov.metric('metrics_governor_buffer_datapoints{protocol="prw"}')) === share[1]
        ? true
        : undefined,
    )
    expect(share[1]).toBeGreaterThan(500)
    expect(sinks[1]?.datapoints).toBe(0)
    expect((sinks[1]?.requests.length ?? 0) > 0).toBe(true)
    up = true
    await waitDelivered(sinks, 3_000, 40_000)
    const where = owners(sinks, "down_test")
    expect(where.size).toBe(3_000)
    for (const [key, s] of where) expect(s).toBe(ringOwner(ring, "down_test", Number(key)))
    expect(
      await gov.metric(
        'metrics_governor_export_datapoints_lost_total{protocol="prw",reason="shutdown_timeout"}',
      ),
    ).toBeUndefined()
  }, 90_000)

  it("follows a DNS name: endpoints from its answer, a new address picked up at the next refresh with only its keys moving", async () => {
    const port = await freePort()
    const sinks = [
      await startSink("prw", { host: "127.0.0.2", port }),
      await startSink("prw", { host: "127.0.0.3", port }),
    ]
    const dns = await DnsServer.start({ "governors.shard.test": ["127.0.0.2", "127.0.0.3"] })
    cleanups.push(() => dns.close())
    const dir = tempDir("mg-shard-")
    const config = writeConfig(
      dir,
      `buffer:\n  flush_interval: 50ms\nexporters:\n  prw:\n    sharding:\n      dns: {name: governors.shard.test, port: ${port}, refresh_interval: 500ms, server: "${dns.address}"}\n`,
    )
    const { url, args } = await prwArgs(config)
    const gov = await governor(args)
    expect(await gov.metric('metrics_governor_export_endpoints{protocol="prw"}')).toBe(2)
    await send(url, "dns_test", 2_000)
    await waitDelivered(sinks, 2_000)
    const before = owners(sinks, "dns_test")
    expect(before.size).toBe(2_000)
    for (const sink of sinks) expect(seen(sink, "dns_test").size).toBeGreaterThan(500)

    const third = await startSink("prw", { host: "127.0.0.4", port })
    dns.set("governors.shard.test", ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    await waitFor("3 endpoints from DNS", async () =>
      (await gov.metric('metrics_governor_export_endpoints{protocol="prw"}')) === 3 ? true : undefined,
    )
    const snapshot = [...sinks, third].map((sink) => seen(sink, "dns_test"))
    await send(url, "dns_test", 2_000)
    await waitDelivered([...sinks, third], 4_000)
    const after = gained([...sinks, third], "dns_test", snapshot)
    expect(after.size).toBe(2_000)
    let moved = 0
    for (const [key, s] of after) {
      if (s !== before.get(key)) {
        moved++
        expect(s).toBe(2)
      }
    }
    expect(moved).toBeGreaterThan(2_000 * 0.2)
    expect(moved).toBeLessThan(2_000 * 0.5)

    // An answer that fails (NXDOMAIN) keeps the endpoints as they are, and is counted.
    dns.set("governors.shard.test", [])
    await waitFor("a failed resolution counted", async () =>
      ((await gov.metric('metrics_governor_export_dns_failures_total{protocol="prw"}')) ?? 0) > 0
        ? true
        : undefined,
    )
    expect(await gov.metric('metrics_governor_export_endpoints{protocol="prw"}')).toBe(3)
  }, 90_000)

  it("shards OTLP by series too: every data point on exactly one of three OTLP endpoints", async () => {
    const sinks = [await startSink("otlp"), await startSink("otlp"), await startSink("otlp")]
    const dir = tempDir("mg-shard-")
    const config = writeConfig(
      dir,
      `buffer:\n  flush_interval: 50ms\nexporters:\n  otlp:\n    sharding:\n      endpoints: [${sinks.map((s) => s.url).join(", ")}]\n`,
    )
    const port = await freePort()
    await governor(["-http-listen", `127.0.0.1:${port}`, "-config", config, "-reload-watch=false"])
    for (let from = 0; from < 3_000; from += 300) {
      expect(await postOtlp(port, gaugeBody("otlp_shard", 300, {}, from))).toBe(200)
    }
    await waitDelivered(sinks, 3_000)
    const where = new Map<string, number>()
    sinks.forEach((sink, s) => {
      for (const req of sink.delivered as Array<ExportMetricsServiceRequest>) {
        for (const rm of req.resourceMetrics)
          for (const sm of rm.scopeMetrics)
            for (const m of sm.metrics)
              for (const dp of m.data?.dataPoints ?? []) {
                const id = idOf(dp.attributes)
                expect(where.has(id), `data point ${id} on two endpoints`).toBe(false)
                where.set(id, s)
              }
      }
      expect(sink.datapoints).toBeGreaterThan(600)
    })
    expect(where.size).toBe(3_000)
  }, 60_000)
})

describe("exporters reload", () => {
  it("switches the endpoint from sink A to sink B by editing config.yaml under steady load: every datapoint delivered once", async () => {
    const a = await startSink("prw")
    const b = await startSink("prw")
    const dir = tempDir("mg-shard-")
    const body = (sink: Sink<WriteRequest>) =>
      `buffer:\n  flush_interval: 50ms\nexporters:\n  prw:\n    endpoint: ${sink.url}\n`
    const config = writeConfig(dir, body(a))
    const { url, args } = await prwArgs(config)
    const gov = await governor(args)
    let sent = 0
    const deadline = Date.now() + 20_000
    for (let r = 0; r < 120 && Date.now() < deadline; r++) {
      if (r === 60) {
        writeConfig(dir, body(b))
        gov.signal("SIGHUP")
      }
      const batch = series("reload_test", r * 50, 50)
      expect(await pushRemoteWrite(url, batch)).toBe(204)
      sent += batch.length
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    await gov.waitForVersion(2)
    await waitDelivered([a, b], sent)
    expect(a.datapoints + b.datapoints).toBe(sent)
    expect(a.datapoints).toBeGreaterThan(0)
    expect(b.datapoints).toBeGreaterThan(0)
    // Nothing twice: every series once, on A or on B.
    const both = [...seen(a, "reload_test").keys(), ...seen(b, "reload_test").keys()]
    expect(new Set(both).size).toBe(sent)
    expect(
      await settledMetricValue(gov, "metrics_governor_datapoints_sent_total", { protocol: "prw" }, sent),
    ).toBe(sent)
    const status = (await (await gov.get("/api/v1/status/config")).json()) as {
      restart_required: Array<string>
    }
    expect(status.restart_required).toEqual([])
  }, 60_000)

  it("the version is shown only once its exporters are in force: a request sent as soon as it shows goes to the new endpoints, even when their DNS answer is slow", async () => {
    const port = await freePort()
    const old = await startSink("prw")
    const next = await startSink("prw", { host: "127.0.0.2", port })
    const dns = await DnsServer.start({ "slow.shard.test": ["127.0.0.2"] })
    cleanups.push(() => dns.close())
    dns.delayMs = 1_500
    const dir = tempDir("mg-shard-")
    const config = writeConfig(
      dir,
      `buffer:\n  flush_interval: 50ms\nexporters:\n  prw:\n    endpoint: ${old.url}\n`,
    )
    const { url, args } = await prwArgs(config)
    const gov = await governor(args)
    await send(url, "before_reload", 10, 10)
    await waitDelivered([old], 10)
    writeConfig(
      dir,
      `buffer:\n  flush_interval: 50ms\nexporters:\n  prw:\n    sharding:\n      dns: {name: slow.shard.test, port: ${port}, refresh_interval: 1m, server: "${dns.address}"}\n`,
    )
    const signalled = Date.now()
    gov.signal("SIGHUP")
    await gov.waitForVersion(2)
    // The answer was held back: the version waited for it.
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(1_000)
    await send(url, "after_reload", 10, 10)
    await waitDelivered([next], 10)
    expect(seen(old, "after_reload").size).toBe(0)
    expect(seen(next, "after_reload").size).toBe(10)
  }, 60_000)

  it("with the durable queue, a retired endpoint keeps its data through a restart and gets it when it returns", async () => {
    let aUp = false
    const a = await startSink("prw", { respond: () => (aUp ? { status: 204 } : { status: 503 }) })
    const b = await startSink("prw")
    const dir = tempDir("mg-shard-")
    const queue = path.join(dir, "queue")
    const body = (sink: Sink<WriteRequest>) =>
      `buffer:\n  flush_interval: 50ms\nshutdown_timeout: 2s\nexporters:\n  queue:\n    path: ${queue}\n  prw:\n    endpoint: ${sink.url}\n`
    const config = writeConfig(dir, body(a))
    const { url, args } = await prwArgs(config)
    let gov = await governor(args)
    await send(url, "queued_for_a", 500, 100)
    // A is down: its share waits in its directory. The reload sends new data to B; A's lane drains.
    writeConfig(dir, body(b))
    gov.signal("SIGHUP")
    await gov.waitForVersion(2)
    await send(url, "for_b", 300, 100)
    await waitDelivered([b], 300)
    expect(a.datapoints).toBe(0)
    const laneDirs = () => fs.readdirSync(path.join(queue, "prw"))
    expect(laneDirs()).toHaveLength(2)
    // Stopped while A is still down: A's data stays on disk, not counted lost.
    await gov.stop()
    expect(
      gov.logs.some((l) => l.message === "datapoints left in the durable queue for the next start"),
    ).toBe(true)
    // The next start (configured for B only) finds A's directory and sends it to A when A is back.
    gov = await governor(args)
    aUp = true
    await waitDelivered([a], 500, 30_000)
    expect(seen(a, "queued_for_a").size).toBe(500)
    expect(seen(b, "queued_for_a").size).toBe(0)
    await waitFor("the drained directory removed", async () => (laneDirs().length === 1 ? true : undefined))
    expect(
      await gov.metric(
        'metrics_governor_export_datapoints_lost_total{protocol="prw",reason="shutdown_timeout"}',
      ),
    ).toBeUndefined()
  }, 60_000)
})
