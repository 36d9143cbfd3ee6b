import { MAIN_DEFAULTS, type MainConfigSpec } from "../config/main-schema.js"
import type { RequestBounds } from "../wire/bounds.js"

/** The receivers' request limits of `config.yaml` (`receivers.max_*`). */
export interface ReceiverLimits {
  /** Largest body accepted as sent (OTLP/HTTP, remote write). */
  readonly maxRequestBytes: number
  /** Largest body after decompression (OTLP/gRPC: the largest message). */
  readonly maxDecompressedBytes: number
  /** Most datapoints and elements one request may hold. */
  readonly bounds: RequestBounds
}

/** The limits `spec` sets, the defaults where it sets none. Pure. */
export const receiverLimitsOf = (spec: MainConfigSpec): ReceiverLimits => ({
  maxRequestBytes: spec.receivers?.max_request_bytes ?? MAIN_DEFAULTS.maxRequestBytes,
  maxDecompressedBytes: spec.receivers?.max_decompressed_bytes ?? MAIN_DEFAULTS.maxDecompressedBytes,
  bounds: {
    maxDatapoints: spec.receivers?.max_datapoints_per_request ?? MAIN_DEFAULTS.maxDatapointsPerRequest,
    maxElements: spec.receivers?.max_elements_per_request ?? MAIN_DEFAULTS.maxElementsPerRequest,
  },
})

/** The key paths of `config.yaml` whose values differ between `a` and `b`, in this order. Pure. */
export const changedLimits = (a: ReceiverLimits, b: ReceiverLimits): ReadonlyArray<string> => [
  ...(a.maxRequestBytes === b.maxRequestBytes ? [] : ["receivers.max_request_bytes"]),
  ...(a.maxDecompressedBytes === b.maxDecompressedBytes ? [] : ["receivers.max_decompressed_bytes"]),
  ...(a.bounds.maxDatapoints === b.bounds.maxDatapoints ? [] : ["receivers.max_datapoints_per_request"]),
  ...(a.bounds.maxElements === b.bounds.maxElements ? [] : ["receivers.max_elements_per_request"]),
]

/**
 * The receivers' limits in force. Every receiver reads them when a request arrives (the size
 * bound before its body is read, the decompression and datapoint bounds before it is decoded), so
 * a reload that changes them applies from the next request on; a request already past that point
 * keeps the limits it was read or decoded with.
 */
export class LiveReceiverLimits implements ReceiverLimits {
  private current: ReceiverLimits

  constructor(spec: MainConfigSpec) {
    this.current = receiverLimitsOf(spec)
  }

  get maxRequestBytes(): number {
    return this.current.maxRequestBytes
  }

  get maxDecompressedBytes(): number {
    return this.current.maxDecompressedBytes
  }

  get bounds(): RequestBounds {
    return this.current.bounds
  }

  /** Puts the limits of `spec` in force; the key paths that changed (none: nothing changes). */
  set(spec: MainConfigSpec): ReadonlyArray<string> {
    const next = receiverLimitsOf(spec)
    const changed = changedLimits(this.current, next)
    if (changed.length > 0) this.current = next
    return changed
  }
}
