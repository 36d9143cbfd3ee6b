import { kMaxLength } from "node:buffer"
import * as zlib from "node:zlib"
import { Either } from "effect"
import {
  mediaType,
  type Reply,
  type Route,
  type RouteOptions,
  textReply,
} from "../../pipeline/http-receiver.js"
import { decompressZstd } from "../../wire/zstd.js"
import type { BodyDecoder, DecodeFailure } from "./decode-pool.js"
import type { ScannedWriteRequest } from "./scan.js"
import { compressBody } from "./snappy.js"

/** The `Content-Encoding`s a remote-write request may use, as the 415 answer lists them. */
export const PRW_ENCODINGS = "snappy, gzip, deflate, zstd"

/**
 * A gzip, deflate or zstd body decompressed within `max` bytes (zlib stops at the bound), then put in the one
 * snappy block the decoder reads: 413 past the bound, 400 for a body that does not inflate.
 */
const reencode = (
  body: Uint8Array,
  encoding: "gzip" | "deflate" | "zstd",
  max: number,
): Uint8Array | Reply => {
  if (encoding === "zstd") {
    const out = decompressZstd(body, max)
    if ("ok" in out) return compressBody(out.ok)
    return out.error.kind === "too_large"
      ? textReply(413, `request body ${out.error.reason}`)
      : textReply(400, `invalid zstd body: ${out.error.reason}`)
  }
  const options = { maxOutputLength: Math.min(max, kMaxLength) }
  const view = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  try {
    return compressBody(
      encoding === "gzip" ? zlib.gunzipSync(view, options) : zlib.inflateSync(view, options),
    )
  } catch (e) {
    if ((e as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE")
      return textReply(413, `request body decompresses to more than ${max} bytes`)
    return textReply(400, `invalid ${encoding} body: ${e instanceof Error ? e.message : String(e)}`)
  }
}

/**
 * `POST /api/v1/write`, Prometheus remote write 1.0: a snappy block holding a protobuf
 * `WriteRequest`. 204 on success (also when limits dropped some of it: the sender must not retry);
 * 415 for another content type or encoding; 413 over the size bounds; 400 for a body that does not
 * decode; 503 with `Retry-After` while the export buffer is full (Prometheus retries 5xx, and by
 * default does not retry 429).
 */
/** Push back: 503 with Retry-After (Prometheus retries 5xx and, by default, not 429). */
const refused = (message: string, retryAfterMs: number): Reply =>
  textReply(503, message, { "retry-after": String(Math.ceil(retryAfterMs / 1000)) })

export const prwRoute = (options: RouteOptions<ScannedWriteRequest, BodyDecoder>): Route => {
  const afterDecode = (decoded: Either.Either<ScannedWriteRequest, DecodeFailure>): Reply => {
    if (Either.isLeft(decoded)) {
      const f = decoded.left
      return textReply(f.status, f.message, f.status === 503 ? { "retry-after": "1" } : {})
    }
    // What the request takes in the export buffer: the body as it came (forwarded as it is, or the
    // compressed part that passes).
    const scan = decoded.right
    const outcome = options.ingest(scan, scan.wire?.length ?? scan.bytes.length)
    // Through the limits and buffered (as bytes): the scan's arrays go back to the decoder.
    options.decoder.recycle(scan)
    if (outcome._tag === "Overloaded") return refused("export buffer full, retry later", outcome.retryAfterMs)
    return { status: 204 }
  }
  return {
    method: "POST",
    path: "/api/v1/write",
    protocol: "prw",
    // Read at every request: a reload may change it (the options may be live, see LiveReceiverLimits).
    get maxRequestBytes() {
      return options.maxRequestBytes
    },
    refused: (_req, message, retryAfterMs) => refused(message, retryAfterMs),
    handle: (req, body): Reply | Promise<Reply> => {
      const type = mediaType(req)
      if (type !== "application/x-protobuf") {
        return textReply(415, `unsupported content type "${type}"; remote write sends application/x-protobuf`)
      }
      const proto = /;\s*proto=([^;\s]+)/i.exec(req.headers["content-type"] ?? "")?.[1]
      if (proto !== undefined && proto !== "prometheus.WriteRequest") {
        // Remote write 2.0 senders fall back to 1.0 on 415.
        return textReply(
          415,
          `unsupported remote-write message "${proto}"; this receiver speaks prometheus.WriteRequest (1.0)`,
        )
      }
      const encoding = (req.headers["content-encoding"] ?? "").trim().toLowerCase()
      if (encoding !== "snappy" && encoding !== "gzip" && encoding !== "deflate" && encoding !== "zstd") {
        return textReply(415, `unsupported content encoding "${encoding}"; accepted: ${PRW_ENCODINGS}`)
      }
      const block = encoding === "snappy" ? body : reencode(body, encoding, options.maxDecompressedBytes)
      if (!(block instanceof Uint8Array)) return block
      const decoded = options.decoder.decode(block, options.maxDecompressedBytes, options.bounds)
      return decoded instanceof Promise ? decoded.then(afterDecode) : afterDecode(decoded)
    },
  }
}
