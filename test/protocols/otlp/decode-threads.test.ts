import * as fs from "node:fs"
import type { IncomingMessage } from "node:http"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { BatchVerdict } from "../../../src/limits/batch.js"
import { enforce } from "../../../src/limits/enforce.js"
import { fingerprintSeries } from "../../../src/limits/fingerprint.js"
import { type OtlpBatch, objectBatch, toSeriesBatch } from "../../../src/protocols/otlp/adapter.js"
import {
  decodeBody,
  type OtlpBodyDecoder,
  type OtlpDecodeFailure,
  workerDecoder,
} from "../../../src/protocols/otlp/decode-pool.js"
import { OtlpDecodeError } from "../../../src/protocols/otlp/errors.js"
import { decompressGzip } from "../../../src/protocols/otlp/gzip.js"
import { otlpHttpRoute } from "../../../src/protocols/otlp/http.js"
import { decodeOtlpProtobuf, encodeOtlpProtobuf } from "../../../src/protocols/otlp/protobuf.js"
import { otlpAdapter } from "../../../src/protocols/otlp/protocol.js"
import type { ExportMetricsServiceRequest } from "../../../src/protocols/otlp/types.js"
import { UNBOUNDED } from "../../../src/wire/bounds.js"
import { decompressZstd } from "../../../src/wire/zstd.js"
import { versionOf } from "../../limits/engine.js"
import { threadsForFile } from "../../support/threads.js"
import { makeArbitraries } from "./arbitraries.js"

const MAX = 1 << 20
/** Decoders running the built worker (the test suite builds `dist/` first), as the governor runs it. */
const { dir, start: make } = threadsForFile<OtlpBodyDecoder>(
  "mg-otlp-decode-threads-",
  workerDecoder,
  new URL("../../../dist/protocols/otlp/decode-worker.js", import.meta.url),
)

const { request } = makeArbitraries({ unknown: true })

/** What the limits engine and the exporter see of a decoded body. */
const view = (result: Either.Either<OtlpBatch, OtlpDecodeFailure>) =>
  Either.match(result, {
    onLeft: (e) => ({ failure: { tag: e._tag, message: e.message } }),
    onRight: (b) => ({
      bytes: b.bytes === undefined ? undefined : Array.from(b.bytes),
      series: Array.from({ length: b.length }, (_, i) => ({
        name: b.nameOf(i),
        labels: b.labelsOf(i),
        datapoints: b.datapoints[i],
        fingerprint: [b.hi?.[i], b.lo?.[i]],
      })),
    }),
  })

/** Bodies: encoded requests (some gzip), and bytes that are mostly not a request. */
const bodies = fc.oneof(
  request.map((r) => ({ body: encodeOtlpProtobuf(r), encoding: "identity" as const })),
  request.map((r) => ({
    body: new Uint8Array(zlib.gzipSync(encodeOtlpProtobuf(r))),
    encoding: "gzip" as const,
  })),
  fc.uint8Array({ maxLength: 200 }).map((body) => ({ body, encoding: "identity" as const })),
  fc.uint8Array({ maxLength: 200 }).map((body) => ({ body, encoding: "gzip" as const })),
  // Mostly not zstd; some a zstd frame header with random blocks behind it.
  fc
    .uint8Array({ maxLength: 200 })
    .chain((tail) => fc.constantFrom(tail, new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50, ...tail])))
    .map((body) => ({ body, encoding: "zstd" as const })),
)

