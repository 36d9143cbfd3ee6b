import type { WireEncoder } from "../export/exporter.js"
import type { ProtocolAdapter } from "./ingest.js"
import { applyVerdict, toSeriesBatch } from "./prw/adapter.js"
import { encodeWriteRequest } from "./prw/codec.js"
import { compressBody } from "./prw/snappy.js"
import type { WriteRequest } from "./prw/types.js"

export const prwAdapter: ProtocolAdapter<WriteRequest> = { protocol: "prw", toSeriesBatch, applyVerdict }

/** Buffered requests become one remote-write request: their series and metadata, in order. */
export const prwEncoder: WireEncoder<WriteRequest> = {
  encode: (requests) => {
    const merged: WriteRequest =
      requests.length === 1
        ? (requests[0] as WriteRequest)
        : {
            timeseries: requests.flatMap((r) => r.timeseries),
            metadata: requests.flatMap((r) => r.metadata),
            unknown: [],
          }
    return {
      body: compressBody(encodeWriteRequest(merged)),
      headers: {
        "content-type": "application/x-protobuf",
        "content-encoding": "snappy",
        "x-prometheus-remote-write-version": "0.1.0",
        "user-agent": "metrics-governor",
      },
    }
  },
}
