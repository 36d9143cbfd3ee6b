import * as fs from "node:fs"
import * as path from "node:path"
import * as grpc from "@grpc/grpc-js"
import { afterEach, describe, expect, it } from "vitest"
import { changedLimits, LiveReceiverLimits, receiverLimitsOf } from "../../src/pipeline/receiver-limits.js"
import { encodeOtlpProtobuf } from "../../src/protocols/otlp/protobuf.js"
import { GrpcCode } from "../../src/protocols/otlp/status.js"
import { encodeWriteRequest } from "../../src/protocols/prw/codec.js"
import {
  otlpSeries,
  postOtlp,
  postPrw,
  prwMany,
  type Running,
  startWithReceivers,
} from "../support/data-path.js"
import { tempDir, waitFor } from "../support/governor.js"
import { RawMetricsClient } from "../support/grpc.js"

const SERIES = 150
const otlp = otlpSeries("limits_reload", SERIES)
const prw = prwMany("limits_reload", SERIES)
const OTLP_BYTES = encodeOtlpProtobuf(otlp).length
const PRW_BYTES = encodeWriteRequest(prw).length

/** One OTLP/gRPC export of `otlp`: null when accepted, else the error. */
const grpcExport = (port: number): Promise<grpc.ServiceError | null> =>
  new Promise((resolve) => {
    const client = new RawMetricsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
    client.makeUnaryRequest(
      "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(encodeOtlpProtobuf(otlp)),
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
      (err: grpc.ServiceError | null) => {
        client.close()
        resolve(err)
      },
    )
  })

/** What each receiver answered to the same 150 datapoints. */
const answers = async (r: Running) => {
  const [http, remoteWrite, g] = await Promise.all([
    postOtlp(r.httpPort, otlp),
    postPrw(r.prwPort, prw),
    grpcExport(r.grpcPort),
  ])
  return {
    otlpHttp: { status: http.status, body: http.body.toString("utf8") },
    prw: { status: remoteWrite.status, body: remoteWrite.body.toString("utf8") },
    grpc: g === null ? { code: GrpcCode.OK, details: "" } : { code: g.code, details: g.details },
  }
}

const configOf = (receivers: Record<string, number>): string =>
  ["receivers:", ...Object.entries(receivers).map(([k, v]) => `  ${k}: ${v}`), ""].join("\n")

/**
 * Writes `config.yaml` with the given receivers' keys, sends SIGHUP and waits for the new version,
 * which must need no restart.
 */
const reloaderOf = async (r: Running, dir: string) => {
  let version = (await r.governor.status()).version
  return async (receivers: Record<string, number>): Promise<void> => {
    fs.writeFileSync(path.join(dir, "config.yaml"), configOf(receivers))
    r.governor.signal("SIGHUP")
    await r.governor.waitForVersion(++version)
    const status = (await (await r.governor.get("/api/v1/status/config")).json()) as {
      restart_required: Array<string>
    }
    expect(status.restart_required).toEqual([])
  }
}

let running: Running | undefined
afterEach(async () => {
  await running?.governor.stop()
  running = undefined
})

describe("LiveReceiverLimits", () => {
  it("names exactly the keys that changed, and keeps the limits when none did", () => {
    const a = receiverLimitsOf({})
    expect(changedLimits(a, receiverLimitsOf({}))).toEqual([])
    expect(
      changedLimits(
        a,
        receiverLimitsOf({ receivers: { max_request_bytes: 1, max_elements_per_request: 2 } }),
      ),
    ).toEqual(["receivers.max_request_bytes", "receivers.max_elements_per_request"])
    const live = new LiveReceiverLimits({})
    const bounds = live.bounds
    expect(live.set({ receivers: { decode_threads: 3 } })).toEqual([])
    expect(live.bounds).toBe(bounds)
    expect(live.set({ receivers: { max_datapoints_per_request: 7, max_decompressed_bytes: 9 } })).toEqual([
      "receivers.max_decompressed_bytes",
      "receivers.max_datapoints_per_request",
    ])
    expect({ max: live.maxDecompressedBytes, datapoints: live.bounds.maxDatapoints }).toEqual({
      max: 9,
      datapoints: 7,
    })
  })
})

