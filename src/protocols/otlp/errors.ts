import * as Data from "effect/Data"

/**
 * What was wrong with an OTLP request body:
 *
 * - `bad_gzip`: `Content-Encoding: gzip`, but the body is not valid gzip;
 * - `bad_encoding`: `Content-Encoding: zstd` (or another compression), but the body does not
 *   decompress;
 * - `too_large`: the body inflates past the configured limit (answer `413`, never retry);
 * - `bad_protobuf`: not a valid `ExportMetricsServiceRequest` in binary protobuf;
 * - `bad_json`: not a valid `ExportMetricsServiceRequest` in OTLP/JSON;
 * - `too_many`: more datapoints or elements than `receivers.max_datapoints_per_request` or
 *   `receivers.max_elements_per_request` allow (answer `413`, never retry).
 */
export type OtlpDecodeErrorKind =
  | "bad_gzip"
  | "bad_encoding"
  | "too_large"
  | "bad_protobuf"
  | "bad_json"
  | "too_many"

const WHAT: Readonly<Record<OtlpDecodeErrorKind, string>> = {
  bad_gzip: "invalid gzip body",
  bad_encoding: "invalid compressed body",
  too_large: "body too large",
  bad_protobuf: "invalid OTLP protobuf",
  bad_json: "invalid OTLP JSON",
  too_many: "too many datapoints or elements",
}

/** An OTLP body could not be turned into a request. Permanent: the sender must not retry it. */
export class OtlpDecodeError extends Data.TaggedError("OtlpDecodeError")<{
  readonly kind: OtlpDecodeErrorKind
  /** Short, for the operator: what is wrong and where (`field 3 at byte 120: truncated`). */
  readonly reason: string
}> {
  override get message(): string {
    // A bound's reason is a sentence of its own: "request has more than … datapoints (…)".
    return this.kind === "too_many" ? this.reason : `${WHAT[this.kind]}: ${this.reason}`
  }

  /** The OTLP/HTTP answer: `413 Content Too Large` for `too_large` and `too_many`, else `400 Bad Request`. */
  get httpStatus(): 400 | 413 {
    return this.kind === "too_large" || this.kind === "too_many" ? 413 : 400
  }
}
