/**
 * OTLP/gRPC: the `opentelemetry.proto.collector.metrics.v1.MetricsService/Export` service on
 * `@grpc/grpc-js`, with the hand-written codec as its (de)serializer, and a server around it.
 *
 * Status codes (https://opentelemetry.io/docs/specs/otlp/#otlpgrpc-response):
 * - success: `OK` with an `ExportMetricsServiceResponse`; `partial_success` set only when data
 *   points were rejected (or a message is given);
 * - a request with more datapoints or elements than `bounds` allow: `RESOURCE_EXHAUSTED` without
 *   `RetryInfo` (gRPC's code for a message too large; not retried), decoding stops there;
 * - bad data (undecodable request, or the handler says `invalid`): `INVALID_ARGUMENT`, not
 *   retryable. The server's `requestDeserialize` keeps the message's bytes as they are; the call
 *   decodes them with `decode` (by default `decodeOtlpProtobuf` in this thread; the governor's
 *   receiver hands them to its decoding threads), which never throws: a decode error is a value,
 *   so grpc-js never turns it into `INTERNAL`;
 * - the thread decoding the message died (`OtlpDecoderDied`): `UNAVAILABLE`, which clients retry;
 * - backpressure (`overloaded`): `RESOURCE_EXHAUSTED`, with a `google.rpc.RetryInfo` in the
 *   `grpc-status-details-bin` trailer when `retryAfterMs` is given. Per the spec a client retries
 *   `RESOURCE_EXHAUSTED` only when that RetryInfo is present, so give `retryAfterMs` whenever
 *   the sender should come back;
 * - a handler that throws or rejects: `INTERNAL`;
 * - a message over `maxReceiveMessageLength` (compressed, or after gzip inflation): grpc-js
 *   answers `RESOURCE_EXHAUSTED` before the handler runs.
 *
 * gzip-compressed requests (`grpc-encoding: gzip`) are inflated by grpc-js; one that does not
 * inflate is answered `INVALID_ARGUMENT` and reported to `onDecodeError` (kind `bad_gzip`).
 */
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net"
import * as grpc from "@grpc/grpc-js"
import { Either } from "effect"
import { type Admission, REFUSAL_RETRY_AFTER_MS, UNLIMITED } from "../../memory/guard.js"
import { type RequestBounds, UNBOUNDED } from "../../wire/bounds.js"
import type { OtlpDecodeFailure } from "./decode-pool.js"
import { OtlpDecodeError } from "./errors.js"
import {
  decodeOtlpProtobuf,
  decodeOtlpResponseProtobuf,
  encodeOtlpProtobuf,
  encodeOtlpResponseProtobuf,
} from "./protobuf.js"
import { encodeRpcStatus, GrpcCode, retryInfoDetail, STATUS_DETAILS_TRAILER } from "./status.js"
import type { ExportMetricsServiceRequest, ExportMetricsServiceResponse } from "./types.js"

export const METRICS_SERVICE_NAME = "opentelemetry.proto.collector.metrics.v1.MetricsService"
export const METRICS_EXPORT_PATH = `/${METRICS_SERVICE_NAME}/Export`

/** What the server side of `Export` receives: the decoded request, or why it could not be decoded. */
export type DecodedExportRequest = Either.Either<ExportMetricsServiceRequest, OtlpDecodeError>

const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength)

/** The `Export` method: clients send an `ExportMetricsServiceRequest`, the server gets a `DecodedExportRequest`. */
export interface MetricsExportMethod {
  readonly path: string
  readonly originalName: string
  readonly requestStream: false
  readonly responseStream: false
  readonly requestSerialize: (req: ExportMetricsServiceRequest) => Buffer
  readonly requestDeserialize: (bytes: Buffer) => DecodedExportRequest
  readonly responseSerialize: (res: ExportMetricsServiceResponse) => Buffer
  readonly responseDeserialize: (bytes: Buffer) => ExportMetricsServiceResponse
}

/** The grpc-js service definition of `MetricsService`; a server decodes requests within `bounds`. */
export const metricsServiceDefinition = (
  bounds: RequestBounds = UNBOUNDED,
): { readonly export: MetricsExportMethod } => ({
  export: {
    path: METRICS_EXPORT_PATH,
    originalName: "Export",
    requestStream: false,
    responseStream: false,
    requestSerialize: (req: ExportMetricsServiceRequest): Buffer => asBuffer(encodeOtlpProtobuf(req)),
    requestDeserialize: (bytes: Buffer): DecodedExportRequest => decodeOtlpProtobuf(bytes, bounds),
    responseSerialize: (res: ExportMetricsServiceResponse): Buffer =>
      asBuffer(encodeOtlpResponseProtobuf(res)),
    // Client side: grpc-js turns a throw here into an INTERNAL status for the caller.
    responseDeserialize: (bytes: Buffer): ExportMetricsServiceResponse =>
      Either.getOrThrowWith(decodeOtlpResponseProtobuf(bytes), (e) => new Error(e.message)),
  },
})

