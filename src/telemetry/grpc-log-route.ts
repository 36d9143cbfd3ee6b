/**
 * Where grpc-js's log lines go, held apart from grpc-js itself: the program sets it at start, and
 * the modules that load grpc-js (the OTLP/gRPC receiver, the OTLP/gRPC exporter; loaded only when
 * configured) install it when they load (`grpc-logs.ts`). A process without gRPC never loads
 * grpc-js (about 4 MiB of heap).
 *
 * @module
 */
import type { Effect } from "effect"

let route: ((line: Effect.Effect<void>) => void) | undefined

/** Sets where grpc-js's log lines go (a `callbackLogger`). */
export const setGrpcLogRoute = (log: (line: Effect.Effect<void>) => void): void => {
  route = log
}

/** Where grpc-js's log lines go, once set. */
export const grpcLogRoute = (): ((line: Effect.Effect<void>) => void) | undefined => route
