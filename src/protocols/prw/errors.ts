import * as Data from "effect/Data"

/**
 * Why a remote-write body was refused:
 * - `bad_snappy`: not a valid snappy block (answer 400);
 * - `too_large`: the block's header announces more than the configured bound (answer 413);
 * - `bad_protobuf`: decompressed, but not a valid `WriteRequest` (answer 400);
 * - `bad_labels`: a valid `WriteRequest` with a series whose label set is invalid: an empty label
 *   name, a repeated label name, no `__name__` or an empty one (answer 400);
 * - `too_many`: more datapoints or elements than `receivers.max_datapoints_per_request` or
 *   `receivers.max_elements_per_request` allow (answer 413).
 */
export type PrwDecodeErrorKind = "bad_snappy" | "too_large" | "bad_protobuf" | "bad_labels" | "too_many"

/** A remote-write body that cannot be decoded, with what the operator needs to see why. */
export class PrwDecodeError extends Data.TaggedError("PrwDecodeError")<{
  readonly kind: PrwDecodeErrorKind
  /** What is wrong and where, e.g. `truncated varint at byte 17`. */
  readonly reason: string
}> {
  /** `snappy: corrupt input`, `protobuf: truncated varint at byte 17`. */
  override get message(): string {
    if (this.kind === "too_many") return this.reason
    if (this.kind === "bad_labels") return `invalid labels: ${this.reason}`
    return `${this.kind === "bad_protobuf" ? "protobuf" : "snappy"}: ${this.reason}`
  }
}
