/**
 * `google.rpc.Status`, the error body of OTLP: the `grpc-status-details-bin` trailer of a failed
 * gRPC call and the body of an OTLP/HTTP 4xx/5xx answer. With its one detail that OTLP gives a
 * meaning to, `google.rpc.RetryInfo` (`retry_delay`, a `google.protobuf.Duration`): "retry after".
 *
 * Field numbers (googleapis `google/rpc/status.proto`, `error_details.proto`, protobuf
 * `any.proto`, `duration.proto`): Status { int32 code = 1; string message = 2; repeated Any
 * details = 3 }; Any { string type_url = 1; bytes value = 2 }; RetryInfo { Duration retry_delay
 * = 1 }; Duration { int64 seconds = 1; int32 nanos = 2 }.
 */
import { LEN, ProtoReader, ProtoWriter, tag, VARINT } from "../../wire/protobuf.js"

/** gRPC status codes used by OTLP. */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const

/** `google.protobuf.Any`. */
export interface RpcAny {
  readonly typeUrl: string
  readonly value: Uint8Array
}

/** `google.rpc.Status`. */
export interface RpcStatus {
  readonly code: number
  readonly message: string
  readonly details: ReadonlyArray<RpcAny>
}

export const RETRY_INFO_TYPE_URL = "type.googleapis.com/google.rpc.RetryInfo"

/** The name of the gRPC trailer that carries an encoded `google.rpc.Status`. */
export const STATUS_DETAILS_TRAILER = "grpc-status-details-bin"

/** Splits a non-negative delay in milliseconds into whole seconds and nanoseconds. */
const toDuration = (ms: number): { seconds: number; nanos: number } => {
  const total = Number.isFinite(ms) && ms > 0 ? Math.round(ms * 1e6) : 0 // nanoseconds
  const seconds = Math.floor(total / 1e9)
  return { seconds, nanos: total - seconds * 1e9 }
}

/** Encodes `google.rpc.RetryInfo { retry_delay }` for a delay in milliseconds (negative: 0). */
export const encodeRetryInfo = (retryAfterMs: number): Uint8Array => {
  const { seconds, nanos } = toDuration(retryAfterMs)
  const w = new ProtoWriter(32)
  const m = w.beginLen(1)
  if (seconds !== 0) {
    w.uint32(tag(1, VARINT))
    w.int64(BigInt(seconds))
  }
  if (nanos !== 0) {
    w.uint32(tag(2, VARINT))
    w.int32(nanos)
  }
  w.endLen(m)
  return w.finish()
}

/** The `Any` detail carrying a `RetryInfo` for `retryAfterMs`. */
export const retryInfoDetail = (retryAfterMs: number): RpcAny => ({
  typeUrl: RETRY_INFO_TYPE_URL,
  value: encodeRetryInfo(retryAfterMs),
})

/** Encodes a `google.rpc.Status`. */
export const encodeRpcStatus = (status: RpcStatus): Uint8Array => {
  const w = new ProtoWriter(128)
  if (status.code !== 0) {
    w.uint32(tag(1, VARINT))
    w.int32(status.code)
  }
  if (status.message !== "") {
    w.uint32(tag(2, LEN))
    w.string(status.message)
  }
  for (const d of status.details) {
    const m = w.beginLen(3)
    if (d.typeUrl !== "") {
      w.uint32(tag(1, LEN))
      w.string(d.typeUrl)
    }
    if (d.value.length > 0) {
      w.uint32(tag(2, LEN))
      w.bytes(d.value)
    }
    w.endLen(m)
  }
  return w.finish()
}

/** The retry delay in milliseconds of the first `RetryInfo` detail of `status`, if any. */
export const retryDelayMs = (status: RpcStatus): number | undefined => {
  for (const d of status.details) {
    if (d.typeUrl !== RETRY_INFO_TYPE_URL) continue
    try {
      const r = new ProtoReader(d.value)
      let seconds = 0n
      let nanos = 0
      for (let t = r.next(r.end); t !== 0; t = r.next(r.end)) {
        if (t !== tag(1, LEN)) {
          r.skipField(t, r.end)
          continue
        }
        const e = r.len(r.end)
        for (let t2 = r.next(e); t2 !== 0; t2 = r.next(e)) {
          if (t2 === tag(1, VARINT)) seconds = r.int64()
          else if (t2 === tag(2, VARINT)) nanos = r.uint32() | 0
          else r.skipField(t2, e)
        }
      }
      return Number(seconds) * 1000 + nanos / 1e6
    } catch {
      return undefined
    }
  }
  return undefined
}

/**
 * A `google.rpc.Status` as proto3 JSON (the body of an OTLP/HTTP error answered in JSON).
 * `RetryInfo` details are written as `{"@type": …, "retryDelay": "1.500s"}`; other details as
 * `{"@type": …, "value": <base64>}`.
 */
export const encodeRpcStatusJson = (status: RpcStatus): string => {
  const details = status.details.map((d) => {
    if (d.typeUrl === RETRY_INFO_TYPE_URL) {
      const ms = retryDelayMs({ code: 0, message: "", details: [d] }) ?? 0
      const { seconds, nanos } = toDuration(ms)
      const frac = nanos === 0 ? "" : `.${String(nanos).padStart(9, "0").replace(/0+$/, "")}`
      return { "@type": d.typeUrl, retryDelay: `${seconds}${frac}s` }
    }
    return { "@type": d.typeUrl, value: Buffer.from(d.value).toString("base64") }
  })
  const o: Record<string, unknown> = {}
  if (status.code !== 0) o.code = status.code
  if (status.message !== "") o.message = status.message
  if (details.length > 0) o.details = details
  return JSON.stringify(o)
}
