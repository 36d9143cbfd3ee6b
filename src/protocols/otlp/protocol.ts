import type { ProtocolAdapter, WireEncoder } from "../protocol.js"
import { applyBatchVerdict, type OtlpBatch } from "./adapter.js"

/**
 * OTLP through the limits: the batch is the decoded request's view (with fingerprints from the
 * decoder for protobuf bodies), and what passes is forwarded as an encoded
 * `ExportMetricsServiceRequest`: the body as received when nothing changes, re-encoded otherwise.
 */
export const otlpAdapter: ProtocolAdapter<OtlpBatch, Uint8Array> = {
  protocol: "otlp",
  toSeriesBatch: (batch) => batch,
  applyVerdict: applyBatchVerdict,
}

/**
 * Buffered requests become one OTLP/HTTP protobuf request: encoded `ExportMetricsServiceRequest`s
 * concatenate into one (protobuf messages concatenate: their resource metrics, in order).
 */
export const otlpEncoder: WireEncoder<Uint8Array> = {
  encode: (requests) => ({
    body: requests.length === 1 ? (requests[0] as Uint8Array) : Buffer.concat(requests),
    headers: { "content-type": "application/x-protobuf", "user-agent": "metrics-governor" },
  }),
}
