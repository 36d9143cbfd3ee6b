/**
 * OTLP/gRPC export (`exporters.otlp.protocol: grpc`) from a real governor process: what arrives over
 * OTLP/HTTP reaches a grpc-js `MetricsService/Export` sink exactly; gzip message compression; TLS
 * with a client certificate; headers and the bearer token as metadata; a retryable status
 * (UNAVAILABLE) is retried and delivered, a non-retryable one (INVALID_ARGUMENT) is dropped and
 * counted as rejected by the downstream.
 */

import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import * as grpc from "@grpc/grpc-js"
import { afterEach, describe, expect, it } from "vitest"
import type { ExportMetricsServiceRequest } from "../../src/protocols/otlp/types.js"
import {
  flattenOtlp,
  metricValue,
  otlpSeries,
  postOtlp,
  type Running,
  settledMetricValue,
  startWithReceivers,
  writeFile,
} from "../support/data-path.js"
import { ROOT, tempDir, waitFor } from "../support/governor.js"
import { GrpcSink } from "../support/grpc-sink.js"
import { Sink } from "../support/sink.js"

const TLS = path.join(ROOT, "test/fixtures/tls")
const fixture = (name: string) => path.join(TLS, name)

let running: Running | undefined
let sink: GrpcSink | undefined
const dirs: string[] = []