/** What the handler decided for one request. */
export type GrpcExportResult =
  | {
      readonly ok: true
      /** Data points not accepted (dropped by limits); > 0 sets `partial_success`. */
      readonly rejectedDataPoints?: number
      /** Why they were rejected, for the sender (default: a generic sentence). */
      readonly errorMessage?: string
    }
  | {
      readonly ok: false
      /** `invalid`: INVALID_ARGUMENT (not retryable); `overloaded`: RESOURCE_EXHAUSTED. */
      readonly code: "invalid" | "overloaded"
      readonly message: string
      /** With `overloaded`: sent as a `google.rpc.RetryInfo`, which makes the client retry. */
      readonly retryAfterMs?: number
    }

export interface GrpcServerOptions<Req = ExportMetricsServiceRequest> {
  /** Interface to listen on; `""` listens on all interfaces, IPv4 and IPv6 (`[::]`). */
  readonly host: string
  /** 0 picks a free port (see the returned `port`). */
  readonly port: number
  readonly handle: (req: Req) => Promise<GrpcExportResult>
  /**
   * Decodes a request's bytes (already inflated when gzip) within `bounds`. Default:
   * `decodeOtlpProtobuf` in this thread (then `Req` is `ExportMetricsServiceRequest`).
   */
  readonly decode?: (
    bytes: Uint8Array,
    bounds: RequestBounds,
  ) => Either.Either<Req, OtlpDecodeFailure> | Promise<Either.Either<Req, OtlpDecodeFailure>>
  /**
   * Largest request accepted, in bytes, both as received and after gzip inflation. Read at every
   * call, as `bounds` is: either may be a getter that a reload changes.
   */
  readonly maxReceiveMessageLength: number
  /** Most datapoints and elements a request may hold; past them: RESOURCE_EXHAUSTED, no RetryInfo. */
  readonly bounds?: RequestBounds
  /**
   * Called for every request that could not be decoded: answered INVALID_ARGUMENT, or
   * RESOURCE_EXHAUSTED without RetryInfo when it is over `bounds` (kind `too_many`).
   */
  readonly onDecodeError?: (error: OtlpDecodeError) => void
  /**
   * Asked before a message is decoded (the memory limit): a refusal is RESOURCE_EXHAUSTED with a
   * RetryInfo, and `onRefused` is called; an admitted message is released once answered.
   */
  readonly admission?: Admission
  readonly onRefused?: () => void
  /**
   * TLS credentials (default: plaintext), or credentials a reload may replace (`SwitchingCredentials`:
   * TLS turned on or off while the server runs).
   */
  readonly credentials?: grpc.ServerCredentials | SwitchingCredentials
  /**
   * Checks a call's metadata before anything else (admission, decoding): false answers
   * UNAUTHENTICATED and calls `onUnauthenticated`.
   */
  readonly authenticate?: (metadata: grpc.Metadata) => boolean
  readonly onUnauthenticated?: () => void
  /** How long `shutdown` lets calls in flight finish before cutting them (default 5000 ms). */
  readonly shutdownGraceMs?: number
}

/**
 * Server credentials that may be replaced while the server runs: each new connection gets
 * `current()`; after `onReplaced` tells of a replacement, the connections made with the previous
 * credentials are drained (GOAWAY: calls in flight finish, then the connection closes; those still
 * open after `shutdownGraceMs`, 5 s by default, are cut), so their clients reconnect with the new ones.
 */
export interface SwitchingCredentials {
  readonly current: () => grpc.ServerCredentials
  readonly onReplaced: (listener: () => void) => () => void
}

export interface GrpcServer {
  readonly port: number
  /**
   * Stops accepting, lets calls in flight finish for `graceMs` (default `shutdownGraceMs`), then
   * cuts those still open (`forceShutdown`). Idempotent: later calls wait for the first one.
   */
  readonly shutdown: (graceMs?: number) => Promise<void>
}

const DEFAULT_PARTIAL_MESSAGE = "data points dropped by metrics-governor limits"

const statusTrailer = (code: number, message: string, retryAfterMs: number | undefined): grpc.Metadata => {
  const md = new grpc.Metadata()
  const details = retryAfterMs === undefined ? [] : [retryInfoDetail(retryAfterMs)]
  md.set(STATUS_DETAILS_TRAILER, asBuffer(encodeRpcStatus({ code, message, details })))
  return md
}

