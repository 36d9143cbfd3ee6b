/**
 * `Content-Encoding: zstd` on OTLP/HTTP and remote write, against one real governor process that
 * exports to two sinks: a zstd body is accepted and forwarded intact; a zstd bomb is cut at
 * `receivers.max_decompressed_bytes` (413); a body that is not zstd is 400; an encoding the
 * receivers do not speak is 415 with the list of those they do. The bodies are compressed with the
 * `zstd` command-line tool.
 */

import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encodeOtlpProtobuf } from "../../src/protocols/otlp/protobuf.js"
import type { ExportMetricsServiceRequest } from "../../src/protocols/otlp/types.js"
import { encodeWriteRequest } from "../../src/protocols/prw/codec.js"
import type { WriteRequest } from "../../src/protocols/prw/types.js"
import { flattenOtlp, otlpSeries, prwMany, send, startWithReceivers } from "../support/data-path.js"
import { type Governor, tempDir, waitFor } from "../support/governor.js"
import { Sink } from "../support/sink.js"

const MAX_DECOMPRESSED_BYTES = 256 * 1024

/** `input` compressed by the zstd CLI (read from stdin: no content size in the frame unless given). */
const zstd = (input: Uint8Array, args: ReadonlyArray<string> = []): Buffer => {
  const r = spawnSync("zstd", ["-q", "-c", ...args], { input, maxBuffer: 64 * 1024 * 1024 })
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr?.toString()}`)
  return r.stdout
}

let governor: Governor
let dir: string
let httpPort: number
let prwPort: number
let otlpSink: Sink<ExportMetricsServiceRequest>
let prwSink: Sink<WriteRequest>

beforeAll(async () => {
  dir = tempDir("mg-zstd-")
  otlpSink = await Sink.start("otlp")
  prwSink = await Sink.start("prw")
  ;({ governor, httpPort, prwPort } = await startWithReceivers(
    dir,
    `receivers:
  max_decompressed_bytes: ${MAX_DECOMPRESSED_BYTES}
buffer:
  flush_interval: 50ms