describe("OTLP decoding threads", () => {
  it("law: a body decoded in a worker thread is seen exactly as one decoded in the receiving thread, with the fingerprints enforce() would compute", async () => {
    const decoder = make(2)
    const fp = new Uint32Array(2)
    await fc.assert(
      fc.asyncProperty(bodies, async ({ body, encoding }) => {
        const here = decodeBody(body, encoding, MAX)
        const there = await decoder.decode(body, encoding, MAX)
        expect(view(there)).toStrictEqual(view(here))
        if (Either.isRight(here)) {
          const b = here.right
          const entries = toSeriesBatch(b.request())
          expect(b.length).toBe(entries.length)
          for (let i = 0; i < b.length; i++) {
            fingerprintSeries(entries.nameOf(i), entries.labelsOf(i), fp)
            expect([b.hi?.[i], b.lo?.[i]]).toStrictEqual([fp[0], fp[1]])
          }
        }
      }),
      { numRuns: 200 },
    )
  })

  it("law: the same failures with the same messages as the decoder in this thread (bad protobuf, bad gzip, bounds)", async () => {
    const decoder = make(1)
    const bounds = { maxDatapoints: 3, maxElements: 40 }
    await fc.assert(
      fc.asyncProperty(bodies, async ({ body, encoding }) => {
        const there = await decoder.decode(body, encoding, MAX, bounds)
        // What the OTLP/HTTP route did in the receiving thread before there were decoding threads.
        const zstd = (): Either.Either<Uint8Array, OtlpDecodeError> => {
          const out = decompressZstd(body, MAX)
          return "ok" in out
            ? Either.right(out.ok)
            : Either.left(
                new OtlpDecodeError({
                  kind: out.error.kind === "too_large" ? "too_large" : "bad_encoding",
                  reason: out.error.reason,
                }),
              )
        }
        const raw =
          encoding === "gzip" ? decompressGzip(body, MAX) : encoding === "zstd" ? zstd() : Either.right(body)
        const reference = Either.flatMap(raw, (bytes) => decodeOtlpProtobuf(bytes, bounds))
        expect(Either.isLeft(there)).toBe(Either.isLeft(reference))
        if (Either.isLeft(there) && Either.isLeft(reference)) {
          expect(there.left._tag).toBe("OtlpDecodeError")
          expect(there.left.message).toBe(reference.left.message)
          expect(there.left._tag === "OtlpDecodeError" && there.left.httpStatus).toBe(
            reference.left.httpStatus,
          )
        }
      }),
      { numRuns: 300 },
    )
  })

  it("law: worker path, receiving-thread path and the decoded-objects path give the same verdicts, counts and forwarded requests", async () => {
    const decoder = make(1)
    let changed = 0
    const spec = fc.record({
      maxCardinality: fc.integer({ min: 1, max: 4 }),
      action: fc.constantFrom("drop", "strip_labels"),
    })
    const yamlOf = (s: { maxCardinality: number; action: string }) =>
      `rules:\n  - name: r\n    max_cardinality: ${s.maxCardinality}\n    action: ${s.action}\n` +
      (s.action === "strip_labels" ? "    strip_labels: [a, b, c, k]\n" : "")
    const views = (batch: OtlpBatch, verdict: BatchVerdict) => {
      const { request: bytes, datapoints } = otlpAdapter.applyVerdict(batch, verdict)
      return {
        verdict: {
          pass: Array.from(verdict.pass),
          strip: Array.from(verdict.strip),
          rule: verdict.rule.map((r) => r?.name),
        },
        forwarded: Either.getOrThrow(decodeOtlpProtobuf(bytes)),
        datapoints,
      }
    }
    await fc.assert(
      fc.asyncProperty(request, spec, async (req, s) => {
        const body = encodeOtlpProtobuf(req)
        const decoded: ExportMetricsServiceRequest = Either.getOrThrow(decodeOtlpProtobuf(body))
        const run = (batch: OtlpBatch) => {
          const { verdict, counts } = enforce(versionOf(yamlOf(s)), 0, batch)
          return { ...views(batch, verdict), counts }
        }
        const objects = run(objectBatch(decoded))
        const here = run(Either.getOrThrow(decodeBody(body, "identity", MAX)))
        const there = run(Either.getOrThrow(await decoder.decode(body, "identity", MAX, UNBOUNDED)))
        expect(here).toStrictEqual(objects)
        expect(there).toStrictEqual(objects)
        if (objects.datapoints < toSeriesBatch(decoded).length) changed++
      }),
      { numRuns: 200 },
    )
    // The verdicts did change requests (drops, strips), not only pass them whole.
    expect(changed).toBeGreaterThan(10)
  })

  it("a thread that dies answers its bodies with 503 (the sender retries), and a new one takes the next", async () => {
    const dying = path.join(dir, "dying.mjs")
    fs.writeFileSync(dying, "process.exit(9)\n")
    const decoder = make(1, new URL(`file://${dying}`))
    const route = otlpHttpRoute({
      maxRequestBytes: MAX,
      maxDecompressedBytes: MAX,
      bounds: UNBOUNDED,
      ingest: () => ({ _tag: "Accepted", received: 0, forwarded: 0, dropped: 0 }),
      decoder,
    })
    const req = { headers: { "content-type": "application/x-protobuf" } } as unknown as IncomingMessage
    for (let i = 0; i < 2; i++) {
      const result = await decoder.decode(encodeOtlpProtobuf({ resourceMetrics: [] }), "identity", MAX)
      expect(Either.isLeft(result) && result.left.message).toBe(
        "the OTLP decoder failed: its thread exited with code 9; retry",
      )
      const reply = await route.handle(req, encodeOtlpProtobuf({ resourceMetrics: [] }))
      expect(reply.status).toBe(503)
      expect(reply.headers?.["retry-after"]).toBe("1")
    }
  })
})
