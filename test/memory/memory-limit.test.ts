import * as fs from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import * as grpc from "@grpc/grpc-js"
import { afterEach, describe, expect, it } from "vitest"
import { encodeOtlpProtobuf } from "../../src/protocols/otlp/protobuf.js"
import { otlpSeries, postOtlp } from "../support/data-path.js"
import { freePort, type Governor, sleep, startGovernor } from "../support/governor.js"
import { RawMetricsClient } from "../support/grpc.js"
import { remoteWriteBody } from "../support/remote-write.js"

const MiB = 1024 * 1024
const LIMIT = 300 * MiB

const rssOf = (pid: number): number => {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  return Number(m?.[1] ?? Number.NaN) * 1024
}

/** A downstream that takes `delayMs` to answer every request: the exporter falls behind. */
const slowDownstream = async (delayMs: number): Promise<Server> => {
  const server = createServer((req, res) => {
    req.resume()
    req.on("end", () => {
      setTimeout(() => {
        res.statusCode = 204
        res.end()
      }, delayMs)
    })
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return server
}

let gov: Governor | undefined
let downstream: Server | undefined
afterEach(async () => {
  await gov?.stop()
  gov = undefined
  downstream?.closeAllConnections()
  await new Promise((r) => downstream?.close(r) ?? r(undefined))
  downstream = undefined
})

describe("-memory-limit", () => {
  it("under saturating load with a slow downstream, resident memory stays under the limit; the receiver pushes back (503 + Retry-After), counted by reason; the process keeps serving", async () => {
    downstream = await slowDownstream(1_500)
    const prwPort = await freePort()
    gov = await startGovernor({
      args: [
        "-prw-listen",
        `127.0.0.1:${prwPort}`,
        "-prw-exporter-endpoint",
        `http://127.0.0.1:${(downstream.address() as AddressInfo).port}/api/v1/write`,
        "-memory-limit",
        "300MiB",
      ],
    })
    expect(await gov.metric("metrics_governor_memory_limit_bytes")).toBe(LIMIT)
    const started = gov.logs.find((l) => l.message === "memory limit in force")
    expect(started?.fields).toMatchObject({ limit_bytes: LIMIT, source: "flag" })

    // Bodies that compress poorly: 3,000 series with distinct long label values each.
    const bodies = Array.from({ length: 4 }, (_, b) =>
      remoteWriteBody(
        Array.from({ length: 3_000 }, (_, i) => ({
          labels: {
            __name__: `load_${b}`,
            id: `${i}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`,
            pod: `pod-${(i * 7919) % 1000}-${Math.random().toString(36).slice(2)}`,
          },
          samples: [{ value: i, timestamp: 1_700_000_000_000 + i }],
        })),
      ),
    )
    const url = `http://127.0.0.1:${prwPort}/api/v1/write`
    const statuses = new Map<number, number>()
    let retryAfterMissing = 0
    let peak = 0
    const pid = gov.pid
    const deadline = Date.now() + 6_000
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid))
    }, 20)
    const sender = async (k: number) => {
      let n = 0
      // Bounded in count and in time.
      while (Date.now() < deadline && n < 2_000) {
        const body = bodies[(k + n++) % bodies.length] as Uint8Array
        try {
          const res = await fetch(url, {
            method: "POST",
            body,
            headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy" },
          })
          await res.arrayBuffer()
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
          if (res.status === 503 && res.headers.get("retry-after") === null) retryAfterMissing++
        } catch {
          statuses.set(0, (statuses.get(0) ?? 0) + 1)
        }
      }
    }
    await Promise.all(Array.from({ length: 32 }, (_, k) => sender(k)))
    clearInterval(sampler)
    peak = Math.max(peak, rssOf(pid))

    expect(gov.exit).toBeUndefined()
    expect(peak).toBeLessThan(LIMIT)
    expect(statuses.get(204) ?? 0).toBeGreaterThan(0)
    expect(statuses.get(503) ?? 0).toBeGreaterThan(0)
    expect(retryAfterMissing).toBe(0)
    const refusedMemory =
      (await gov.metric('metrics_governor_receiver_refused_total{protocol="prw",reason="memory"}')) ?? 0
    const refusedBuffer =
      (await gov.metric('metrics_governor_receiver_refused_total{protocol="prw",reason="buffer_full"}')) ?? 0
    expect(refusedMemory + refusedBuffer).toBe(statuses.get(503))
    expect(refusedMemory).toBeGreaterThan(0)
    expect((await gov.get("/ready")).status).toBe(200)
    // Accepted is what was answered 204, nothing else: refusals cost nothing.
    expect(await gov.metric('metrics_governor_datapoints_received_total{protocol="prw"}')).toBe(
      (statuses.get(204) ?? 0) * 3_000,
    )
    await sleep(0)
  }, 30_000)
})

describe("-memory-limit: every receiver's push-back", () => {
  it("over the limit with a request in flight, OTLP/HTTP answers 429 with Retry-After and OTLP/gRPC RESOURCE_EXHAUSTED with a RetryInfo; one request at a time still goes through", async () => {
    const httpPort = await freePort()
    const grpcPort = await freePort()
    gov = await startGovernor({
      args: [
        "-http-listen",
        `127.0.0.1:${httpPort}`,
        "-grpc-listen",
        `127.0.0.1:${grpcPort}`,
        // Below what the process takes at rest: always over the refusal mark.
        "-memory-limit",
        "64MiB",
      ],
    })
    const body = otlpSeries("pressure", 2_000)
    const http = await Promise.all(Array.from({ length: 24 }, () => postOtlp(httpPort, body)))
    const codes = http.map((a) => a.status)
    expect(codes).toContain(200)
    expect(codes).toContain(429)
    for (const a of http.filter((x) => x.status === 429)) expect(a.headers["retry-after"]).toBe("1")

    const client = new RawMetricsClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure())
    const call = (bytes: Uint8Array) =>
      new Promise<grpc.ServiceError | null>((resolve) =>
        (
          client as unknown as {
            export: (
              req: Buffer,
              options: grpc.CallOptions,
              cb: (err: grpc.ServiceError | null) => void,
            ) => void
          }
        ).export(Buffer.from(bytes), { deadline: Date.now() + 10_000 }, (err) => resolve(err)),
      )
    const encoded = encodeOtlpProtobuf(body)
    const rpc = await Promise.all(Array.from({ length: 24 }, () => call(encoded)))
    client.close()
    expect(rpc.filter((e) => e === null).length).toBeGreaterThan(0)
    const exhausted = rpc.filter((e) => e?.code === grpc.status.RESOURCE_EXHAUSTED)
    expect(exhausted.length).toBeGreaterThan(0)
    for (const e of exhausted) {
      expect(e?.details).toBe("memory limit reached, retry later")
      expect(e?.metadata.get("grpc-status-details-bin").length).toBe(1)
    }
    const refused = await gov.metric(
      'metrics_governor_receiver_refused_total{protocol="otlp",reason="memory"}',
    )
    expect(refused).toBe(codes.filter((c) => c === 429).length + exhausted.length)
  }, 30_000)
})