describe("reload of the receivers' request limits", () => {
  it("max_decompressed_bytes, max_datapoints_per_request and max_request_bytes apply on SIGHUP, raised or lowered, on all three receivers", async () => {
    // The bodies are larger than the first bound and smaller than the later ones.
    expect(Math.min(OTLP_BYTES, PRW_BYTES)).toBeGreaterThan(2_000)
    const dir = tempDir()
    running = await startWithReceivers(
      dir,
      configOf({ max_decompressed_bytes: 2_000, max_datapoints_per_request: 1_000 }),
    )
    const r = running
    const pid = r.governor.pid
    const reload = await reloaderOf(r, dir)

    // At start: every body decompresses to more than 2,000 bytes.
    const first = await answers(r)
    expect(first.otlpHttp).toMatchObject({ status: 413, body: expect.stringContaining("2000 bytes") })
    expect(first.prw).toMatchObject({ status: 413, body: expect.stringContaining("2000 bytes") })
    expect(first.grpc).toMatchObject({ code: GrpcCode.RESOURCE_EXHAUSTED })
    expect(first.grpc.details).toMatch(/larger than/)

    // Raised above its start value (gRPC's message bound included), and fewer datapoints allowed:
    // now the datapoint bound is what refuses.
    await reload({ max_decompressed_bytes: 10_000_000, max_datapoints_per_request: 100 })
    const second = await answers(r)
    const tooMany = "request has more than 100 datapoints (receivers.max_datapoints_per_request)"
    expect(second.otlpHttp).toMatchObject({ status: 413, body: expect.stringContaining(tooMany) })
    expect(second.prw).toMatchObject({ status: 413, body: expect.stringContaining(tooMany) })
    expect(second.grpc).toEqual({ code: GrpcCode.RESOURCE_EXHAUSTED, details: tooMany })

    // Enough datapoints: accepted everywhere.
    await reload({ max_decompressed_bytes: 10_000_000, max_datapoints_per_request: 1_000 })
    expect(await answers(r)).toMatchObject({
      otlpHttp: { status: 200 },
      prw: { status: 204 },
      grpc: { code: GrpcCode.OK },
    })

    // The bound on the body as sent (HTTP receivers; gRPC has max_decompressed_bytes).
    await reload({
      max_request_bytes: 100,
      max_decompressed_bytes: 10_000_000,
      max_datapoints_per_request: 1_000,
    })
    expect(await answers(r)).toMatchObject({
      otlpHttp: { status: 413, body: "request body exceeds 100 bytes\n" },
      prw: { status: 413, body: "request body exceeds 100 bytes\n" },
      grpc: { code: GrpcCode.OK },
    })

    const changes = r.governor.logs.filter(
      (l) => l.message === "receivers' request limits changed by the reload: in force for new requests",
    )
    expect(changes.map((l) => l.fields?.changed)).toEqual([
      ["receivers.max_decompressed_bytes", "receivers.max_datapoints_per_request"],
      ["receivers.max_datapoints_per_request"],
      ["receivers.max_request_bytes"],
    ])
    expect(r.governor.pid).toBe(pid)
  }, 60_000)
})

describe("reload of receivers.decode_threads", () => {
  it("starts and stops decoding threads on SIGHUP, and no request in flight fails", async () => {
    const dir = tempDir()
    running = await startWithReceivers(dir, configOf({ decode_threads: 0 }))
    const r = running
    const pid = r.governor.pid
    const reload = await reloaderOf(r, dir)
    /** The process's threads. */
    const threads = () => fs.readdirSync(`/proc/${pid}/task`).length
    const statuses: Array<number> = []
    /** 16 requests at once, half OTLP/HTTP, half remote write. */
    const burst = async () => {
      const answered = await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          i % 2 === 0 ? postOtlp(r.httpPort, otlp) : postPrw(r.prwPort, prw),
        ),
      )
      for (const a of answered) statuses.push(a.status)
    }
    await burst()
    const inline = threads()

    await reload({ decode_threads: 2 })
    await burst()
    // Two threads per protocol, started by the first bodies that needed them.
    expect(threads()).toBeGreaterThanOrEqual(inline + 4)

    // Reloads while requests are in flight: each decoder replaced finishes the bodies it holds.
    let sending = true
    const sender = (async () => {
      while (sending) await burst()
    })()
    await reload({ decode_threads: 1 })
    await reload({ decode_threads: 3 })
    await reload({ decode_threads: 0 })
    sending = false
    await sender
    // Back to decoding in the main thread: every decoding thread has stopped.
    await waitFor(
      "the decoding threads stopped",
      async () => (threads() <= inline ? true : undefined),
      10_000,
    )

    expect(statuses.length).toBeGreaterThan(32)
    expect(statuses.filter((s) => s !== 200 && s !== 204)).toEqual([])
    const changes = r.governor.logs.filter(
      (l) => l.message === "receivers' decoding threads changed by the reload: in use for new requests",
    )
    expect(changes.map((l) => l.fields?.decode_threads)).toEqual([
      { otlp: 2, prw: 2 },
      { otlp: 1, prw: 1 },
      { otlp: 3, prw: 3 },
      { otlp: 0, prw: 0 },
    ])
    expect(r.governor.pid).toBe(pid)
  }, 60_000)
})
