/**
 * How much one request may make a decoder build: `receivers.max_datapoints_per_request` and
 * `receivers.max_elements_per_request` in `config.yaml`.
 *
 * A few compressed bytes can describe millions of empty messages (`{}` in OTLP/JSON, `0a 00` in
 * protobuf), each of which costs an object, 30 to 100 times its size on the wire. The decoders
 * count as they go and stop at the first datapoint or element past the bound, so the work and the
 * memory of one request are bounded, not only its bytes. The receivers answer `413` (OTLP/gRPC:
 * `RESOURCE_EXHAUSTED` without `RetryInfo`), like a body over `max_decompressed_bytes`.
 *
 * @module
 */

export interface RequestBounds {
  /** Datapoints: OTLP data points of any type; remote-write samples and native histograms. */
  readonly maxDatapoints: number
  /**
   * Everything the decoder builds or records: datapoints and what holds or describes them
   * (resources, scopes, metrics, attributes, exemplars, buckets; series, labels). See
   * docs/receiving.md#size-bounds for the exact list per protocol.
   */
  readonly maxElements: number
}

/** For decoders used outside a receiver (tests, responses): bounds no request reaches. */
export const UNBOUNDED: RequestBounds = { maxDatapoints: 0x3fffffff, maxElements: 0x3fffffff }

export const tooManyDatapoints = (bound: number): string =>
  `request has more than ${bound} datapoints (receivers.max_datapoints_per_request)`

export const tooManyElements = (bound: number): string =>
  `request has more than ${bound} elements (receivers.max_elements_per_request)`

/** Thrown inside a decoder at the first datapoint or element past its bound; never escapes it. */
export class BoundExceeded extends Error {}

/**
 * What one request may still make a decoder build: the protobuf readers of both protocols extend it
 * and count each element and datapoint as they decode it (one decrement and compare each).
 */
export class BoundedReader {
  private datapointsLeft: number
  private elementsLeft: number

  constructor(readonly bounds: RequestBounds = UNBOUNDED) {
    this.datapointsLeft = bounds.maxDatapoints
    this.elementsLeft = bounds.maxElements
  }

  /** Counts one decoded element (an item of a repeated field); throws `BoundExceeded` past the bound. */
  element(): void {
    if (--this.elementsLeft < 0) throw new BoundExceeded(tooManyElements(this.bounds.maxElements))
  }

  /** Counts one datapoint, which is an element too. */
  datapoint(): void {
    if (--this.datapointsLeft < 0) throw new BoundExceeded(tooManyDatapoints(this.bounds.maxDatapoints))
    this.element()
  }
}
