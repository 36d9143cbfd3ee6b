import * as zlib from "node:zlib"
import { afterEach, describe, expect, it } from "vitest"
import { encodeWriteRequest } from "../../../src/protocols/prw/codec.js"
import {
  metricValue,
  prwBody,
  prwMany,
  type Running,
  send,
  startWithReceivers,
} from "../../support/data-path.js"
import { tempDir } from "../../support/governor.js"

let running: Running | undefined
afterEach(async () => {
  await running?.governor.stop()
  running = undefined
})

const post = (r: Running, body: Uint8Array, encoding: string) =>
  send(r.prwPort, {
    path: "/api/v1/write",
    headers: { "content-type": "application/x-protobuf", "content-encoding": encoding },
    body,
  })

describe("remote write Content-Encoding", () => {
  it("accepts snappy, gzip and deflate (and zstd) within max_decompressed_bytes; 413 past it; 415 names what is accepted", async () => {
    running = await startWithReceivers(tempDir(), "receivers: { max_decompressed_bytes: 100000 }\n")
    const raw = encodeWriteRequest(prwMany("encoded", 4))
    expect((await post(running, prwBody(prwMany("encoded", 4)), "snappy")).status).toBe(204)
    expect((await post(running, zlib.gzipSync(raw), "gzip")).status).toBe(204)
    expect((await post(running, zlib.deflateSync(raw), "deflate")).status).toBe(204)
    expect(
      await metricValue(running.governor, "metrics_governor_datapoints_received_total", { protocol: "prw" }),
    ).toBe(12)
    const bomb = zlib.gzipSync(Buffer.alloc(10_000_000))
    expect((await post(running, bomb, "gzip")).status).toBe(413)
    expect((await post(running, Buffer.from("not gzip"), "gzip")).status).toBe(400)
    // zstd is accepted too (test/pipeline/zstd-input.test.ts); brotli is not.
    const br = await post(running, zlib.brotliCompressSync(raw), "br")
    expect(br.status).toBe(415)
    expect(br.body.toString("latin1")).toContain("accepted: snappy, gzip, deflate, zstd")
  }, 30_000)
})
