import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Either } from "effect"
import { encodeWriteRequest } from "../../src/protocols/prw/codec.js"
import { compressBody, decompressBody } from "../../src/protocols/prw/snappy.js"
import type { TimeSeries, WriteRequest } from "../../src/protocols/prw/types.js"
import { decodeWriteRequest } from "./prw.js"

/** A series as tests write it: labels (with `__name__`) and samples. */
export interface TestSeries {
  readonly labels: Readonly<Record<string, string>>
  readonly samples: ReadonlyArray<{ value: number; timestamp: number }>
}

const toTimeSeries = (s: TestSeries): TimeSeries => ({
  labels: Object.entries(s.labels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => ({ name, value })),
  samples: s.samples,
  exemplars: [],
  histograms: [],
  unknown: [],
})

/** A remote-write body (snappy-compressed protobuf) for these series. */
export const remoteWriteBody = (series: ReadonlyArray<TestSeries>): Uint8Array =>
  compressBody(encodeWriteRequest({ timeseries: series.map(toTimeSeries), metadata: [], unknown: [] }))

/** POSTs a remote-write request; returns the status code. */
export const pushRemoteWrite = async (url: string, series: ReadonlyArray<TestSeries>): Promise<number> => {
  const res = await fetch(url, {
    method: "POST",
    body: remoteWriteBody(series),
    headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy" },
  })
  await res.arrayBuffer()
  return res.status
}

/** A remote-write receiver on loopback that records every series it is sent. */
export class RemoteWriteSink {
  readonly received: Array<TimeSeries> = []
  requests = 0
  private constructor(readonly server: Server) {}

  static start(): Promise<RemoteWriteSink> {
    return new Promise((resolve) => {
      const sink: { self?: RemoteWriteSink } = {}
      const server = createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => {
          const raw = decompressBody(Buffer.concat(chunks), 1 << 30)
          const decoded = Either.flatMap(raw, decodeWriteRequest)
          if (Either.isLeft(decoded)) {
            res.statusCode = 400
            res.end(decoded.left.message)
            return
          }
          const self = sink.self as RemoteWriteSink
          self.requests++
          for (const ts of (decoded.right as WriteRequest).timeseries) self.received.push(ts)
          res.statusCode = 204
          res.end()
        })
      })
      server.listen(0, "127.0.0.1", () => {
        sink.self = new RemoteWriteSink(server)
        resolve(sink.self)
      })
    })
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/api/v1/write`
  }

  get samples(): number {
    return this.received.reduce((n, ts) => n + ts.samples.length, 0)
  }

  /** The value of label `name` of every received series. */
  labelValues(name: string): Array<string> {
    return this.received.map((ts) => ts.labels.find((l) => l.name === name)?.value ?? "")
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }
}
