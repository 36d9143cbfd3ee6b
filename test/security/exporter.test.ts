import * as fs from "node:fs"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import type * as tls from "node:tls"
import { afterEach, describe, expect, it } from "vitest"
import {
  metricValue,
  otlpSeries,
  postOtlp,
  type Running,
  startWithReceivers,
  writeFile,
} from "../support/data-path.js"
import { ROOT, tempDir, waitFor } from "../support/governor.js"

const FIXTURES = path.join(ROOT, "test/fixtures/tls")
const fixture = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES, name))

interface Seen {
  readonly authorization: string | undefined
  readonly clientCn: string | undefined
}

/** An HTTPS sink on loopback (server.crt, signed by the test CA); with `mutual`, it requires a client certificate. */
const startSink = async (mutual: boolean) => {
  const seen: Array<Seen> = []
  const server = https.createServer(
    {
      cert: fixture("server.crt"),
      key: fixture("server.key"),
      ...(mutual ? { ca: fixture("ca.crt"), requestCert: true, rejectUnauthorized: true } : {}),
    },
    (req, res) => {
      const peer = (req.socket as tls.TLSSocket).getPeerCertificate()
      seen.push({
        authorization: req.headers.authorization,
        clientCn: peer?.subject?.CN as string | undefined,
      })
      req.resume()
      req.on("end", () => {
        res.statusCode = 200
        res.end()
      })
    },
  )
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as AddressInfo).port
  return { seen, port, close: () => new Promise<void>((r) => server.close(() => r())) }
}

let running: Running | undefined
let closeSink: (() => Promise<void>) | undefined
afterEach(async () => {
  await running?.governor.stop()
  await closeSink?.()
  running = undefined
  closeSink = undefined
})

describe("exporters.<protocol>.tls", () => {
  it("exports to an HTTPS sink signed by a custom CA, with a client certificate and basic auth", async () => {
    const sink = await startSink(true)
    closeSink = sink.close
    const dir = tempDir()
    const passwordFile = writeFile(dir, "password", "expw\n")
    const config = [
      "exporters:",
      "  otlp:",
      "    basic_username: shipper",
      `    basic_password_file: ${passwordFile}`,
      "    tls:",
      `      ca_file: ${path.join(FIXTURES, "ca.crt")}`,
      `      cert_file: ${path.join(FIXTURES, "client.crt")}`,
      `      key_file: ${path.join(FIXTURES, "client.key")}`,
      "buffer: { flush_interval: 50ms }",
      "",
    ].join("\n")
    running = await startWithReceivers(dir, config, { otlp: `https://127.0.0.1:${sink.port}/v1/metrics` })
    expect((await postOtlp(running.httpPort, otlpSeries("exp_tls", 3))).status).toBe(200)
    await waitFor(
      "the sink to receive the export",
      () => (sink.seen.length > 0 ? true : undefined),
      10_000,
    ).catch((e) => {
      console.log(JSON.stringify(running?.governor.logs.filter((l) => l.level !== "info")))
      throw e
    })
    expect(sink.seen[0]).toEqual({
      authorization: `Basic ${Buffer.from("shipper:expw").toString("base64")}`,
      clientCn: "client",
    })
    await waitFor(
      "datapoints counted sent",
      async () =>
        (await metricValue((running as Running).governor, "metrics_governor_datapoints_sent_total", {
          protocol: "otlp",
        })) === 3
          ? true
          : undefined,
      10_000,
    )
  }, 30_000)

  it("a server_name the sink's certificate does not carry is refused: nothing is delivered", async () => {
    const sink = await startSink(false)
    closeSink = sink.close
    const dir = tempDir()
    // The CA is right but the name is not one the certificate carries: refused.
    const config = [
      "exporters:",
      "  otlp:",
      "    tls:",
      `      ca_file: ${path.join(FIXTURES, "ca.crt")}`,
      "      server_name: other.example",
      "buffer: { flush_interval: 50ms }",
      "",
    ].join("\n")
    running = await startWithReceivers(dir, config, { otlp: `https://127.0.0.1:${sink.port}/v1/metrics` })
    expect((await postOtlp(running.httpPort, otlpSeries("exp_tls", 2))).status).toBe(200)
    await waitFor(
      "a failed export",
      () =>
        (running as Running).governor.logs.some((l) => /export/i.test(l.message) && l.level !== "info")
          ? true
          : undefined,
      10_000,
    )
    expect(sink.seen.length).toBe(0)
    expect(
      await metricValue(running.governor, "metrics_governor_datapoints_sent_total", { protocol: "otlp" }),
    ).toBe(0)
  }, 30_000)
})
