/**
 * Decompression bombs made of empty messages, against one real governor process with the default
 * bounds: a few tens of kilobytes that would decode to tens of millions of objects are answered
 * 413 (OTLP/gRPC: RESOURCE_EXHAUSTED) within a second or two, and the process keeps serving. Before
 * `receivers.max_datapoints_per_request` and `receivers.max_elements_per_request`, the first of
 * these took 71 s and ended with the process out of memory.
 */

import * as fs from "node:fs"
import * as zlib from "node:zlib"
import * as grpc from "@grpc/grpc-js"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encodeOtlpProtobuf } from "../../src/protocols/otlp/protobuf.js"
import { compressBody } from "../../src/protocols/prw/snappy.js"
import {
  metricValue,
  otlpSeries,
  postOtlp,
  postPrw,
  prwMany,
  send,
  startWithReceivers,
} from "../support/data-path.js"
import { type Governor, tempDir } from "../support/governor.js"
import { RawMetricsClient } from "../support/grpc.js"

/** Defaults for the bounds under test; only shutdown is made quick. */
const CONFIG = "shutdown_timeout: 2s\n"

/** A request that could not finish in this time is the break under test, not a slow machine. */
const BOMB_TIMEOUT_MS = 20_000

let governor: Governor
let dir: string
let httpPort: number
let grpcPort: number
let prwPort: number

beforeAll(async () => {
  dir = tempDir("mg-bounds-")
  ;({ governor, httpPort, grpcPort, prwPort } = await startWithReceivers(dir, CONFIG))
})

afterAll(async () => {
  await governor?.stop()
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
})

// --- bombs -------------------------------------------------------------------------------------

/** `n` copies of `unit`, built by doubling (a 60 MB buffer in a few milliseconds). */
const repeat = (unit: Uint8Array, n: number): Buffer => {
  const out = Buffer.allocUnsafe(unit.length * n)
  out.set(unit, 0)
  let filled = unit.length
  while (filled < out.length) {
    const k = Math.min(filled, out.length - filled)
    out.copyWithin(filled, 0, k)
    filled += k
  }
  return out
}

/** OTLP/JSON: one gauge of `n` empty data points, `{}` each (about 3 bytes a point). */
const jsonBomb = (n: number): Buffer =>
  Buffer.concat([
    Buffer.from('{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":['),
    repeat(Buffer.from("{},"), n - 1),
    Buffer.from("{}]}}]}]}]}"),
  ])

const varint = (v: number): number[] => {
  const out: number[] = []
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return out
}

/** A length-delimited field `field` around `payload`. */
const lenField = (field: number, payload: Buffer): Buffer =>
  Buffer.concat([Buffer.from([(field << 3) | 2, ...varint(payload.length)]), payload])

/** OTLP protobuf: one gauge of `n` empty data points (`0a 00`, 2 bytes a point). */
const protobufBomb = (n: number): Buffer => {
  const gauge = repeat(Buffer.from([0x0a, 0x00]), n)
  const metric = Buffer.concat([Buffer.from([0x0a, 0x01, 0x78]), lenField(5, gauge)]) // name "x", gauge
  return lenField(1, lenField(2, lenField(2, metric))) // resourceMetrics > scopeMetrics > metrics
}

/** Remote write: `n` series `{__name__="b"}` without samples (17 bytes a series). */
const seriesBomb = (n: number): Buffer => {
  const label = lenField(
    1,
    Buffer.concat([lenField(1, Buffer.from("__name__")), lenField(2, Buffer.from("b"))]),
  )
  return repeat(lenField(1, label), n)
}

/** Remote write: one series `{__name__="b"}` with `n` empty samples (`12 00`, 2 bytes a sample). */
const samplesBomb = (n: number): Buffer => {
  const label = lenField(
    1,
    Buffer.concat([lenField(1, Buffer.from("__name__")), lenField(2, Buffer.from("b"))]),
  )
  return lenField(1, Buffer.concat([label, repeat(Buffer.from([0x12, 0x00]), n)]))
}

// --- checks ------------------------------------------------------------------------------------

