/**
 * What a protocol is to the rest of the governor: the one interface each protocol folder
 * (`otlp/`, `prw/`) implements in its `protocol.ts`.
 *
 * - On the way in, a receiver decodes a request into the protocol's own `Req`; the
 *   `ProtocolAdapter` shows it to the limits engine as a protocol-neutral `SeriesBatch` and
 *   rebuilds what passes from the verdict (`pipeline/ingest.ts` calls both).
 * - On the way out, the `WireEncoder` turns the buffered requests into one HTTP request for the
 *   downstream (`export/exporter.ts` calls it).
 *
 * @module
 */

import type { BatchVerdict, SeriesBatch } from "../limits/batch.js"
import type { WireBody } from "../wire/bytes.js"

/** The protocols, as they appear in metric labels and log lines. */
export type ProtocolName = "otlp" | "prw"

/** The entries of a batch that go to one endpoint of a sharded exporter: `owner[i] === index`. */
export interface ShardSelection {
  readonly owner: Uint16Array
  readonly index: number
}

/** How one protocol's decoded request is seen by the limits engine and rebuilt from its verdict. */
export interface ProtocolAdapter<Req, Out = Req> {
  readonly protocol: ProtocolName
  readonly toSeriesBatch: (req: Req) => SeriesBatch
  /**
   * What to forward after the verdict (`Out`: what the exporter buffers), and its datapoints; with
   * `only`, just the entries of that shard (request-level data, such as remote-write metadata, goes
   * with each shard's part).
   */
  readonly applyVerdict: (
    req: Req,
    verdict: BatchVerdict,
    only?: ShardSelection,
  ) => { readonly request: Out; readonly datapoints: number }
}

/** How one protocol's buffered payloads become one HTTP request. */
export interface WireEncoder<P> {
  readonly encode: (payloads: ReadonlyArray<P>) => {
    /** One buffer, or parts sent one after the other. */
    readonly body: WireBody
    readonly headers: Readonly<Record<string, string>>
  }
  /**
   * Set when the payloads are compressed already (remote write's snappy blocks): the durable queue
   * stores them as they are. `fromUncompressed` makes one from what an earlier version buffered
   * (the uncompressed encoding), for a queue written by it.
   */
  readonly compressed?: { readonly fromUncompressed: (payload: Uint8Array) => P }
}
