import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Effect, Either } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { post } from "../../src/export/exporter.js"
import { encodeWriteRequest } from "../../src/protocols/prw/codec.js"
import { prwEncoder } from "../../src/protocols/prw/protocol.js"
import { compressBody, decompressBody } from "../../src/protocols/prw/snappy.js"
import type { WriteRequest } from "../../src/protocols/prw/types.js"
import { bodyLength } from "../../src/wire/bytes.js"
import { decodeWriteRequest } from "../support/prw.js"

const request = (job: string, n: number): WriteRequest => ({
  timeseries: Array.from({ length: n }, (_, i) => ({
    labels: [
      { name: "__name__", value: "up" },
      { name: "instance", value: `host-${i}` },
      { name: "job", value: job },
    ],
    samples: [{ value: i, timestamp: 1_700_000_000_000 + i }],
    exemplars: [],
    histograms: [],
    unknown: [],
  })),
  metadata: [],
  unknown: [],
})

let server: http.Server | undefined
afterEach(
  () => new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve()))),
)

describe("a batch of buffered remote-write requests on the wire", () => {
  it("goes out as its parts, one after the other, under a Content-Length of all of them (not chunked), and arrives as the one request that merges them", async () => {
    const got: Array<{ headers: http.IncomingHttpHeaders; body: Buffer }> = []
    server = http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        got.push({ headers: req.headers, body: Buffer.concat(chunks) })
        res.statusCode = 204
        res.end()
      })
    })
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/write`

    const requests = [request("a", 300), request("b", 1), request("c", 1200)]
    const encoded = prwEncoder.encode(requests.map((r) => compressBody(encodeWriteRequest(r))))
    expect(encoded.body).toBeInstanceOf(Array)
    await Effect.runPromise(post(url, encoded.body, encoded.headers, 5_000))

    expect(got).toHaveLength(1)
    const { headers, body } = got[0] as { headers: http.IncomingHttpHeaders; body: Buffer }
    expect(headers["transfer-encoding"]).toBeUndefined()
    expect(Number(headers["content-length"])).toBe(bodyLength(encoded.body))
    expect(body.length).toBe(bodyLength(encoded.body))
    const merged = Either.getOrThrow(decodeWriteRequest(Either.getOrThrow(decompressBody(body, 1 << 24))))
    expect(merged.timeseries.map((s) => s.labels.find((l) => l.name === "job")?.value)).toEqual(
      requests.flatMap((r) => r.timeseries.map(() => r.timeseries[0]?.labels[2]?.value)),
    )
    expect(merged.timeseries).toHaveLength(1501)
  })
})
