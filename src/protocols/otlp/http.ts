import type { IncomingMessage } from "node:http"
import { Either } from "effect"
import { mediaType, type Reply, type Route, type RouteOptions } from "../../pipeline/http-receiver.js"
import { decompressZstd } from "../../wire/zstd.js"
import { type OtlpBatch, objectBatch } from "./adapter.js"
import type { OtlpBodyDecoder, OtlpDecodeFailure } from "./decode-pool.js"
import { OtlpDecodeError } from "./errors.js"
import { decompressDeflate, decompressGzip } from "./gzip.js"
import { decodeOtlpJson, encodeOtlpResponseJson } from "./json.js"
import { encodeOtlpResponseProtobuf } from "./protobuf.js"
import { encodeRpcStatus, encodeRpcStatusJson, GrpcCode, retryInfoDetail } from "./status.js"
import type { ExportMetricsServiceResponse } from "./types.js"

type Format = "protobuf" | "json"

/** The `Content-Encoding`s an OTLP/HTTP request may use, as the 415 answer lists them. */
export const OTLP_ENCODINGS = "gzip, deflate, zstd, identity"

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
  const type = mediaType(req)
  return type === "application/x-protobuf" ? "protobuf" : type === "application/json" ? "json" : undefined
}

/**
 * `POST /v1/metrics`, OTLP/HTTP: protobuf or JSON, plain, gzip, deflate or zstd. 200 with an
 * `ExportMetricsServiceResponse` (a partial success names what the limits dropped, so the client does
 * not retry it); 415 for other content types or encodings; 413 over the size bounds (bytes,
 * datapoints, elements); 400 for a body
 * that does not decode; 429 with `Retry-After` while the export buffer is full; 503 with
 * `Retry-After` when the thread decoding the body died. Protobuf bodies are inflated and decoded by
 * `decoder` (in worker threads when `receivers.decode_threads` is above 0); JSON in this thread.
 */
export const otlpHttpRoute = (options: RouteOptions<OtlpBatch, OtlpBodyDecoder>): Route => {
  const afterDecode = (
    format: Format,
    decoded: Either.Either<OtlpBatch, OtlpDecodeFailure>,
    bytes: number,
  ): Reply => {
    if (Either.isLeft(decoded)) {
      const e = decoded.left
      return e._tag === "OtlpDecoderDied"
        ? statusReply(format, 503, GrpcCode.UNAVAILABLE, e.message, { retryAfterMs: 1_000 })
        : statusReply(format, e.httpStatus, GrpcCode.INVALID_ARGUMENT, e.message)
    }
    const batch = decoded.right
    const outcome = options.ingest(batch, batch.bytes?.length ?? bytes)
    if (outcome._tag === "Overloaded") {
      return statusReply(format, 429, GrpcCode.RESOURCE_EXHAUSTED, "export buffer full, retry later", {
        retryAfterMs: outcome.retryAfterMs,
      })
    }
    return okReply(format, outcome.dropped)
  }
  return {
    method: "POST",
    path: "/v1/metrics",
    protocol: "otlp",
    // Read at every request: a reload may change it (the options may be live, see LiveReceiverLimits).
    get maxRequestBytes() {
      return options.maxRequestBytes
    },
    refused: (req, message, retryAfterMs) =>
      statusReply(formatOf(req) ?? "protobuf", 429, GrpcCode.RESOURCE_EXHAUSTED, message, { retryAfterMs }),
    handle: (req, body): Reply | Promise<Reply> => {
      const format = formatOf(req)
      if (format === undefined) {
        return {
          status: 415,
          body: `unsupported content type "${req.headers["content-type"] ?? ""}"; use application/x-protobuf or application/json\n`,
        }
      }
      const encoding = (req.headers["content-encoding"] ?? "identity").trim().toLowerCase()
      const gzip = encoding === "gzip"
      if (
        !gzip &&
        encoding !== "deflate" &&
        encoding !== "zstd" &&
        encoding !== "identity" &&
        encoding !== ""
      ) {
        return statusReply(
          format,
          415,
          GrpcCode.INVALID_ARGUMENT,
          `unsupported content encoding "${encoding}"; accepted: ${OTLP_ENCODINGS}`,
        )
      }
      if (encoding === "zstd" && format === "json") {
        // Decompressed here, within the bound, then decoded like an uncompressed body. (Protobuf
        // bodies are decompressed by the decoder, in its threads when it has some.)
        const out = decompressZstd(body, options.maxDecompressedBytes)
        if ("error" in out) {
          const e = new OtlpDecodeError({
            kind: out.error.kind === "too_large" ? "too_large" : "bad_encoding",
            reason: out.error.reason,
          })
          return afterDecode(format, Either.left(e), body.length)
        }
        body = out.ok
      }
      if (encoding === "deflate") {
        // Inflated here, within the bound, then decoded like an uncompressed body.
        const inflated = decompressDeflate(body, options.maxDecompressedBytes)
        if (Either.isLeft(inflated)) return afterDecode(format, Either.left(inflated.left), body.length)
        body = inflated.right
      }
      const compressed = gzip || (encoding === "zstd" && format === "protobuf")
      if (!compressed && body.length > options.maxDecompressedBytes) {
        return statusReply(
          format,
          413,
          GrpcCode.INVALID_ARGUMENT,
          `request body exceeds ${options.maxDecompressedBytes} bytes`,
        )
      }
      if (format === "protobuf") {
        const decoded = options.decoder.decode(
          body,
          gzip ? "gzip" : encoding === "zstd" ? "zstd" : "identity",
          options.maxDecompressedBytes,
          options.bounds,
        )
        return decoded instanceof Promise
          ? decoded.then((d) => afterDecode(format, d, body.length))
          : afterDecode(format, decoded, body.length)
      }
      let raw: Uint8Array = body
      if (gzip) {
        const inflated = decompressGzip(body, options.maxDecompressedBytes)
        if (Either.isLeft(inflated)) return afterDecode(format, Either.left(inflated.left), body.length)
        raw = inflated.right
      }
      return afterDecode(format, Either.map(decodeOtlpJson(raw, options.bounds), objectBatch), raw.length)
    },
  }
}