/** Answers a call with an error status, its `google.rpc.Status` (with a RetryInfo when given) in the trailer. */
const fail = (
  callback: grpc.sendUnaryData<ExportMetricsServiceResponse>,
  code: number,
  message: string,
  retryAfterMs?: number,
): void => callback({ code, details: message, metadata: statusTrailer(code, message, retryAfterMs) })

/** Turns the handler's result into the gRPC answer. */
const answer = (
  result: GrpcExportResult,
  callback: grpc.sendUnaryData<ExportMetricsServiceResponse>,
): void => {
  if (result.ok) {
    const rejected = result.rejectedDataPoints ?? 0
    if (rejected > 0 || (result.errorMessage !== undefined && result.errorMessage !== "")) {
      callback(null, {
        partialSuccess: {
          rejectedDataPoints: BigInt(Math.max(0, Math.trunc(rejected))),
          errorMessage: result.errorMessage ?? DEFAULT_PARTIAL_MESSAGE,
        },
      })
    } else {
      callback(null, {})
    }
    return
  }
  if (result.code === "invalid") fail(callback, GrpcCode.INVALID_ARGUMENT, result.message)
  else fail(callback, GrpcCode.RESOURCE_EXHAUSTED, result.message, result.retryAfterMs)
}

/** What grpc-js answers (`INTERNAL`) to a message that does not inflate. */
const GRPC_JS_INFLATE_FAILED = "Failed to decompress message"

/**
 * grpc-js inflates gzip messages itself, before the deserializer or the handler, and answers one
 * that does not inflate with `INTERNAL`, which clients take for a server fault and retry. It is bad
 * data: this interceptor, given the innermost call, turns that answer into `INVALID_ARGUMENT` and
 * reports it as an `OtlpDecodeError` of kind `bad_gzip`, like any request that does not decode.
 * (It wraps the call's `sendStatus`, which grpc-js calls on decompression failure; the test
 * "answers INVALID_ARGUMENT to a message marked gzip that is not gzip" pins that behaviour.)
 */
const invalidGzipInterceptor =
  (onDecodeError: ((error: OtlpDecodeError) => void) | undefined): grpc.ServerInterceptor =>
  (_method, call) => {
    const sendStatus = call.sendStatus.bind(call)
    call.sendStatus = (status) => {
      if (status.code !== GrpcCode.INTERNAL || status.details !== GRPC_JS_INFLATE_FAILED) {
        sendStatus(status)
        return
      }
      const error = new OtlpDecodeError({ kind: "bad_gzip", reason: "the message does not inflate" })
      onDecodeError?.(error)
      sendStatus({
        code: GrpcCode.INVALID_ARGUMENT,
        details: error.message,
        metadata: statusTrailer(GrpcCode.INVALID_ARGUMENT, error.message, undefined),
      })
    }
    return call as grpc.ServerInterceptingCall
  }

const hostPort = (host: string, port: number): string => {
  const h = host === "" ? "[::]" : host.includes(":") && !host.startsWith("[") ? `[${host}]` : host
  return `${h}:${port}`
}

