import type { IncomingMessage } from "node:http"
import { Either } from "effect"
import type { Reply, Route } from "../../pipeline/http-receiver.js"
import type { IngestOutcome } from "../../pipeline/ingest.js"
import type { RequestBounds } from "../../wire/bounds.js"
import { decompressGzip } from "./gzip.js"
import { decodeOtlpJson, encodeOtlpResponseJson } from "./json.js"
import { decodeOtlpProtobuf, encodeOtlpResponseProtobuf } from "./protobuf.js"
import { encodeRpcStatus, encodeRpcStatusJson, GrpcCode, retryInfoDetail } from "./status.js"
import type { ExportMetricsServiceRequest, ExportMetricsServiceResponse } from "./types.js"

type Format = "protobuf" | "json"

const PARTIAL_MESSAGE = "dropped by metrics-governor limits"

/** An OTLP/HTTP error reply: a `google.rpc.Status` in the request's encoding. */
const statusReply = (
  format: Format,
  httpStatus: number,
  grpcCode: number,
  message: string,
  extra: { retryAfterMs?: number } = {},
): Reply => {
  const status = {
    code: grpcCode,
    message,
    details: extra.retryAfterMs === undefined ? [] : [retryInfoDetail(extra.retryAfterMs)],
  }
  const headers: Record<string, string> =
    extra.retryAfterMs === undefined ? {} : { "retry-after": String(Math.ceil(extra.retryAfterMs / 1000)) }
  return format === "json"
    ? {
        status: httpStatus,
        body: encodeRpcStatusJson(status),
        headers: { ...headers, "content-type": "application/json" },
      }
    : {
        status: httpStatus,
        body: encodeRpcStatus(status),
        headers: { ...headers, "content-type": "application/x-protobuf" },
      }
}

const okReply = (format: Format, dropped: number): Reply => {
  const response: ExportMetricsServiceResponse =
    dropped === 0
      ? {}
      : { partialSuccess: { rejectedDataPoints: BigInt(dropped), errorMessage: PARTIAL_MESSAGE } }
  return format === "json"
    ? { status: 200, body: encodeOtlpResponseJson(response), headers: { "content-type": "application/json" } }
    : {
        status: 200,
        body: encodeOtlpResponseProtobuf(response),
        headers: { "content-type": "application/x-protobuf" },
      }
}

const formatOf = (req: IncomingMessage): Format | undefined => {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase()
  return type === "application/x-protobuf" ? "protobuf" : type === "application/json" ? "json" : undefined
}

/**
 * `POST /v1/metrics`, OTLP/HTTP: protobuf or JSON, plain or gzip. 200 with an
 * `ExportMetricsServiceResponse` (a partial success names what the limits dropped, so the client does
 * not retry it); 415 for other content types or encodings; 413 over the size bounds (bytes,
 * datapoints, elements); 400 for a body
 * that does not decode; 429 with `Retry-After` while the export buffer is full.
 */
export const otlpHttpRoute = (options: {
  readonly maxRequestBytes: number
  readonly maxDecompressedBytes: number
  /** Most datapoints and elements one request may hold (413 past them). */
  readonly bounds: RequestBounds
  readonly ingest: (req: ExportMetricsServiceRequest, bytes: number) => IngestOutcome
}): Route => ({
  method: "POST",
  path: "/v1/metrics",
  protocol: "otlp",
  maxRequestBytes: options.maxRequestBytes,
  handle: (req, body): Reply => {
    const format = formatOf(req)
    if (format === undefined) {
      return {
        status: 415,
        body: `unsupported content type "${req.headers["content-type"] ?? ""}"; use application/x-protobuf or application/json\n`,
      }
    }
    const encoding = (req.headers["content-encoding"] ?? "identity").trim().toLowerCase()
    let raw: Uint8Array = body
    if (encoding === "gzip") {
      const inflated = decompressGzip(body, options.maxDecompressedBytes)
      if (Either.isLeft(inflated)) {
        return statusReply(
          format,
          inflated.left.kind === "too_large" ? 413 : 400,
          GrpcCode.INVALID_ARGUMENT,
          inflated.left.message,
        )
      }
      raw = inflated.right
    } else if (encoding !== "identity" && encoding !== "") {
      return statusReply(
        format,
        415,
        GrpcCode.INVALID_ARGUMENT,
        `unsupported content encoding "${encoding}"; use gzip`,
      )
    } else if (raw.length > options.maxDecompressedBytes) {
      return statusReply(
        format,
        413,
        GrpcCode.INVALID_ARGUMENT,
        `request body exceeds ${options.maxDecompressedBytes} bytes`,
      )
    }
    const decoded =
      format === "json" ? decodeOtlpJson(raw, options.bounds) : decodeOtlpProtobuf(raw, options.bounds)
    if (Either.isLeft(decoded))
      return statusReply(format, decoded.left.httpStatus, GrpcCode.INVALID_ARGUMENT, decoded.left.message)
    const outcome = options.ingest(decoded.right, raw.length)
    if (outcome._tag === "Overloaded") {
      return statusReply(format, 429, GrpcCode.RESOURCE_EXHAUSTED, "export buffer full, retry later", {
        retryAfterMs: outcome.retryAfterMs,
      })
    }
    return okReply(format, outcome.dropped)
  },
})
