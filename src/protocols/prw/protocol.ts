import type { ProtocolAdapter, WireEncoder } from "../protocol.js"
import { applyScannedVerdict, concatBytes, type ScannedWriteRequest } from "./scan.js"
import { compressBody } from "./snappy.js"

/**
 * Remote write through the limits: the request is scanned, not decoded (`prw/scan.ts`), and what
 * passes is forwarded as the encoded `WriteRequest` bytes it came in (re-encoded only where the
 * verdict changes a series).
 */
export const prwAdapter: ProtocolAdapter<ScannedWriteRequest, Uint8Array> = {
  protocol: "prw",
  toSeriesBatch: (req) => req,
  applyVerdict: applyScannedVerdict,
}

/**
 * Buffered requests become one remote-write request: encoded `WriteRequest`s concatenate into one
 * (their series and metadata, in order), compressed once.
 */
export const prwEncoder: WireEncoder<Uint8Array> = {
  encode: (requests) => ({
    body: compressBody(concatBytes(requests)),
    headers: {
      "content-type": "application/x-protobuf",
      "content-encoding": "snappy",
      "x-prometheus-remote-write-version": "0.1.0",
      "user-agent": "metrics-governor",
    },
  }),
}
