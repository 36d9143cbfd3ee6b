import * as zlib from "node:zlib"
import { afterEach, describe, expect, it } from "vitest"
import { encodeOtlpProtobuf } from "../../../src/protocols/otlp/protobuf.js"
import { metricValue, otlpSeries, type Running, send, startWithReceivers } from "../../support/data-path.js"
import { tempDir } from "../../support/governor.js"

let running: Running | undefined
afterEach(async () => {
  await running?.governor.stop()
  running = undefined
})

const post = (r: Running, body: Uint8Array, encoding: string) =>
  send(r.httpPort, {
    path: "/v1/metrics",
    headers: { "content-type": "application/x-protobuf", "content-encoding": encoding },
    body,
  })

describe("OTLP/HTTP Content-Encoding", () => {
  it("accepts deflate (zlib and raw) within max_decompressed_bytes; 413 past it; 415 names what is accepted", async () => {
    running = await startWithReceivers(tempDir(), "receivers: { max_decompressed_bytes: 100000 }\n")
    const bytes = encodeOtlpProtobuf(otlpSeries("deflated", 5))
    expect((await post(running, zlib.deflateSync(bytes), "deflate")).status).toBe(200)
    expect((await post(running, zlib.deflateRawSync(bytes), "deflate")).status).toBe(200)
    expect((await post(running, zlib.gzipSync(bytes), "gzip")).status).toBe(200)
    expect(
      await metricValue(running.governor, "metrics_governor_datapoints_received_total", { protocol: "otlp" }),
    ).toBe(15)
    // A bomb: 10 MB of zeros in a few KB; inflation stops at the bound.
    const bomb = zlib.deflateSync(Buffer.alloc(10_000_000))
    expect((await post(running, bomb, "deflate")).status).toBe(413)
    expect((await post(running, Buffer.from("not deflate"), "deflate")).status).toBe(400)
    const br = await post(running, zlib.brotliCompressSync(bytes), "br")
    expect(br.status).toBe(415)
    expect(br.body.toString("latin1")).toContain("accepted: gzip, deflate, zstd, identity")
  }, 30_000)
})
