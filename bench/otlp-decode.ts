/**
 * OTLP protobuf decode time: `npx tsx bench/otlp-decode.ts [module...]` decodes one 1,000-datapoint
 * `ExportMetricsServiceRequest` (bench/payloads.ts) 2,000 times per round, best of 7 rounds, with
 * each given build of `protocols/otlp/protobuf.js` (default: dist/), rounds interleaved.
 */
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { encodeOtlpProtobuf } from "../src/protocols/otlp/protobuf.js"
import { ROOT } from "./lib.js"
import { otlpRequest } from "./payloads.js"

type Decode = (bytes: Uint8Array) => { _tag: string }
const modules = process.argv.slice(2)
if (modules.length === 0) modules.push(path.join(ROOT, "dist/protocols/otlp/protobuf.js"))
const decoders: Array<[string, Decode]> = []
for (const m of modules) {
  const mod = (await import(pathToFileURL(path.resolve(m)).href)) as { decodeOtlpProtobuf: Decode }
  decoders.push([m, mod.decodeOtlpProtobuf])
}
const bytes = encodeOtlpProtobuf(otlpRequest(1, 1_000))
const ROUNDS = 7
const N = 2_000
const best = decoders.map(() => Number.POSITIVE_INFINITY)
for (let round = 0; round < ROUNDS; round++) {
  decoders.forEach(([, decode], i) => {
    const t0 = performance.now()
    for (let n = 0; n < N; n++) if (decode(bytes)._tag !== "Right") throw new Error("decode failed")
    best[i] = Math.min(best[i] as number, performance.now() - t0)
  })
}
decoders.forEach(([name], i) => {
  const ms = best[i] as number
  console.log(
    `${name}: ${bytes.length} bytes × ${N}: ${ms.toFixed(0)} ms, ${((ms * 1000) / N).toFixed(1)} µs/request, ${((bytes.length * N) / ms / 1000).toFixed(0)} MB/s`,
  )
})
