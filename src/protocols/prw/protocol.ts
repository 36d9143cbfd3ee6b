import type { ProtocolAdapter, WireEncoder } from "../protocol.js"
import { applyScannedVerdict, passesWhole, type ScannedWriteRequest } from "./scan.js"
import { blockParts, compressBody } from "./snappy.js"

/**
 * Remote write through the limits: the request is scanned, not decoded (`prw/scan.ts`). What is
 * buffered is a snappy block: the body as it came in when everything passes (nothing is
 * decompressed again or compressed), else the `WriteRequest` bytes that pass (copied, re-encoded
 * only where the verdict changes a series), compressed.
 */
export const prwAdapter: ProtocolAdapter<ScannedWriteRequest, Uint8Array> = {
  protocol: "prw",
  toSeriesBatch: (req) => req,
  applyVerdict: (req, verdict, only) => {
    if (only === undefined && req.wire !== undefined) {
      const whole = passesWhole(req, verdict)
      if (whole !== undefined) return { request: req.wire, datapoints: whole }
    }
    const out = applyScannedVerdict(req, verdict, only)
    return { request: compressBody(out.request), datapoints: out.datapoints }
  },
}

/**
 * Buffered requests become one remote-write request: their snappy blocks under one new length
 * header (`blockParts`: sent one after the other, not copied into one buffer), which decompresses
 * to the encoded `WriteRequest`s one after the other: one request with their series and metadata,
 * in order.
 */
export const prwEncoder: WireEncoder<Uint8Array> = {
  encode: (requests) => ({
    body: blockParts(requests),
    headers: {
      "content-type": "application/x-protobuf",
      "content-encoding": "snappy",
      "x-prometheus-remote-write-version": "0.1.0",
      "user-agent": "metrics-governor",
    },
  }),
  compressed: { fromUncompressed: compressBody },
}