/** One gRPC call with gzip message compression (as the bombs were sent). */
const grpcCall = (bytes: Uint8Array): Promise<{ code: number; details: string; ms: number }> => {
  const client = new RawMetricsClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(), {
    "grpc.default_compression_algorithm": 2, // gzip
    "grpc.max_send_message_length": -1,
  })
  const started = Date.now()
  return new Promise((resolve) => {
    const method = (
      client as unknown as {
        export: (
          req: Buffer,
          options: grpc.CallOptions,
          cb: (err: grpc.ServiceError | null, res: Buffer) => void,
        ) => void
      }
    ).export
    method.call(client, Buffer.from(bytes), { deadline: Date.now() + BOMB_TIMEOUT_MS }, (err) => {
      client.close()
      resolve({
        code: err === null ? grpc.status.OK : err.code,
        details: err === null ? "" : err.details,
        ms: Date.now() - started,
      })
    })
  })
}

/** The process is alive and answers on every receiver. */
const expectServing = async () => {
  expect(governor.exit).toBeUndefined()
  expect((await governor.get("/live")).status).toBe(200)
  expect((await postOtlp(httpPort, otlpSeries("after_bomb", 2))).status).toBe(200)
  expect((await postPrw(prwPort, prwMany("after_bomb", 2))).status).toBe(204)
  expect((await grpcCall(encodeOtlpProtobuf(otlpSeries("after_bomb_grpc", 1)))).code).toBe(grpc.status.OK)
}

const postBomb = (path: string, headers: Record<string, string>, body: Uint8Array) => {
  const started = Date.now()
  return send(path === "/api/v1/write" ? prwPort : httpPort, {
    path,
    headers,
    body,
    timeoutMs: BOMB_TIMEOUT_MS,
  }).then((a) => ({ ...a, ms: Date.now() - started }))
}

describe("request bounds (receivers.max_datapoints_per_request, max_elements_per_request)", () => {
  it(
    "OTLP/HTTP JSON: 21M empty data points in 61 KB of gzip are answered 413",
    async () => {
      const body = zlib.gzipSync(jsonBomb(21_000_000))
      expect(body.length).toBeLessThan(100_000)
      const a = await postBomb(
        "/v1/metrics",
        { "content-type": "application/json", "content-encoding": "gzip" },
        body,
      )
      expect(a.status).toBe(413)
      expect(a.body.toString()).toContain("receivers.max_elements_per_request")
      await expectServing()
    },
    BOMB_TIMEOUT_MS + 10_000,
  )

  it(
    "OTLP/HTTP protobuf: 30M empty data points in 58 KB of gzip are answered 413",
    async () => {
      const body = zlib.gzipSync(protobufBomb(30_000_000))
      const a = await postBomb(
        "/v1/metrics",
        { "content-type": "application/x-protobuf", "content-encoding": "gzip" },
        body,
      )
      expect(a.status).toBe(413)
      await expectServing()
    },
    BOMB_TIMEOUT_MS + 10_000,
  )

  it(
    "OTLP/gRPC: the same message is answered RESOURCE_EXHAUSTED and counted",
    async () => {
      const r = await grpcCall(protobufBomb(30_000_000))
      expect(r.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
      expect(r.details).toContain("receivers.max_datapoints_per_request")
      await expectServing()
      expect(
        await metricValue(governor, "metrics_governor_receiver_requests_total", {
          protocol: "otlp",
          code: "grpc_too_large",
        }),
      ).toBe(1)
    },
    BOMB_TIMEOUT_MS + 10_000,
  )

  it(
    "remote write: 3.5M series without samples are answered 413",
    async () => {
      const body = compressBody(seriesBomb(3_500_000))
      const a = await postBomb(
        "/api/v1/write",
        { "content-type": "application/x-protobuf", "content-encoding": "snappy" },
        body,
      )
      expect(a.status).toBe(413)
      expect(a.body.toString()).toContain("receivers.max_elements_per_request")
      await expectServing()
    },
    BOMB_TIMEOUT_MS + 10_000,
  )

  it(
    "remote write: 30M empty samples of one series are answered 413",
    async () => {
      const body = compressBody(samplesBomb(30_000_000))
      const a = await postBomb(
        "/api/v1/write",
        { "content-type": "application/x-protobuf", "content-encoding": "snappy" },
        body,
      )
      expect(a.status).toBe(413)
      expect(a.body.toString()).toContain("receivers.max_datapoints_per_request")
      await expectServing()
    },
    BOMB_TIMEOUT_MS + 10_000,
  )
})
