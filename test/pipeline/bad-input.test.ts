/**
 * Bad input against one real governor process with all three receivers on (OTLP/HTTP, OTLP/gRPC,
 * remote write): every malformed, oversized or misaddressed request gets its status code, and the
 * next good request on every receiver still succeeds. The receiver counters show every code.
 */

import * as fs from "node:fs"
import * as http2 from "node:http2"
import * as zlib from "node:zlib"
import * as grpc from "@grpc/grpc-js"
import { Either } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { METRICS_EXPORT_PATH } from "../../src/protocols/otlp/grpc.js"
import { encodeOtlpProtobuf } from "../../src/protocols/otlp/protobuf.js"
import { GrpcCode } from "../../src/protocols/otlp/status.js"
import { encodeWriteRequest } from "../../src/protocols/prw/codec.js"
import { compressBody } from "../../src/protocols/prw/snappy.js"
import {
  type HttpAnswer,
  metricValue,
  otlpSeries,
  postOtlp,
  postPrw,
  prwBody,
  prwMany,
  send,
  startWithReceivers,
} from "../support/data-path.js"
import { type Governor, tempDir } from "../support/governor.js"
import { RawMetricsClient } from "../support/grpc.js"
import { decodeRpcStatus } from "../support/rpc-status.js"

const MAX_REQUEST_BYTES = 64 * 1024
const MAX_DECOMPRESSED_BYTES = 256 * 1024

const CONFIG = `receivers:
  max_request_bytes: ${MAX_REQUEST_BYTES}
  max_decompressed_bytes: ${MAX_DECOMPRESSED_BYTES}
shutdown_timeout: 2s
`

let governor: Governor
let dir: string
let httpPort: number
let grpcPort: number
let prwPort: number
let client: grpc.Client

/** The codes we expect on metrics_governor_receiver_requests_total, by protocol. */
const expected: Record<"otlp" | "prw", Record<string, number>> = { otlp: {}, prw: {} }
const tally = (protocol: "otlp" | "prw", code: string) => {
  expected[protocol][code] = (expected[protocol][code] ?? 0) + 1
}
let goodOtlpPoints = 0
let goodPrwPoints = 0

const grpcCall = (bytes: Uint8Array): Promise<{ code: number; details: string }> =>
  new Promise((resolve) => {
    const method = (
      client as unknown as {
        export: (
          req: Buffer,
          options: grpc.CallOptions,
          cb: (err: grpc.ServiceError | null, res: Buffer) => void,
        ) => void
      }
    ).export
    method.call(client, Buffer.from(bytes), { deadline: Date.now() + 10_000 }, (err) =>
      resolve(
        err === null ? { code: grpc.status.OK, details: "" } : { code: err.code, details: err.details },
      ),
    )
  })

beforeAll(async () => {
  dir = tempDir("mg-bad-input-")
  ;({ governor, httpPort, grpcPort, prwPort } = await startWithReceivers(dir, CONFIG))
  client = new RawMetricsClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure())
})

afterAll(async () => {
  client?.close()
  await governor?.stop()
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
})

/** After a bad request: the process is alive and every receiver takes a good request. */
const expectHealthy = async (after: string) => {
  expect(governor.exit, `process exited after: ${after}`).toBeUndefined()
  expect((await governor.get("/live")).status).toBe(200)
  const otlp = await postOtlp(httpPort, otlpSeries("good_otlp", 3))
  expect(otlp.status, `OTLP/HTTP after: ${after}`).toBe(200)
  tally("otlp", "200")
  const prw = await postPrw(prwPort, prwMany("good_prw", 2))
  expect(prw.status, `remote write after: ${after}`).toBe(204)
  tally("prw", "204")
  const rpc = await grpcCall(encodeOtlpProtobuf(otlpSeries("good_grpc", 1)))
  expect(rpc.code, `gRPC after: ${after}`).toBe(grpc.status.OK)
  tally("otlp", "grpc_ok")
  goodOtlpPoints += 4
  goodPrwPoints += 2
}

