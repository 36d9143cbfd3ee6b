/**
 * Remote-write codec throughput: `npx tsx bench/prw-codec.ts [series] [labels] [samples]`
 * (default: 1,000 series of 10 labels and 1 sample, as a Prometheus queue shard sends them).
 * Compares the hand-written codec with protobufjs reflection over the same prompb definition.
 * MB/s are of the uncompressed protobuf bytes; results go in the header of src/protocols/prw/codec.ts.
 */

import { Either } from "effect"
import { applyVerdict } from "../src/protocols/prw/adapter.js"
import { encodeWriteRequest } from "../src/protocols/prw/codec.js"
import { compressBody, decompressBody } from "../src/protocols/prw/snappy.js"
import type { TimeSeries, WriteRequest } from "../src/protocols/prw/types.js"
import { NO_BYTES } from "../src/protocols/prw/types.js"
import { Prompb } from "../test/protocols/prw/prompb-reflection.js"
import { decodeWriteRequest, toSeriesBatch } from "../test/support/prw.js"

const [seriesCount = 1_000, labelCount = 10, sampleCount = 1] = process.argv.slice(2).map(Number)

/** `salt` changes every label value: requests with different salts share no label pair but names. */
const makeRequest = (salt = ""): WriteRequest => {
  const timeseries: Array<TimeSeries> = []
  const now = 1_760_000_000_000
  for (let i = 0; i < seriesCount; i++) {
    const labels = [{ name: "__name__", value: `http_requests_total_${i % 20}` }]
    const others = [
      ["cluster", "eu-west-1-prod"],
      ["container", "api"],
      ["handler", `/api/v1/items/${i % 50}`],
      ["instance", `10.0.${i % 7}.${i % 250}:8080`],
      ["job", "kubernetes-pods"],
      ["method", i % 3 === 0 ? "POST" : "GET"],
      ["namespace", "shop"],
      ["pod", `api-7d9f8c6b5-${(i * 7919).toString(36)}`],
      ["status_code", String(200 + (i % 5))],
      ["zone", "eu-west-1a"],
    ].slice(0, labelCount - 1)
    for (const [name = "", value = ""] of others) labels.push({ name, value: value + salt })
    const samples = Array.from({ length: sampleCount }, (_, k) => ({
      value: i * 1.25 + k,
      timestamp: now + k,
    }))
    timeseries.push({ labels, samples, exemplars: NO_BYTES, histograms: NO_BYTES, unknown: NO_BYTES })
  }
  return { timeseries, metadata: NO_BYTES, unknown: NO_BYTES }
}

const request = makeRequest()
const bytes = encodeWriteRequest(request)
const decoded = decodeWriteRequest(bytes)
if (Either.isLeft(decoded)) throw decoded.left
const message = Prompb.WriteRequest.decode(bytes)
const body = compressBody(bytes)
/** 64 requests of the same shape whose label values are all new: every label misses the label cache. */
const coldBodies = Array.from({ length: 64 }, (_, k) => encodeWriteRequest(makeRequest(`-${k}`)))
let cold = 0

const cases: Array<{ readonly name: string; readonly run: () => unknown; best: number }> = []
const measure = (name: string, run: () => unknown): void => {
  cases.push({ name, run, best: 0 })
}

/**
 * Rounds of ~200 ms per case, interleaved (the machine may be shared: a slow moment then hurts one
 * round of every case, not every round of one case); the best round counts. MB/s of `bytes.length`.
 */
const only = process.env.ONLY
const report = (): void => {
  if (only !== undefined) cases.splice(0, cases.length, ...cases.filter((c) => c.name.includes(only)))
  let sink: unknown
  for (const c of cases) for (let i = 0; i < 200; i++) sink = c.run() // warm up
  for (let round = 0; round < 10; round++) {
    for (const c of cases) {
      let runs = 0
      const start = performance.now()
      let elapsed = 0
      while (elapsed < 200) {
        sink = c.run()
        runs++
        elapsed = performance.now() - start
      }
      c.best = Math.max(c.best, (bytes.length * runs) / (elapsed / 1000) / 1e6)
    }
  }
  for (const c of cases) {
    const us = bytes.length / c.best
    console.log(
      `${c.name.padEnd(28)} ${c.best.toFixed(0).padStart(7)} MB/s ${us.toFixed(0).padStart(7)} µs/request`,
    )
  }
  if (sink === undefined) console.log("")
}

console.log(
  `${seriesCount} series × ${labelCount} labels × ${sampleCount} samples: ${bytes.length} bytes, snappy ${body.length} bytes (node ${process.version})`,
)
measure("hand-written decode", () => decodeWriteRequest(bytes))
measure("hand-written decode, cold cache", () => decodeWriteRequest(coldBodies[cold++ & 63] as Uint8Array))
measure("hand-written encode", () => encodeWriteRequest(decoded.right))
measure("hand-written decode+encode", () => {
  const r = decodeWriteRequest(bytes)
  return Either.isRight(r) ? encodeWriteRequest(r.right) : undefined
})
measure("protobufjs decode", () => Prompb.WriteRequest.decode(bytes))
measure("protobufjs encode", () => Prompb.WriteRequest.encode(message).finish())
measure("protobufjs decode+encode", () =>
  Prompb.WriteRequest.encode(Prompb.WriteRequest.decode(bytes)).finish(),
)
measure("snappy decompress", () => decompressBody(body, 1 << 26))
measure("snappy compress", () => compressBody(bytes))
measure("toSeriesBatch", () => toSeriesBatch(decoded.right))
const passAll = {
  pass: new Uint32Array(seriesCount).fill(sampleCount),
  strip: new Uint8Array(seriesCount),
  rule: [],
}
measure("applyVerdict (all pass)", () => applyVerdict(decoded.right, passAll))
measure("unsnappy+decode+encode+snappy", () => {
  const raw = decompressBody(body, 1 << 26)
  if (Either.isLeft(raw)) return undefined
  const r = decodeWriteRequest(raw.right)
  if (Either.isLeft(r)) return undefined
  toSeriesBatch(r.right)
  return compressBody(encodeWriteRequest(r.right))
})
report()
