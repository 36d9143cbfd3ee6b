import type { ProtocolAdapter, WireEncoder } from "../protocol.js"
import { applyVerdict, toSeriesBatch } from "./adapter.js"
import { encodeOtlpProtobuf } from "./protobuf.js"
import type { ExportMetricsServiceRequest } from "./types.js"

export const otlpAdapter: ProtocolAdapter<ExportMetricsServiceRequest> = {
  protocol: "otlp",
  toSeriesBatch,
  applyVerdict,
}

/** Buffered requests become one OTLP/HTTP protobuf request: their resource metrics, in order. */
export const otlpEncoder: WireEncoder<ExportMetricsServiceRequest> = {
  encode: (requests) => ({
    body: encodeOtlpProtobuf(
      requests.length === 1
        ? (requests[0] as ExportMetricsServiceRequest)
        : { resourceMetrics: requests.flatMap((r) => r.resourceMetrics) },
    ),
    headers: { "content-type": "application/x-protobuf", "user-agent": "metrics-governor" },
  }),
}