/** Starts an OTLP/gRPC metrics server. Rejects when the address cannot be bound. */
export const startGrpcServer = <Req = ExportMetricsServiceRequest>(
  options: GrpcServerOptions<Req>,
): Promise<GrpcServer> => {
  const serverOptions: grpc.ServerOptions = { interceptors: [invalidGzipInterceptor(options.onDecodeError)] }
  // grpc-js reads its options at every call: a getter lets a reload change the message bound
  // (`options` may be live, see LiveReceiverLimits).
  Object.defineProperty(serverOptions, "grpc.max_receive_message_length", {
    enumerable: true,
    get: () => options.maxReceiveMessageLength,
  })
  const server = new grpc.Server(serverOptions)
  const decode =
    options.decode ??
    ((bytes: Uint8Array, b: RequestBounds) =>
      decodeOtlpProtobuf(bytes, b) as Either.Either<Req, OtlpDecodeError>)
  const admission = options.admission ?? UNLIMITED
  const exportCall: grpc.handleUnaryCall<Buffer, ExportMetricsServiceResponse> = (call, answered) => {
    if (options.authenticate !== undefined && !options.authenticate(call.metadata)) {
      options.onUnauthenticated?.()
      answered({ code: GrpcCode.UNAUTHENTICATED, details: "missing or invalid credentials" })
      return
    }
    const charge = call.request.length
    if (!admission.admit(charge)) {
      options.onRefused?.()
      fail(answered, GrpcCode.RESOURCE_EXHAUSTED, "memory limit reached, retry later", REFUSAL_RETRY_AFTER_MS)
      return
    }
    let released = false
    const callback: typeof answered = (error, value) => {
      if (!released) {
        released = true
        admission.release(charge)
      }
      answered(error, value)
    }
    const internal = (e: unknown) => {
      const message = `internal error: ${e instanceof Error ? e.message : String(e)}`
      callback({ code: GrpcCode.INTERNAL, details: message })
    }
    const decoded = (result: Either.Either<Req, OtlpDecodeFailure>) => {
      if (Either.isLeft(result)) {
        const e = result.left
        if (e._tag === "OtlpDecoderDied") {
          fail(callback, GrpcCode.UNAVAILABLE, e.message)
          return
        }
        options.onDecodeError?.(e)
        // Over a bound, like a message over the size bound: RESOURCE_EXHAUSTED, without RetryInfo so
        // that clients do not retry it.
        fail(
          callback,
          e.kind === "too_many" ? GrpcCode.RESOURCE_EXHAUSTED : GrpcCode.INVALID_ARGUMENT,
          e.message,
        )
        return
      }
      const request = result.right
      Promise.resolve()
        .then(() => options.handle(request))
        .then((r) => answer(r, callback), internal)
    }
    let result: ReturnType<typeof decode>
    try {
      result = decode(call.request, options.bounds ?? UNBOUNDED)
    } catch (e) {
      internal(e)
      return
    }
    if (result instanceof Promise) result.then(decoded, internal)
    else decoded(result)
  }
  // The server keeps each request's bytes (`decode` reads them in the call).
  const definition = metricsServiceDefinition(options.bounds ?? UNBOUNDED)
  server.addService(
    { export: { ...definition.export, requestDeserialize: (bytes: Buffer): Buffer => bytes } },
    { export: exportCall },
  )
  const credentials = options.credentials
  if (credentials !== undefined && !(credentials instanceof grpc.ServerCredentials))
    return listenSwitching(server, options, credentials)
  return new Promise((resolve, reject) => {
    server.bindAsync(
      hostPort(options.host, options.port),
      credentials ?? grpc.ServerCredentials.createInsecure(),
      (err, port) => {
        if (err !== null) {
          server.forceShutdown()
          reject(err)
          return
        }
        let stopping: Promise<void> | undefined
        const shutdown = (graceMs?: number): Promise<void> => {
          stopping ??= new Promise<void>((done) => {
            const timer = setTimeout(
              () => {
                server.forceShutdown()
                done()
              },
              graceMs ?? options.shutdownGraceMs ?? 5_000,
            )
            server.tryShutdown(() => {
              clearTimeout(timer)
              done()
            })
          })
          return stopping
        }
        resolve({ port, shutdown })
      },
    )
  })
}

/**
 * The server with `SwitchingCredentials`: a TCP listener of its own hands each connection to
 * grpc-js (`createConnectionInjector`) with the credentials in force when it arrived.
 */
const listenSwitching = <Req>(
  server: grpc.Server,
  options: GrpcServerOptions<Req>,
  credentials: SwitchingCredentials,
): Promise<GrpcServer> =>
  new Promise((resolve, reject) => {
    const graceOf = (graceMs?: number) => graceMs ?? options.shutdownGraceMs ?? 5_000
    const listener = createNetServer()
    const sockets = new Set<Socket>()
    let inForce = credentials.current()
    let injector = server.createConnectionInjector(inForce)
    listener.on("connection", (socket) => {
      sockets.add(socket)
      socket.once("close", () => sockets.delete(socket))
      injector.injectConnection(socket)
    })
    const unfollow = credentials.onReplaced(() => {
      const next = credentials.current()
      if (next === inForce) return
      const previous = injector
      inForce = next
      injector = server.createConnectionInjector(next)
      previous.drain(graceOf())
      previous.destroy()
    })
    const fail = (e: Error) => {
      unfollow()
      server.forceShutdown()
      reject(e)
    }
    listener.once("error", fail)
    listener.listen({ port: options.port, ...(options.host === "" ? {} : { host: options.host }) }, () => {
      listener.off("error", fail)
      let stopping: Promise<void> | undefined
      const shutdown = (graceMs?: number): Promise<void> => {
        stopping ??= new Promise<void>((done) => {
          unfollow()
          listener.close()
          const timer = setTimeout(() => {
            server.forceShutdown()
            // Connections that never became a gRPC session (a handshake in progress).
            for (const s of sockets) s.destroy()
            done()
          }, graceOf(graceMs))
          server.tryShutdown(() => {
            clearTimeout(timer)
            done()
          })
        })
        return stopping
      }
      resolve({ port: (listener.address() as AddressInfo).port, shutdown })
    })
  })
