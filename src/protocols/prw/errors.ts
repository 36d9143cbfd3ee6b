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

/**
 * A remote-write body that cannot be decoded, with what the operator needs to see why.
 *
 * A plain tagged error (`_tag`, as `Effect.catchTag` reads it) rather than `Data.TaggedError`: it is
 * made in the decoding threads, and `effect/Data` would load most of Effect into each of them
 * (about 4 MiB of heap per thread).
 */
export class PrwDecodeError extends Error {
  readonly _tag = "PrwDecodeError" as const
  readonly kind: PrwDecodeErrorKind
  /** What is wrong and where, e.g. `truncated varint at byte 17`. */
  readonly reason: string
  constructor(args: { readonly kind: PrwDecodeErrorKind; readonly reason: string }) {
    super(messageOf(args.kind, args.reason))
    this.name = "PrwDecodeError"
    this.kind = args.kind
    this.reason = args.reason
  }
}

/** `snappy: corrupt input`, `protobuf: truncated varint at byte 17`. */
const messageOf = (kind: PrwDecodeErrorKind, reason: string): string => {
  if (kind === "too_many") return reason
  if (kind === "bad_labels") return `invalid labels: ${reason}`
  return `${kind === "bad_protobuf" ? "protobuf" : "snappy"}: ${reason}`
}
