import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Either } from "effect"
import fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import { encodeWriteRequest } from "../../../src/protocols/prw/codec.js"
import {
  type BodyDecoder,
  decodeBody,
  inlineDecoder,
  workerDecoder,
} from "../../../src/protocols/prw/decode-pool.js"
import { type ScannedWriteRequest, scanBuffers } from "../../../src/protocols/prw/scan.js"
import { compressBody } from "../../../src/protocols/prw/snappy.js"
import { writeRequest } from "./arbitraries.js"

/** The built worker (the test suite builds `dist/` first), as the governor runs it. */
const WORKER = new URL("../../../dist/protocols/prw/decode-worker.js", import.meta.url)
const MAX = 1 << 20
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mg-decode-threads-"))
const decoders: Array<BodyDecoder> = []
afterAll(async () => {
  await Promise.all(decoders.map((d) => d.close()))
  fs.rmSync(dir, { recursive: true, force: true })
})
const make = (threads: number, url = WORKER) => {
  const d = workerDecoder(threads, url)
  decoders.push(d)
  return d
}

/** What the limits engine and the exporter see of a decoded body. */
const view = (result: Either.Either<ScannedWriteRequest, { status: number; message: string }>) =>
  Either.match(result, {
    onLeft: (f) => ({ failure: f }),
    onRight: (s) => ({
      bytes: Array.from(s.bytes),
      series: Array.from({ length: s.length }, (_, i) => ({
        name: s.nameOf(i),
        labels: s.labelsOf(i),
        datapoints: s.datapoints[i],
        fingerprint: [s.hi[i], s.lo[i]],
      })),
      fields: Array.from({ length: s.fieldCount }, (_, f) => [
        s.fieldStarts[f],
        s.fieldEnds[f],
        s.fieldSeries[f],
      ]),
    }),
  })

describe("remote-write decoding threads", () => {
  it("law: a body decoded in a worker thread is seen exactly as one decoded in the receiving thread", async () => {
    const decoder = make(2)
    const bodies = fc.oneof(
      writeRequest.map((r) => compressBody(encodeWriteRequest(r))),
      fc.uint8Array({ maxLength: 200 }),
      writeRequest.map((r) => encodeWriteRequest(r)), // not snappy
    )
    await fc.assert(
      fc.asyncProperty(bodies, async (body) => {
        const here = decodeBody(body, MAX)
        const there = await decoder.decode(body, MAX)
        expect(view(there)).toStrictEqual(view(here))
      }),
      { numRuns: 300 },
    )
  })

  it("law: with each scan given back once read, bodies decoded in threads are still seen exactly as in the receiving thread", async () => {
    const decoder = make(2)
    await fc.assert(
      fc.asyncProperty(fc.array(writeRequest, { minLength: 2, maxLength: 10 }), async (reqs) => {
        let previous: ScannedWriteRequest | undefined
        for (const r of reqs) {
          const body = compressBody(encodeWriteRequest(r))
          const here = decodeBody(body, MAX)
          const there = await decoder.decode(body, MAX)
          expect(view(there)).toStrictEqual(view(here))
          // The arrays given back went to a decoding thread with this body: unusable here now.
          if (previous !== undefined) expect(previous.hi.length).toBe(0)
          previous = Either.getOrThrow(there)
          decoder.recycle(previous)
        }
      }),
      { numRuns: 100 },
    )
  })

  it("decoding in the receiving thread scans into the arrays of the scan given back before", () => {
    const decoder = inlineDecoder()
    const series = {
      labels: [{ name: "__name__", value: "up" }],
      samples: [{ value: 1, timestamp: 1 }],
      exemplars: [],
      histograms: [],
      unknown: [],
    }
    const body = compressBody(encodeWriteRequest({ timeseries: [series], metadata: [], unknown: [] }))
    const first = Either.getOrThrow(decoder.decode(body, MAX) as Either.Either<ScannedWriteRequest, unknown>)
    const buffers = scanBuffers(first)
    decoder.recycle(first)
    const second = Either.getOrThrow(decoder.decode(body, MAX) as Either.Either<ScannedWriteRequest, unknown>)
    expect(new Set(scanBuffers(second))).toEqual(new Set(buffers))
    expect(view(Either.right(second))).toStrictEqual(view(decodeBody(body, MAX)))
  })

  it("a body over the decompressed size bound is 413 from a thread too", async () => {
    const body = compressBody(new Uint8Array(4096))
    const result = await make(1).decode(body, 1024)
    expect(Either.isLeft(result) && result.left.status).toBe(413)
  })

  it("a thread that dies answers its bodies with 503 (the sender retries), and a new one takes the next", async () => {
    const dying = path.join(dir, "dying.mjs")
    fs.writeFileSync(dying, "process.exit(9)\n")
    const decoder = make(1, new URL(`file://${dying}`))
    const body = compressBody(encodeWriteRequest({ timeseries: [], metadata: [], unknown: [] }))
    for (let i = 0; i < 2; i++) {
      const result = await decoder.decode(body, MAX)
      expect(Either.isLeft(result) && result.left).toEqual({
        status: 503,
        message: "the remote-write decoder failed: its thread exited with code 9; retry",
      })
    }
  })
})
