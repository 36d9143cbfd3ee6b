/**
 * The downstream of the end-to-end benchmarks, in its own process so that it never shares an
 * event loop with a load generator: `node --import tsx bench/sink.ts PORT none|prw`.
 *
 * Answers every POST with 204 once the body is read. `none` does not look at the body (cheap, so the
 * sink is not the bottleneck of a throughput run); `prw` decodes each remote-write body (snappy +
 * protobuf) and counts its samples, to check that nothing is lost. `GET /count` returns
 * `{requests, bytes, datapoints, errors}`.
 */
import * as http from "node:http"
import { Either } from "effect"
import { datapointCount } from "../src/protocols/prw/adapter.js"
import { decompressBody } from "../src/protocols/prw/snappy.js"
import { decodeWriteRequest } from "../test/support/prw.js"

const port = Number(process.argv[2])
const decode = process.argv[3] === "prw"
const counts = { requests: 0, bytes: 0, datapoints: 0, errors: 0 }

const server = http.createServer((req, res) => {
  if (req.method === "GET") {
    res.setHeader("content-type", "application/json")
    res.end(JSON.stringify(counts))
    return
  }
  if (!decode) {
    let bytes = 0
    req.on("data", (c: Buffer) => {
      bytes += c.length
    })
    req.on("end", () => {
      counts.requests++
      counts.bytes += bytes
      res.statusCode = 204
      res.end()
    })
    return
  }
  const chunks: Array<Buffer> = []
  req.on("data", (c: Buffer) => chunks.push(c))
  req.on("end", () => {
    const body = Buffer.concat(chunks)
    counts.requests++
    counts.bytes += body.length
    const decoded = Either.flatMap(decompressBody(body, 1 << 30), decodeWriteRequest)
    if (Either.isLeft(decoded)) {
      counts.errors++
      res.statusCode = 400
      res.end()
      return
    }
    for (const ts of decoded.right.timeseries) counts.datapoints += datapointCount(ts)
    res.statusCode = 204
    res.end()
  })
})
server.keepAliveTimeout = 60_000
server.listen(port, "127.0.0.1")
process.on("SIGTERM", () => {
  server.closeAllConnections()
  server.close(() => process.exit(0))
})