shutdown_timeout: 2s
`,
    { otlp: otlpSink.url, prw: prwSink.url },
  ))
})

afterAll(async () => {
  await governor?.stop()
  await otlpSink?.close()
  await prwSink?.close()
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
})

const OTLP = { "content-type": "application/x-protobuf", "content-encoding": "zstd" }
const PRW = {
  "content-type": "application/x-protobuf",
  "content-encoding": "zstd",
  "x-prometheus-remote-write-version": "0.1.0",
}

/** Zeros behind a valid body's end would not decode; a bomb only has to decompress past the bound. */
const bomb = (bytes: number) => new Uint8Array(bytes)

describe("OTLP/HTTP, Content-Encoding: zstd", () => {
  it("accepts a zstd body and forwards it intact", async () => {
    const req = otlpSeries("zstd_otlp", 50, { pad: "p".repeat(40) })
    const a = await send(httpPort, {
      path: "/v1/metrics",
      headers: OTLP,
      body: zstd(encodeOtlpProtobuf(req)),
    })
    expect(a.status).toBe(200)
    await waitFor("the OTLP sink", () => otlpSink.datapoints >= 50 || undefined, 10_000)
    expect(flattenOtlp(otlpSink.delivered)).toEqual(flattenOtlp([req]))
  })

  it("answers 413 to a zstd bomb without a declared size, and to one that declares its size", async () => {
    const streamed = zstd(bomb(8 * 1024 * 1024))
    expect(streamed.length).toBeLessThan(4096)
    const a = await send(httpPort, { path: "/v1/metrics", headers: OTLP, body: streamed })
    expect(a.status).toBe(413)
    const declared = zstd(bomb(8 * 1024 * 1024), [`--stream-size=${8 * 1024 * 1024}`])
    const b = await send(httpPort, { path: "/v1/metrics", headers: OTLP, body: declared })
    expect(b.status).toBe(413)
  })

  it("answers 400 to a body that is not zstd, or is cut short", async () => {
    const a = await send(httpPort, { path: "/v1/metrics", headers: OTLP, body: "this is not zstd at all" })
    expect(a.status).toBe(400)
    const full = zstd(encodeOtlpProtobuf(otlpSeries("cut", 20)))
    const b = await send(httpPort, {
      path: "/v1/metrics",
      headers: OTLP,
      body: full.subarray(0, full.length - 5),
    })
    expect(b.status).toBe(400)
  })

  it("answers 415 to Content-Encoding: br, listing the accepted encodings", async () => {
    const a = await send(httpPort, {
      path: "/v1/metrics",
      headers: { "content-type": "application/json", "content-encoding": "br" },
      body: "{}",
    })
    expect(a.status).toBe(415)
    expect(a.body.toString()).toContain("accepted: gzip, deflate, zstd, identity")
  })
})

describe("remote write, Content-Encoding: zstd", () => {
  it("accepts a zstd body and forwards it intact", async () => {
    const req = prwMany("zstd_prw", 40)
    const a = await send(prwPort, {
      path: "/api/v1/write",
      headers: PRW,
      body: zstd(encodeWriteRequest(req)),
    })
    expect(a.status).toBe(204)
    await waitFor("the remote-write sink", () => prwSink.datapoints >= 40 || undefined, 10_000)
    expect(prwSink.delivered.flatMap((r) => r.timeseries.map((s) => [s.labels, s.samples]))).toEqual(
      req.timeseries.map((s) => [s.labels, s.samples]),
    )
  })

  it("answers 413 to a zstd bomb", async () => {
    const a = await send(prwPort, { path: "/api/v1/write", headers: PRW, body: zstd(bomb(8 * 1024 * 1024)) })
    expect(a.status).toBe(413)
  })

  it("answers 400 to a body that is not zstd", async () => {
    const a = await send(prwPort, { path: "/api/v1/write", headers: PRW, body: "this is not zstd at all" })
    expect(a.status).toBe(400)
  })

  it("answers 415 to Content-Encoding: br, listing the accepted encodings", async () => {
    const a = await send(prwPort, {
      path: "/api/v1/write",
      headers: { ...PRW, "content-encoding": "br" },
      body: "x",
    })
    expect(a.status).toBe(415)
    expect(a.body.toString()).toContain("accepted: snappy, gzip, deflate, zstd")
  })

  it("is still healthy afterwards", async () => {
    expect(governor.exit).toBeUndefined()
    expect((await governor.get("/live")).status).toBe(200)
  })
})

describe("OTLP/HTTP zstd with decode_threads: 0 (decompressed on the main thread)", () => {
  it("accepts, forwards, and answers 413 and 400 the same way", async () => {
    const own = tempDir("mg-zstd-inline-")
    const s = await Sink.start("otlp")
    const r = await startWithReceivers(
      own,
      `receivers:
  max_decompressed_bytes: ${MAX_DECOMPRESSED_BYTES}
  decode_threads: 0
buffer:
  flush_interval: 50ms
shutdown_timeout: 2s
`,
      { otlp: s.url },
    )
    try {
      const req = otlpSeries("zstd_inline", 7)
      const post = (body: Uint8Array | string) =>
        send(r.httpPort, { path: "/v1/metrics", headers: OTLP, body })
      expect((await post(zstd(encodeOtlpProtobuf(req)))).status).toBe(200)
      await waitFor("the OTLP sink", () => s.datapoints >= 7 || undefined, 10_000)
      expect(flattenOtlp(s.delivered)).toEqual(flattenOtlp([req]))
      expect((await post(zstd(bomb(8 * 1024 * 1024)))).status).toBe(413)
      expect((await post("not zstd")).status).toBe(400)
    } finally {
      await r.governor.stop()
      await s.close()
      fs.rmSync(own, { recursive: true, force: true })
    }
  })
})