const PROTOBUF = { "content-type": "application/x-protobuf" }
const REMOTE_WRITE = { "content-type": "application/x-protobuf", "content-encoding": "snappy" }

/** A valid OTLP body of about `bytes` bytes (one point with a long attribute value). */
const otlpBodyOfSize = (bytes: number): Uint8Array =>
  encodeOtlpProtobuf(otlpSeries("big", 1, { pad: "x".repeat(bytes) }))

/** A valid OTLP protobuf body but for one byte of a label value: 0xff, never valid in UTF-8. */
const otlpInvalidUtf8 = (): Buffer => {
  const bytes = Buffer.from(encodeOtlpProtobuf(otlpSeries("utf8", 1, { lbl: "utf8_marker" })))
  bytes[bytes.indexOf("utf8_marker") + 1] = 0xff
  return bytes
}

/** A raw gRPC call whose message is marked gzip (compressed flag, `grpc-encoding: gzip`) but is not. */
const grpcNotGzip = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${grpcPort}`)
    const payload = Buffer.from("this is not gzip")
    const frame = Buffer.concat([Buffer.from([1, 0, 0, 0, payload.length]), payload])
    const stream = session.request({
      ":method": "POST",
      ":path": METRICS_EXPORT_PATH,
      "content-type": "application/grpc",
      "grpc-encoding": "gzip",
      te: "trailers",
    })
    let code = -1
    stream.on("response", (h) => {
      if (h["grpc-status"] !== undefined) code = Number(h["grpc-status"])
    })
    stream.on("trailers", (t) => {
      code = Number(t["grpc-status"])
    })
    stream.on("close", () => {
      session.close()
      resolve(code)
    })
    stream.on("error", reject)
    stream.resume()
    stream.end(frame)
  })

/** The `google.rpc.Status` of an OTLP/HTTP protobuf error answer. */
const rpcStatus = (a: HttpAnswer) => {
  expect(a.headers["content-type"]).toBe("application/x-protobuf")
  return Either.getOrThrow(decodeRpcStatus(a.body))
}

interface Case {
  readonly name: string
  readonly protocol: "otlp" | "prw"
  readonly status: number
  readonly send: () => Promise<HttpAnswer>
  readonly check?: (a: HttpAnswer) => void
}

const otlpCases: ReadonlyArray<Case> = [
  {
    name: "truncated protobuf",
    protocol: "otlp",
    status: 400,
    send: () => {
      const full = encodeOtlpProtobuf(otlpSeries("cut", 5))
      return send(httpPort, {
        path: "/v1/metrics",
        headers: PROTOBUF,
        body: full.subarray(0, full.length - 7),
      })
    },
    check: (a) => {
      const s = rpcStatus(a)
      expect(s.code).toBe(GrpcCode.INVALID_ARGUMENT)
      expect(s.message).toMatch(/protobuf/i)
    },
  },
  {
    name: "garbage protobuf (a field with wire type 7)",
    protocol: "otlp",
    status: 400,
    send: () =>
      send(httpPort, { path: "/v1/metrics", headers: PROTOBUF, body: Buffer.from([0x0f, 1, 2, 3]) }),
  },
  {
    name: "wrong content type",
    protocol: "otlp",
    status: 415,
    send: () =>
      send(httpPort, {
        path: "/v1/metrics",
        headers: { "content-type": "text/plain" },
        body: encodeOtlpProtobuf(otlpSeries("m", 1)),
      }),
    check: (a) => expect(a.body.toString()).toContain("unsupported content type"),
  },
  {
    name: "no content type",
    protocol: "otlp",
    status: 415,
    send: () => send(httpPort, { path: "/v1/metrics", body: encodeOtlpProtobuf(otlpSeries("m", 1)) }),
  },
  {
    name: "wrong content encoding (br)",
    protocol: "otlp",
    status: 415,
    send: () =>
      send(httpPort, {
        path: "/v1/metrics",
        headers: { ...PROTOBUF, "content-encoding": "br" },
        body: zlib.brotliCompressSync(encodeOtlpProtobuf(otlpSeries("m", 1))),
      }),
    check: (a) => expect(rpcStatus(a).message).toContain("unsupported content encoding"),
  },
  {
    name: "body over max_request_bytes (Content-Length)",
    protocol: "otlp",
    status: 413,
    send: () =>
      send(httpPort, { path: "/v1/metrics", headers: PROTOBUF, body: otlpBodyOfSize(MAX_REQUEST_BYTES + 1) }),
  },
  {
    name: "body over max_request_bytes (chunked, no Content-Length)",
    protocol: "otlp",
    status: 413,
    send: () =>
      send(httpPort, {
        path: "/v1/metrics",
        headers: PROTOBUF,
        body: otlpBodyOfSize(4 * MAX_REQUEST_BYTES),
        chunked: true,
      }),
  },
  {
    name: "gzip bomb (small on the wire, over max_decompressed_bytes inflated)",
    protocol: "otlp",
    status: 413,
    send: () => {
      const bomb = zlib.gzipSync(Buffer.alloc(16 * 1024 * 1024), { level: 9 })
      expect(bomb.length).toBeLessThan(MAX_REQUEST_BYTES)
      return send(httpPort, {
        path: "/v1/metrics",
        headers: { ...PROTOBUF, "content-encoding": "gzip" },
        body: bomb,
      })
    },
    check: (a) => expect(rpcStatus(a).message).toContain(`more than ${MAX_DECOMPRESSED_BYTES} bytes`),
  },
  {
    name: "not gzip although Content-Encoding: gzip",
    protocol: "otlp",
    status: 400,
    send: () =>
      send(httpPort, {
        path: "/v1/metrics",
        headers: { ...PROTOBUF, "content-encoding": "gzip" },
        body: encodeOtlpProtobuf(otlpSeries("m", 1)),
      }),
  },
  {
    name: "invalid UTF-8 in a protobuf label value",
    protocol: "otlp",
    status: 400,
    send: () => send(httpPort, { path: "/v1/metrics", headers: PROTOBUF, body: otlpInvalidUtf8() }),
    check: (a) => expect(rpcStatus(a).message).toMatch(/invalid UTF-8 at byte \d+/),
  },
  {
    name: "invalid JSON",
    protocol: "otlp",
    status: 400,
    send: () =>
      send(httpPort, {
        path: "/v1/metrics",
        headers: { "content-type": "application/json" },
        body: '{"resourceMetrics": [{"scopeMetrics": [',
      }),
    check: (a) => {
      expect(a.headers["content-type"]).toBe("application/json")
      const status = JSON.parse(a.body.toString()) as { code: number; message: string }
      expect(status.code).toBe(GrpcCode.INVALID_ARGUMENT)
    },
  },
  {
    name: "JSON of the wrong shape",
    protocol: "otlp",
    status: 400,
    send: () =>
      send(httpPort, {
        path: "/v1/metrics",
        headers: { "content-type": "application/json" },
        body: '{"resourceMetrics": 42}',
      }),
  },
  {
    name: "GET instead of POST",
    protocol: "otlp",
    status: 405,
    send: () => send(httpPort, { method: "GET", path: "/v1/metrics" }),
    check: (a) => expect(a.headers.allow).toBe("POST"),
  },
  {
    name: "unknown path",
    protocol: "otlp",
    status: 404,
    send: () =>
      send(httpPort, { path: "/v1/traces", headers: PROTOBUF, body: encodeOtlpProtobuf(otlpSeries("m", 1)) }),
  },
]

/** A snappy block whose length header claims 2^32 - 1 bytes. */
const SNAPPY_HUGE_HEADER = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x61, 0x62, 0x63])

/** A remote-write body of one series with `labels` and one sample. */
const prwLabels = (labels: ReadonlyArray<{ name: string; value: string }>): Uint8Array =>
  prwBody({
    timeseries: [
      { labels, samples: [{ value: 1, timestamp: 1 }], exemplars: [], histograms: [], unknown: [] },
    ],
    metadata: [],
    unknown: [],
  })

const prwCases: ReadonlyArray<Case> = [
  {
    name: "a series with a repeated label name",
    protocol: "prw",
    status: 400,
    send: () =>
      send(prwPort, {
        path: "/api/v1/write",
        headers: REMOTE_WRITE,
        body: prwLabels([
          { name: "__name__", value: "m" },
          { name: "job", value: "a" },
          { name: "job", value: "b" },
        ]),
      }),
    check: (a) =>
      expect(a.body.toString()).toContain('invalid labels: series at byte 2: duplicate label name "job"'),
  },
  {
    name: "a series with an empty label set",
    protocol: "prw",
    status: 400,
    send: () => send(prwPort, { path: "/api/v1/write", headers: REMOTE_WRITE, body: prwLabels([]) }),
    check: (a) => expect(a.body.toString()).toContain("no metric name (__name__)"),
  },
  {
    name: "truncated protobuf (valid snappy)",
    protocol: "prw",
    status: 400,
    send: () => {
      const full = encodeWriteRequest(prwMany("cut", 5))
      return send(prwPort, {
        path: "/api/v1/write",
        headers: REMOTE_WRITE,
        body: compressBody(full.subarray(0, full.length - 5)),
      })
    },
  },
  {
    name: "wrong content type",
    protocol: "prw",
    status: 415,
    send: () =>
      send(prwPort, {
        path: "/api/v1/write",
        headers: { ...REMOTE_WRITE, "content-type": "application/json" },
        body: prwBody(prwMany("m", 1)),
      }),
    check: (a) => expect(a.body.toString()).toContain("unsupported content type"),
  },
  {
    name: "wrong content encoding (br)",
    protocol: "prw",
    status: 415,
    send: () =>
      send(prwPort, {
        path: "/api/v1/write",
        headers: { ...REMOTE_WRITE, "content-encoding": "br" },
        body: zlib.brotliCompressSync(encodeWriteRequest(prwMany("m", 1))),
      }),
    check: (a) => expect(a.body.toString()).toContain("unsupported content encoding"),
  },
  {
    name: "no content encoding",
    protocol: "prw",
    status: 415,
    send: () =>
      send(prwPort, {
        path: "/api/v1/write",
        headers: PROTOBUF,
        body: encodeWriteRequest(prwMany("m", 1)),
      }),
  },
  {
    name: "body over max_request_bytes",
    protocol: "prw",
    status: 413,
    send: () =>
      send(prwPort, {
        path: "/api/v1/write",
        headers: REMOTE_WRITE,
        body: Buffer.alloc(MAX_REQUEST_BYTES + 1, 1),
      }),
  },
  {
    name: "snappy header claiming 4 GiB",
    protocol: "prw",
    status: 413,
    send: () => send(prwPort, { path: "/api/v1/write", headers: REMOTE_WRITE, body: SNAPPY_HUGE_HEADER }),
    check: (a) => expect(a.body.toString()).toContain("exceeds the limit"),
  },
  {
    name: "snappy header just over max_decompressed_bytes",
    protocol: "prw",
    status: 413,
    send: () => {
      // A real block: 256 KiB + 1 of zeros compresses to a few dozen bytes.
      const block = compressBody(Buffer.alloc(MAX_DECOMPRESSED_BYTES + 1))
      expect(block.length).toBeLessThan(MAX_REQUEST_BYTES)
      return send(prwPort, { path: "/api/v1/write", headers: REMOTE_WRITE, body: block })
    },
  },
  {
    name: "garbage snappy",
    protocol: "prw",
    status: 400,
    send: () =>
      send(prwPort, {
        path: "/api/v1/write",
        headers: REMOTE_WRITE,
        body: Buffer.from([0x64, 0xff, 0xfe, 0xfd, 0xfc, 0x13, 0x37, 0x00, 0x01]),
      }),
  },
  {
    name: "empty body",
    protocol: "prw",
    status: 400,
    send: () => send(prwPort, { path: "/api/v1/write", headers: REMOTE_WRITE, body: Buffer.alloc(0) }),
  },
  {
    name: "framed snappy stream instead of a block",
    protocol: "prw",
    status: 400,
    send: () =>
      send(prwPort, {
        path: "/api/v1/write",
        headers: REMOTE_WRITE,
        body: Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59, 0x01]),
      }),
  },
  {
    name: "GET instead of POST",
    protocol: "prw",
    status: 405,
    send: () => send(prwPort, { method: "GET", path: "/api/v1/write" }),
    check: (a) => expect(a.headers.allow).toBe("POST"),
  },
  {
    name: "unknown path",
    protocol: "prw",
    status: 404,
    send: () =>
      send(prwPort, { path: "/api/v1/push", headers: REMOTE_WRITE, body: prwBody(prwMany("m", 1)) }),
  },
]

describe("bad input: one governor, all three receivers", () => {
  it("answers good requests on every receiver to begin with", async () => {
    await expectHealthy("start")
  })

  describe.each([
    ["OTLP/HTTP", otlpCases],
    ["remote write", prwCases],
  ] as const)("%s", (_, cases) => {
    it.each(cases.map((c) => [c.name, c] as const))("%s", async (name, c) => {
      const answer = await c.send()
      expect(answer.status, `${name}: ${answer.body.toString().slice(0, 200)}`).toBe(c.status)
      c.check?.(answer)
      tally(c.protocol, String(c.status))
      await expectHealthy(`${c.protocol} ${name}`)
    })
  })

  it("gRPC: garbage bytes are INVALID_ARGUMENT", async () => {
    for (const garbage of [
      Buffer.from([0x0a, 0x05, 0x01]), // a length that overruns the message
      Buffer.from([0x0f, 0xff]), // wire type 7
      Buffer.from("this is not protobuf at all, just text"),
      otlpInvalidUtf8(), // invalid UTF-8 in a label value
    ]) {
      const out = await grpcCall(garbage)
      expect(out.code).toBe(grpc.status.INVALID_ARGUMENT)
      expect(out.details).toMatch(/protobuf/i)
      tally("otlp", "grpc_invalid_argument")
      await expectHealthy(`gRPC garbage ${garbage.toString("hex").slice(0, 16)}`)
    }
  })

  it("gRPC: a message marked gzip that does not inflate is INVALID_ARGUMENT", async () => {
    expect(await grpcNotGzip()).toBe(grpc.status.INVALID_ARGUMENT)
    tally("otlp", "grpc_invalid_argument")
    await expectHealthy("gRPC corrupt gzip")
  })

  it("gRPC: a message over max_decompressed_bytes is RESOURCE_EXHAUSTED", async () => {
    const out = await grpcCall(otlpBodyOfSize(MAX_DECOMPRESSED_BYTES + 1))
    expect(out.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    await expectHealthy("gRPC oversized message")
  })

  it("counts every answer by protocol and code, and no datapoint of a bad request", async () => {
    const text = await governor.metrics()
    const actual: Record<"otlp" | "prw", Record<string, number>> = { otlp: {}, prw: {} }
    for (const line of text.split("\n")) {
      const m = /^metrics_governor_receiver_requests_total\{(.*)\} (\S+)$/.exec(line)
      if (m === null) continue
      const protocol = /protocol="([^"]*)"/.exec(m[1] as string)?.[1] as "otlp" | "prw"
      const code = /code="([^"]*)"/.exec(m[1] as string)?.[1] as string
      actual[protocol][code] = Number(m[2])
    }
    expect(actual).toEqual(expected)
    // The codes this file is about are all there.
    expect(Object.keys(expected.otlp).sort()).toEqual(
      ["200", "400", "404", "405", "413", "415", "grpc_invalid_argument", "grpc_ok"].sort(),
    )
    expect(Object.keys(expected.prw).sort()).toEqual(["204", "400", "404", "405", "413", "415"].sort())
    expect(
      await metricValue(governor, "metrics_governor_datapoints_received_total", { protocol: "otlp" }),
    ).toBe(goodOtlpPoints)
    expect(
      await metricValue(governor, "metrics_governor_datapoints_received_total", { protocol: "prw" }),
    ).toBe(goodPrwPoints)
    expect(governor.logs.filter((l) => l.level === "error")).toEqual([])
    expect(governor.exit).toBeUndefined()
  })
})
