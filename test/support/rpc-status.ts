/**
 * Decoding `google.rpc.Status` (a `grpc-status-details-bin` trailer, an OTLP/HTTP error body) and
 * its `RetryInfo`: the client's side, which the governor never takes; the tests read its answers
 * with it.
 *
 * @module
 */
import { Either } from "effect"
import { OtlpDecodeError } from "../../src/protocols/otlp/errors.js"
import type { RpcAny, RpcStatus } from "../../src/protocols/otlp/status.js"
import { LEN, ProtoReader, tag, VARINT, WireError } from "../../src/wire/protobuf.js"

const decodeStatus = (r: ProtoReader): RpcStatus => {
  let code = 0
  let message = ""
  const details: RpcAny[] = []
  for (let t = r.next(r.end); t !== 0; t = r.next(r.end)) {
    if (t === tag(1, VARINT)) code = r.uint32() | 0
    else if (t === tag(2, LEN)) message = r.string(r.end)
    else if (t === tag(3, LEN)) {
      const e = r.len(r.end)
      let typeUrl = ""
      let value: Uint8Array = new Uint8Array(0)
      for (let t2 = r.next(e); t2 !== 0; t2 = r.next(e)) {
        if (t2 === tag(1, LEN)) typeUrl = r.string(e)
        else if (t2 === tag(2, LEN)) value = r.bytes(e)
        else r.skipField(t2, e)
      }
      r.done(e)
      details.push({ typeUrl, value })
    } else r.skipField(t, r.end)
  }
  return { code, message, details }
}

/** Decodes a `google.rpc.Status` (for example a `grpc-status-details-bin` trailer). Never throws. */
export const decodeRpcStatus = (bytes: Uint8Array): Either.Either<RpcStatus, OtlpDecodeError> => {
  try {
    return Either.right(decodeStatus(new ProtoReader(bytes)))
  } catch (e) {
    const reason = e instanceof WireError ? e.message : `unexpected: ${String(e)}`
    return Either.left(new OtlpDecodeError({ kind: "bad_protobuf", reason }))
  }
}