afterEach(async () => {
  await running?.governor.stop()
  running = undefined
  await sink?.close()
  sink = undefined
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

const dir = () => {
  const d = tempDir("mg-grpc-export-")
  dirs.push(d)
  return d
}

/** Config for an OTLP/gRPC exporter to `endpoint`, with `extra` lines under `exporters.otlp`. */
const config = (endpoint: string, extra: ReadonlyArray<string> = []) =>
  [
    "exporters:",
    "  otlp:",
    `    endpoint: ${endpoint}`,
    "    protocol: grpc",
    "    timeout: 5s",
    ...extra.map((l) => `    ${l}`),
    "buffer:",
    "  flush_interval: 50ms",
    "shutdown_timeout: 2s",
    "",
  ].join("\n")

/** Sends `requests` over OTLP/HTTP (each answered 200) and waits until the sink holds `points`. */
const sendAndAwait = async (
  r: Running,
  s: GrpcSink,
  requests: ReadonlyArray<ExportMetricsServiceRequest>,
  points: number,
) => {
  for (const req of requests) expect((await postOtlp(r.httpPort, req)).status).toBe(200)
  await waitFor("the gRPC sink", () => (s.datapoints >= points ? true : undefined), 15_000)
}

/** A TCP relay to `port` on 127.0.0.1 that counts the bytes clients send through it. */
const tcpRelay = async (port: number) => {
  let bytes = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1")
    sockets.add(client).add(upstream)
    client.on("data", (c: Buffer) => {
      bytes += c.length
    })
    client.pipe(upstream).pipe(client)
    const end = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on("error", end).on("close", end)
    upstream.on("error", end).on("close", end)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    bytes: () => bytes,
    close: () => {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

const requests = [otlpSeries("grpc_a", 3), otlpSeries("grpc_b", 2, { zone: "z1" }), otlpSeries("grpc_c", 1)]

describe("exporters.otlp.compression: gzip over OTLP/HTTP", () => {
  it("sends the body gzip-compressed with Content-Encoding: gzip", async () => {
    const http = await Sink.start("otlp")
    try {
      running = await startWithReceivers(
        dir(),
        [
          "exporters:",
          "  otlp:",
          `    endpoint: ${http.url}`,
          "    compression: gzip",
          "buffer:",
          "  flush_interval: 50ms",
          "shutdown_timeout: 2s",
          "",
        ].join("\n"),
      )
      for (const req of requests) expect((await postOtlp(running.httpPort, req)).status).toBe(200)
      await waitFor("the HTTP sink", () => (http.datapoints >= 6 ? true : undefined), 15_000)
      expect(flattenOtlp(http.delivered)).toEqual(flattenOtlp(requests))
      for (const r of http.requests) expect(r.headers["content-encoding"]).toBe("gzip")
    } finally {
      await http.close()
    }
  })
})

describe("exporters.otlp.protocol: grpc", () => {
  it("delivers exactly what was received, with headers and the bearer token as metadata", async () => {
    sink = await GrpcSink.start()
    const d = dir()
    const token = writeFile(d, "token", "grpc-token\n")
    running = await startWithReceivers(
      d,
      config(sink.target, ["headers: {x-tenant: team-a}", `bearer_token_file: ${token}`]),
    )
    await sendAndAwait(running, sink, requests, 6)
    expect(flattenOtlp(sink.delivered)).toEqual(flattenOtlp(requests))
    expect(sink.undecodable).toEqual([])
    for (const c of sink.calls) {
      expect(c.metadata["x-tenant"]).toBe("team-a")
      expect(c.metadata.authorization).toBe("Bearer grpc-token")
    }
    expect(
      await settledMetricValue(
        running.governor,
        "metrics_governor_datapoints_sent_total",
        { protocol: "otlp" },
        6,
      ),
    ).toBe(6)
  })

  it("compresses the messages with gzip (compression: gzip)", async () => {
    sink = await GrpcSink.start()
    // The bytes on the wire, through a TCP relay: a 40 KB message of one repeated letter.
    const relay = await tcpRelay(sink.port)
    try {
      const d = dir()
      running = await startWithReceivers(d, config(`http://127.0.0.1:${relay.port}`, ["compression: gzip"]))
      const big = [otlpSeries("grpc_gzip", 2, { pad: "x".repeat(20_000) })]
      await sendAndAwait(running, sink, big, 2)
      expect(flattenOtlp(sink.delivered)).toEqual(flattenOtlp(big))
      expect(relay.bytes()).toBeLessThan(8_000)
    } finally {
      relay.close()
    }
  })

  it("speaks TLS to an https:// endpoint, with a CA, a client certificate and basic auth", async () => {
    sink = await GrpcSink.start({
      tls: {
        ca: fs.readFileSync(fixture("ca.crt")),
        cert: fs.readFileSync(fixture("server.crt")),
        key: fs.readFileSync(fixture("server.key")),
        clientAuth: true,
      },
    })
    const d = dir()
    const password = writeFile(d, "password", "pa55\n")
    running = await startWithReceivers(
      d,
      config(`https://localhost:${sink.port}`, [
        "basic_username: shipper",
        `basic_password_file: ${password}`,
        "tls:",
        `  ca_file: ${fixture("ca.crt")}`,
        `  cert_file: ${fixture("client.crt")}`,
        `  key_file: ${fixture("client.key")}`,
      ]),
    )
    await sendAndAwait(running, sink, requests, 6)
    expect(flattenOtlp(sink.delivered)).toEqual(flattenOtlp(requests))
    expect(sink.calls[0]?.metadata.authorization).toBe(
      `Basic ${Buffer.from("shipper:pa55").toString("base64")}`,
    )
  })

  it("host:port with exporters.otlp.tls is TLS too (the certificate checked for server_name)", async () => {
    const tls = {
      ca: fs.readFileSync(fixture("ca.crt")),
      cert: fs.readFileSync(fixture("server.crt")),
      key: fs.readFileSync(fixture("server.key")),
    }
    sink = await GrpcSink.start({ tls })
    const d = dir()
    running = await startWithReceivers(
      d,
      config(sink.target, ["tls:", `  ca_file: ${fixture("ca.crt")}`, "  server_name: localhost"]),
    )
    await sendAndAwait(running, sink, requests.slice(0, 1), 3)
    expect(flattenOtlp(sink.delivered)).toEqual(flattenOtlp(requests.slice(0, 1)))
  })

  it("a certificate it does not trust is a retried failure; insecure_skip_verify accepts it", async () => {
    const tls = {
      ca: fs.readFileSync(fixture("ca.crt")),
      cert: fs.readFileSync(fixture("server.crt")),
      key: fs.readFileSync(fixture("server.key")),
    }
    sink = await GrpcSink.start({ tls })
    // Node's bundled CAs do not know the test CA: nothing is delivered, the attempts are retried.
    running = await startWithReceivers(dir(), config(`https://${sink.target}`))
    expect((await postOtlp(running.httpPort, otlpSeries("untrusted", 2))).status).toBe(200)
    const g = running.governor
    await waitFor(
      "a retried attempt",
      () => g.logs.find((l) => l.message === "export failed, retrying"),
      10_000,
    )
    expect(sink.calls).toEqual([])
    expect(await metricValue(g, "metrics_governor_export_datapoints_lost_total", { protocol: "otlp" })).toBe(
      0,
    )
    await g.stop()
    running = await startWithReceivers(
      dir(),
      config(`https://${sink.target}`, ["tls:", "  insecure_skip_verify: true"]),
    )
    await sendAndAwait(running, sink, requests.slice(0, 1), 3)
  })

  it("retries UNAVAILABLE and delivers once the sink answers OK", async () => {
    sink = await GrpcSink.start()
    sink.respond = (c) =>
      c.n === 1
        ? { code: grpc.status.UNAVAILABLE, details: "warming up", retryAfterMs: 200 }
        : { code: grpc.status.OK }
    running = await startWithReceivers(dir(), config(sink.target))
    await sendAndAwait(running, sink, [requests[0] as ExportMetricsServiceRequest], 3)
    expect(sink.calls.length).toBe(2)
    expect(flattenOtlp(sink.delivered)).toEqual(flattenOtlp([requests[0] as ExportMetricsServiceRequest]))
    const g = running.governor
    expect(
      await metricValue(g, "metrics_governor_export_requests_total", { protocol: "otlp", result: "retry" }),
    ).toBe(1)
    expect(
      await settledMetricValue(
        g,
        "metrics_governor_export_requests_total",
        { protocol: "otlp", result: "success" },
        1,
      ),
    ).toBe(1)
    expect(await metricValue(g, "metrics_governor_export_datapoints_lost_total", { protocol: "otlp" })).toBe(
      0,
    )
    // RetryInfo of 200 ms: the retry came no earlier.
    expect((sink.calls[1]?.at ?? 0) - (sink.calls[0]?.at ?? 0)).toBeGreaterThanOrEqual(190)
    const log = g.logs.find((l) => l.message === "export failed, retrying")
    expect(log?.fields.error).toBe("gRPC UNAVAILABLE: warming up")
  })

  it("drops what the sink refuses with INVALID_ARGUMENT, counted rejected_by_downstream", async () => {
    sink = await GrpcSink.start()
    sink.respond = () => ({ code: grpc.status.INVALID_ARGUMENT, details: "bad series" })
    running = await startWithReceivers(dir(), config(sink.target))
    expect((await postOtlp(running.httpPort, otlpSeries("refused", 4))).status).toBe(200)
    const g = running.governor
    await waitFor(
      "the rejection",
      async () =>
        (await metricValue(g, "metrics_governor_export_datapoints_lost_total", {
          protocol: "otlp",
          reason: "rejected_by_downstream",
        })) === 4 || undefined,
      15_000,
    )
    expect(sink.calls.length).toBe(1)
    expect(sink.delivered).toEqual([])
    expect(
      await metricValue(g, "metrics_governor_export_requests_total", {
        protocol: "otlp",
        result: "rejected",
      }),
    ).toBe(1)
    const log = g.logs.find((l) => l.message === "export rejected by downstream, not retrying")
    expect(log?.fields.error).toBe("gRPC INVALID_ARGUMENT: bad series")
  })
})

describe("exporters.otlp.protocol and compression reload", () => {
  it("compression applies to the next request; protocol: grpc moves the export to the gRPC endpoint", async () => {
    const http = await Sink.start("otlp")
    sink = await GrpcSink.start()
    try {
      const d = dir()
      const file = (extra: ReadonlyArray<string>) =>
        [
          "exporters:",
          "  otlp:",
          ...extra.map((l) => `    ${l}`),
          "buffer:",
          "  flush_interval: 50ms",
          "shutdown_timeout: 2s",
          "",
        ].join("\n")
      running = await startWithReceivers(d, file([`endpoint: ${http.url}`, "compression: none"]))
      const g = running.governor
      const reload = async (extra: ReadonlyArray<string>, version: number) => {
        writeFile(d, "config.yaml", file(extra))
        g.signal("SIGHUP")
        await g.waitForVersion(version)
      }
      expect((await postOtlp(running.httpPort, otlpSeries("reload_plain", 2))).status).toBe(200)
      await waitFor("the plain request", () => (http.datapoints >= 2 ? true : undefined), 10_000)
      await reload([`endpoint: ${http.url}`], 2) // gzip: the default
      expect((await postOtlp(running.httpPort, otlpSeries("reload_gzip", 2))).status).toBe(200)
      await waitFor("the gzip request", () => (http.datapoints >= 4 ? true : undefined), 10_000)
      expect(http.requests.map((r) => r.headers["content-encoding"])).toEqual([undefined, "gzip"])
      await reload([`endpoint: ${sink.target}`, "protocol: grpc", "compression: gzip"], 3)
      const s = sink
      expect((await postOtlp(running.httpPort, otlpSeries("reload_grpc", 3))).status).toBe(200)
      await waitFor("the gRPC request", () => (s.datapoints >= 3 ? true : undefined), 10_000)
      expect(flattenOtlp(s.delivered)).toEqual(flattenOtlp([otlpSeries("reload_grpc", 3)]))
      expect(http.datapoints).toBe(4)
      expect(g.exit).toBeUndefined()
    } finally {
      await http.close()
    }
  })
})
