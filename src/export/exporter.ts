import { STATUS_CODES } from "node:http"
import * as zlib from "node:zlib"
import { Clock, Data, Deferred, Duration, Effect, Fiber, Ref } from "effect"
import { type Dispatcher, request } from "undici"
import type { ProtocolName, WireEncoder } from "../protocols/protocol.js"
import type { ExporterTls } from "../security/exporter-tls.js"
import { logError, logInfo, logWarn } from "../telemetry/log.js"
import type { Instruments } from "../telemetry/metrics.js"
import { bodyLength, joinBytes, type WireBody } from "../wire/bytes.js"
import type { Buffered, ExportQueue } from "./buffer.js"
import type { GrpcExporterClient } from "./grpc-transport.js"
import { TokenFile } from "./token-file.js"

export interface ExporterSettings<P> {
  readonly protocol: ProtocolName
  /** Undefined: accepted data is counted and discarded. */
  readonly endpoint: string | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly bearerTokenFile: string | undefined
  /** HTTP basic authentication: the user name and a file holding the password (re-read when it changes). */
  readonly basicUsername?: string | undefined
  readonly basicPasswordFile?: string | undefined
  /** TLS of an https:// endpoint (CA, client certificate, server name); default: the system's CAs. */
  readonly tls?: ExporterTls | undefined
  /** Told when changed TLS files do not load (the previous ones stay in use). */
  readonly onTlsError?: ((file: string, reason: string) => void) | undefined
  /** How export requests travel: OTLP/HTTP (the default; remote write always) or OTLP/gRPC. */
  readonly transport?: "http" | "grpc" | undefined
  /** gzip: the HTTP body (`Content-Encoding: gzip`) or the gRPC message is compressed. Default none. */
  readonly compression?: "none" | "gzip" | undefined
  readonly timeoutMs: number
  readonly batchSize: number
  readonly flushIntervalMs: number
  readonly shutdownTimeoutMs: number
  readonly encoder: WireEncoder<P>
  /** First retry pause; doubles up to `maxBackoffMs`. */
  readonly minBackoffMs?: number
  readonly maxBackoffMs?: number
}

/** A running exporter, as its owner sees it. */
export interface ExporterHandle {
  readonly pending: () => number
  readonly retire: Effect.Effect<void>
  readonly done: Effect.Effect<void>
}

/** Why a send failed, and whether it is worth retrying. */
export class ExportFailed extends Data.TaggedError("ExportFailed")<{
  readonly retryable: boolean
  readonly status: number | undefined
  readonly reason: string
  readonly retryAfterMs: number | undefined
  /** A gRPC status: `reason` names the code, `status` is the HTTP status it plays the part of. */
  readonly grpc?: boolean
}> {
  override get message(): string {
    return this.status === undefined || this.grpc === true
      ? this.reason
      : `HTTP ${this.status}: ${this.reason}`
  }
}

const retryAfter = (header: string | null): number | undefined => {
  if (header === null) return undefined
  const s = Number(header)
  if (Number.isFinite(s)) return Math.max(0, s * 1000)
  const t = Date.parse(header)
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now())
}

/** Bytes of an error answer kept for the log and for comparing answers; the rest is not read. */
export const ERROR_BODY_BYTES = 4 * 1024
/** Bytes of a 2xx answer read (and discarded) so the connection can be reused; past that it is closed. */
export const SUCCESS_BODY_BYTES = 64 * 1024

/**
 * Reads at most `limit` bytes of a response body, keeping them only when `keep`; a longer body is
 * destroyed, which closes its connection. Never buffers more than `limit` plus one chunk. Never
 * fails: a body cut short (the timeout, a reset) leaves what was read, and the status stands (a 2xx
 * is delivered, whatever happens to its body).
 */
const readAtMost = async (body: Dispatcher.ResponseData["body"], limit: number, keep: boolean) => {
  const chunks: Array<Uint8Array> = []
  let read = 0
  let done = false
  try {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      read += chunk.byteLength
      if (keep) chunks.push(chunk)
      if (read >= limit) break
    }
    done = read < limit
  } catch {
    // cut short: keep what was read
  } finally {
    if (!done) body.destroy()
  }
  const out = new Uint8Array(Math.min(read, keep ? limit : 0))
  let at = 0
  for (const c of chunks) {
    if (at >= out.length) break
    const part = c.subarray(0, out.length - at)
    out.set(part, at)
    at += part.length
  }
  return out
}

/** What a downstream answered, the body cut to `ERROR_BODY_BYTES` (empty for 2xx). */
interface Answer {
  readonly status: number
  readonly statusText: string
  readonly retryAfter: string | null
  readonly body: Uint8Array
}

class Timeout extends Error {
  constructor(ms: number) {
    super(`no complete answer within ${ms} ms (exporter timeout)`)
    this.name = "TimeoutError"
  }
}

/**
 * One exchange, from connecting to the last byte of the answer read, under one timer that this
 * function owns: a `setTimeout` that aborts the request, cleared when the exchange ends. (A timeout
 * built from `AbortSignal.any([…, AbortSignal.timeout(ms)])` can be garbage-collected with its timer
 * and never fire, hanging the exporter on a downstream that does not answer.) `outer` is Effect's
 * interruption signal.
 */
const exchange = async (
  url: string,
  body: WireBody,
  headers: Readonly<Record<string, string>>,
  timeoutMs: number,
  outer: AbortSignal,
  dispatcher: Dispatcher | undefined,
): Promise<Answer> => {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(new Timeout(timeoutMs)), timeoutMs)
  const onAbort = () => controller.abort(outer.reason)
  if (outer.aborted) onAbort()
  else outer.addEventListener("abort", onAbort, { once: true })
  try {
    const res = await request(url, {
      method: "POST",
      // Parts are written one after the other under the length of all of them (not chunked):
      // undici's request takes any iterable of chunks as a body (its types list only streams).
      body: body as Uint8Array,
      headers:
        body instanceof Uint8Array ? headers : { ...headers, "content-length": String(bodyLength(body)) },
      signal: controller.signal,
      ...(dispatcher === undefined ? {} : { dispatcher }),
    })
    const ok = res.statusCode >= 200 && res.statusCode < 300
    const kept = await readAtMost(res.body, ok ? SUCCESS_BODY_BYTES : ERROR_BODY_BYTES, !ok)
    const retry = res.headers["retry-after"]
    return {
      status: res.statusCode,
      statusText: STATUS_CODES[res.statusCode] ?? "",
      retryAfter: (Array.isArray(retry) ? retry[0] : retry) ?? null,
      body: kept,
    }
  } finally {
    clearTimeout(timer)
    outer.removeEventListener("abort", onAbort)
    // Nothing of the exchange is left open: a body not read to its end was destroyed.
  }
}

const reasonOf = (e: unknown): string => {
  if (!(e instanceof Error)) return String(e)
  if (e.name === "TimeoutError") return e.message
  return e.cause instanceof Error ? e.cause.message : e.message
}

/**
 * One POST. 2xx is success; 5xx, 429, network errors and the timeout (which covers connecting, the
 * headers and the body) are retryable; other statuses are not. At most `ERROR_BODY_BYTES` of an
 * error answer are read, at most `SUCCESS_BODY_BYTES` of a 2xx answer (and then dropped).
 */
export const post = (
  url: string,
  body: WireBody,
  headers: Readonly<Record<string, string>>,
  timeoutMs: number,
  dispatcher?: Dispatcher,
): Effect.Effect<void, ExportFailed> =>
  Effect.tryPromise({
    try: (signal) => exchange(url, body, headers, timeoutMs, signal, dispatcher),
    catch: (e) =>
      new ExportFailed({
        retryable: true,
        status: undefined,
        reason: reasonOf(e),
        retryAfterMs: undefined,
      }),
  }).pipe(
    Effect.flatMap((res) => {
      if (res.status >= 200 && res.status < 300) return Effect.void
      const text = new TextDecoder().decode(res.body).trim()
      return Effect.fail(
        new ExportFailed({
          retryable: res.status >= 500 || res.status === 429,
          status: res.status,
          reason: text === "" ? res.statusText : text,
          retryAfterMs: retryAfter(res.retryAfter),
        }),
      )
    }),
  )

/**
 * zlib's fastest level. On the bench's OTLP bodies (143 KB of 1,000 data points) it compresses 2.7×
 * faster than the default level 6 (0.19 against 0.53 ms a body) for a body 10% larger (14.5:1
 * against 15.9:1): the export path of a proxy spends its CPU where the default level does not pay.
 */
const GZIP_LEVEL = zlib.constants.Z_BEST_SPEED

/**
 * `body` gzipped (`GZIP_LEVEL`) in libuv's thread pool, not on the main thread (at saturation,
 * compressing export bodies inline took about a fifth of the main thread's time). Compressing bytes
 * in memory does not fail; should it, the batch is refused as not retryable, counted and logged
 * like any refusal.
 */
export const gzipped = (body: Uint8Array): Effect.Effect<Uint8Array, ExportFailed> =>
  Effect.async<Uint8Array, ExportFailed>((resume) => {
    zlib.gzip(body, { level: GZIP_LEVEL }, (err, out) =>
      resume(
        err === null
          ? Effect.succeed(out)
          : Effect.fail(
              new ExportFailed({
                retryable: false,
                status: undefined,
                reason: `gzip failed: ${err.message}`,
                retryAfterMs: undefined,
              }),
            ),
      ),
    )
  })

/** The OTLP/gRPC transport's module (and grpc-js), loaded when first needed. */
const grpcTransport = Effect.promise(() => import("./grpc-transport.js"))

/** Identical refusals of a batch of several requests (same status, same answer) before it is split. */
export const SPLIT_AFTER = 3
/**
 * Identical refusals of a single request, each right after the downstream accepted other data,
 * before that request is dropped as poisoned.
 */
export const POISON_STRIKES = 3

/**
 * Attempts in a row that find the downstream unavailable before the circuit opens: while it is
 * open, the one request in flight after each backoff pause is the probe, and the first success
 * closes it.
 */
export const CIRCUIT_AFTER = 5

/** Statuses about the request's target or credentials, not its content: splitting would not help. */
const NOT_ABOUT_CONTENT = new Set([401, 403, 404, 405, 407])
/** Retryable statuses that mean "unavailable": never a reason to split a batch or suspect its data. */
const UNAVAILABLE = new Set([429, 502, 503, 504])

/**
 * The key two failures share when they are "the same answer": the status and the answer's text with
 * digits blurred (request ids, timestamps). Undefined for failures that say nothing about the data:
 * network errors, the timeout, and the "unavailable" statuses.
 */
export const answerKey = (f: ExportFailed): string | undefined =>
  f.status === undefined || UNAVAILABLE.has(f.status)
    ? undefined
    : `${f.status} ${f.reason.replace(/\d+/g, "#")}`

/** Accepted requests to be sent together as one export request, and what their sends met so far. */
interface Group<P> {
  readonly items: ReadonlyArray<Buffered<P>>
  readonly datapoints: number
  /** Failed attempts, including those of the group it was split from. */
  attempts: number
  /** `answerKey` of the current run of identical failures, and how long the run is. */
  answer: string | undefined
  identical: number
  /** Successful sends (of other data) counted when this group last failed. */
  seen: number
  /** Identical failures that came right after the downstream accepted other data. */
  strikes: number
}

const groupOf = <P>(items: ReadonlyArray<Buffered<P>>, from?: Group<P>): Group<P> => ({
  items,
  datapoints: items.reduce((n, i) => n + i.datapoints, 0),
  attempts: from?.attempts ?? 0,
  answer: from?.answer,
  identical: from?.identical ?? 0,
  seen: from?.seen ?? 0,
  strikes: 0,
})

const halves = <P>(g: Group<P>): [Group<P>, Group<P>] => {
  const mid = Math.ceil(g.items.length / 2)
  return [groupOf(g.items.slice(0, mid), g), groupOf(g.items.slice(mid), g)]
}

/**
 * The exporter of one protocol: takes batches of up to `batchSize` datapoints from the buffer once a
 * batch is full or its oldest datapoint has waited `flushIntervalMs`, and POSTs them, retrying with
 * backoff on 5xx, 429 and network errors (a `Retry-After` is honoured) and never on other 4xx.
 * Nothing is dropped while the downstream is unavailable: a full buffer makes the receivers push
 * back instead. A batch the downstream refuses for its content is split in halves, recursively, so
 * that only the requests it really refuses are dropped (counted and logged): at once on a 4xx, after
 * `SPLIT_AFTER` identical retryable refusals otherwise; a single request refused identically
 * `POISON_STRIKES` times, each right after other data was accepted, is dropped as poisoned. On
 * close, what is buffered is flushed within `shutdownTimeoutMs`; what cannot be sent by then is
 * counted as lost and logged.
 */
export const runExporter = <P>(
  settings: ExporterSettings<P>,
  buffer: ExportQueue<P>,
  telemetry: Instruments,
) =>
  Effect.gen(function* () {
    const protocol = settings.protocol
    const endpoint = settings.endpoint
    const minBackoff = settings.minBackoffMs ?? 100
    const maxBackoff = settings.maxBackoffMs ?? 30_000
    // The settings may change while the exporter runs (a reload): every attempt reads them anew.
    let token: TokenFile | undefined
    let password: TokenFile | undefined
    const fileOf = (held: TokenFile | undefined, file: string | undefined) =>
      file === undefined ? undefined : held?.file === file ? held : new TokenFile(file)
    const endpointLabel = { protocol, endpoint: endpoint ?? "" }
    /** The gRPC channel, opened at the first gRPC attempt. */
    let grpcClient: GrpcExporterClient | undefined
    const onTlsError = (e: { file: string; reason: string }) => settings.onTlsError?.(e.file, e.reason)

    /**
     * The transport the settings choose now (they reload): one OTLP/HTTP POST, or one OTLP/gRPC
     * call, each under the exporter's timeout, each failing with an `ExportFailed`.
     */
    const transport = (
      url: string,
      encoded: { readonly body: WireBody; readonly headers: Readonly<Record<string, string>> },
      credentials: Readonly<Record<string, string>>,
    ): Effect.Effect<void, ExportFailed> => {
      const gzip = settings.compression === "gzip"
      if (settings.transport === "grpc") {
        // grpc-js is loaded at the first gRPC export, not by processes that never export over gRPC.
        return Effect.flatMap(grpcTransport, ({ GrpcExporterClient }) => {
          grpcClient ??= new GrpcExporterClient()
          return grpcClient.send({
            url,
            body: joinBytes(encoded.body),
            metadata: credentials,
            timeoutMs: settings.timeoutMs,
            gzip,
            tls: url.startsWith("https:") ? settings.tls?.material(onTlsError) : undefined,
          })
        })
      }
      const headers = { ...credentials, ...encoded.headers }
      if (!gzip)
        return post(url, encoded.body, headers, settings.timeoutMs, settings.tls?.dispatcher(onTlsError))
      headers["content-encoding"] = "gzip"
      return Effect.flatMap(gzipped(joinBytes(encoded.body)), (body) =>
        post(url, body, headers, settings.timeoutMs, settings.tls?.dispatcher(onTlsError)),
      )
    }
    const closing = yield* Ref.make<number | undefined>(undefined)
    /** Completed when shutdown begins: cuts short a backoff pause taken before it. */
    const closingStarted = yield* Deferred.make<void>()
    /**
     * Taken from the buffer and not delivered or dropped yet, oldest first: one batch, or the parts
     * it was split into.
     */
    const work: Array<Group<P>> = []
    const inFlight = () => work.reduce((n, g) => n + g.datapoints, 0)
    /** Datapoints given up at shutdown after their last retry. */
    let abandoned = 0
    /** Shutdown's deadline passed with a durable queue: what is left stays in it for the next start. */
    let parked = false
    /** Export requests the downstream accepted: evidence that it is up. */
    let successes = 0
    /** Attempts in a row that found the downstream unavailable; when the circuit opened. */
    let failuresInARow = 0
    let openedAt: number | undefined
    let backoff = minBackoff
    const deadlinePassed = Effect.gen(function* () {
      const deadline = yield* Ref.get(closing)
      return deadline !== undefined && (yield* Clock.currentTimeMillis) >= deadline
    })

    /** `headers` and the credentials (their files re-read when they change). */
    const headersFor = (): Record<string, string> | Error => {
      const h: Record<string, string> = { ...settings.headers }
      token = fileOf(token, settings.bearerTokenFile)
      password = fileOf(password, settings.basicPasswordFile)
      if (token !== undefined) {
        const t = token.read()
        if (t instanceof Error) return t
        h.authorization = `Bearer ${t}`
      }
      if (password !== undefined && settings.basicUsername !== undefined) {
        const p = password.read()
        if (p instanceof Error) return p
        h.authorization = `Basic ${Buffer.from(`${settings.basicUsername}:${p}`, "utf8").toString("base64")}`
      }
      return h
    }

    /** One attempt to send these requests as one export request. */
    const attempt = (url: string, items: ReadonlyArray<Buffered<P>>) =>
      Effect.gen(function* () {
        const encoded = settings.encoder.encode(items.map((i) => i.payload))
        const h = headersFor()
        const result =
          h instanceof Error
            ? yield* Effect.either(
                Effect.fail(
                  new ExportFailed({
                    retryable: true,
                    status: undefined,
                    reason: h.message,
                    retryAfterMs: undefined,
                  }),
                ),
              )
            : yield* Effect.either(transport(url, encoded, h))
        telemetry.endpointRequests.inc({
          ...endpointLabel,
          result: result._tag === "Right" ? "success" : result.left.retryable ? "retry" : "rejected",
        })
        if (result._tag === "Right") {
          telemetry.exportRequests.inc({ protocol, result: "success" })
          successes++
          failuresInARow = 0
          if (openedAt !== undefined) {
            const now = yield* Clock.currentTimeMillis
            yield* logInfo("downstream available again: circuit closed", {
              protocol,
              endpoint: url,
              open_ms: now - openedAt,
            })
            openedAt = undefined
            telemetry.exportCircuitOpen.set(endpointLabel, 0)
          }
        } else if (result.left.retryable) {
          // A retryable failure (5xx, 429, network error, timeout): after CIRCUIT_AFTER in a row the
          // circuit opens; from then on one request probes the downstream after each pause.
          failuresInARow++
          if (failuresInARow >= CIRCUIT_AFTER && openedAt === undefined) {
            openedAt = yield* Clock.currentTimeMillis
            telemetry.exportCircuitOpen.set(endpointLabel, 1)
            yield* logWarn("downstream unavailable: circuit open, probing it with one request per pause", {
              protocol,
              endpoint: url,
              failures: failuresInARow,
              error: result.left.message,
            })
          }
        }
        return result
      })

    const delivered = (datapoints: number) => {
      telemetry.datapointsSent.inc({ protocol }, datapoints)
      telemetry.endpointDatapointsSent.inc(endpointLabel, datapoints)
      backoff = minBackoff
    }

    /** Notes a retryable failure of `g`: the run of identical answers, and whether it is a strike. */
    const noteFailure = (g: Group<P>, failure: ExportFailed) => {
      g.attempts++
      const key = answerKey(failure)
      if (key !== undefined && key === g.answer) {
        g.identical++
        if (successes > g.seen) g.strikes++
      } else {
        g.answer = key
        g.identical = key === undefined ? 0 : 1
        g.strikes = 0
      }
      g.seen = successes
    }

    /**
     * Sends the next data (the next part of the batch, else the front of the buffer) once, ahead of
     * the head of the queue: whether the downstream takes other data is what tells a poisoned request
     * from an unavailable downstream. True if it was delivered.
     */
    const probe = (url: string) =>
      Effect.gen(function* () {
        const next = work[1]
        const items = next?.items ?? buffer.peek(settings.batchSize)
        if (items.length === 0) return false
        const result = yield* attempt(url, items)
        if (result._tag === "Right") {
          const sent = items.reduce((n, i) => n + i.datapoints, 0)
          if (next !== undefined) work.splice(1, 1)
          // Exactly what was sent: requests pushed while the probe was in flight stay in the buffer.
          buffer.ack(next !== undefined ? items : buffer.take(sent))
          delivered(sent)
          return true
        }
        telemetry.exportRequests.inc({ protocol, result: "retry" })
        if (next !== undefined && result.left.retryable) noteFailure(next, result.left)
        return false
      })

    /** Replaces the refused head of the queue by its two halves, each sent on its own. */
    const split = (url: string, g: Group<P>, failure: ExportFailed) =>
      Effect.suspend(() => {
        work.splice(0, 1, ...halves(g))
        return logWarn("export refused, splitting the batch to find what the downstream refuses", {
          protocol,
          endpoint: url,
          error: failure.message,
          requests: g.items.length,
          datapoints: g.datapoints,
        })
      })

    /** Gives up the head of the queue: its datapoints are counted as lost for `reason` and logged. */
    const drop = (g: Group<P>, reason: string, message: string, fields: Record<string, unknown>) =>
      Effect.suspend(() => {
        work.shift()
        buffer.ack(g.items)
        telemetry.datapointsLost.inc({ protocol, reason }, g.datapoints)
        return logError(message, { protocol, datapoints: g.datapoints, ...fields })
      })

    /** One attempt for the head of the queue, and what follows from its answer. */
    const step = (url: string, g: Group<P>) =>
      Effect.gen(function* () {
        const result = yield* attempt(url, g.items)
        if (result._tag === "Right") {
          work.shift()
          buffer.ack(g.items)
          delivered(g.datapoints)
          return
        }
        const failure = result.left
        if (!failure.retryable) {
          telemetry.exportRequests.inc({ protocol, result: "rejected" })
          if (g.items.length > 1 && !NOT_ABOUT_CONTENT.has(failure.status ?? 0)) {
            // Some of these requests may be fine: send each half on its own.
            return yield* split(url, g, failure)
          }
          backoff = minBackoff
          return yield* drop(g, "rejected_by_downstream", "export rejected by downstream, not retrying", {
            endpoint: url,
            error: failure.message,
          })
        }
        telemetry.exportRequests.inc({ protocol, result: "retry" })
        if (yield* deadlinePassed) {
          if (buffer.durable) {
            // Not lost: it stays in the durable queue, and the next start sends it.
            abandoned += g.datapoints
            parked = true
            return
          }
          abandoned += g.datapoints
          return yield* drop(g, "shutdown_timeout", "export abandoned at shutdown", {
            error: failure.message,
          })
        }
        noteFailure(g, failure)
        if (g.attempts === 1 || g.attempts % 10 === 0) {
          yield* logWarn("export failed, retrying", {
            protocol,
            endpoint: url,
            error: failure.message,
            attempt: g.attempts,
          })
        }
        if (g.identical >= SPLIT_AFTER) {
          if (g.items.length > 1) {
            // The same refusal again and again: find out whether all of the batch causes it.
            return yield* split(url, g, failure)
          }
          if (g.strikes >= POISON_STRIKES) {
            backoff = minBackoff
            return yield* drop(
              g,
              "poisoned",
              "export dropped as poisoned: refused while other data was accepted",
              {
                endpoint: url,
                error: failure.message,
                attempts: g.attempts,
              },
            )
          }
          // Does the downstream take other data? Then it is up, and retries this one at once.
          if (yield* probe(url)) return
        }
        // Jitter spreads our own backoff; a downstream's Retry-After is a floor, never undercut.
        const jittered = Math.min(
          maxBackoff,
          Math.max(backoff * (0.8 + Math.random() * 0.4), failure.retryAfterMs ?? 0),
        )
        backoff = Math.min(maxBackoff, backoff * 2)
        // While shutting down, no pause outlasts the deadline; a pause begun before is cut short.
        const deadline = yield* Ref.get(closing)
        const now = yield* Clock.currentTimeMillis
        yield* deadline === undefined
          ? Effect.raceFirst(Effect.sleep(Duration.millis(jittered)), Deferred.await(closingStarted))
          : Effect.sleep(Duration.millis(Math.max(0, Math.min(jittered, deadline - now))))
      })

    /**
     * Completed when the exporter is retired (a reload or a DNS answer took its endpoint away): no
     * more is pushed to its buffer, and the loop ends once it has delivered what it holds.
     */
    const retired = yield* Deferred.make<void>()
    let retiring = false

    /** Wakes the loop on the buffer's next push, when shutdown begins, or at retirement; nothing polls. */
    const pushOrClosing = Effect.raceAll([
      Effect.promise(() => buffer.nextPush()),
      Deferred.await(closingStarted),
      Deferred.await(retired),
    ])

    const loop = Effect.gen(function* () {
      for (;;) {
        if (parked) return
        const head = work[0]
        if (head !== undefined) {
          if (endpoint === undefined) buffer.ack(work.shift()?.items ?? [])
          else yield* step(endpoint, head)
          continue
        }
        if (buffer.length === 0) {
          if (retiring || (yield* Ref.get(closing)) !== undefined) return
          yield* pushOrClosing
          continue
        }
        const now = yield* Clock.currentTimeMillis
        const age = now - (buffer.oldest() ?? now)
        const flushing = retiring || (yield* Ref.get(closing)) !== undefined
        if (!flushing && buffer.datapoints < settings.batchSize && age < settings.flushIntervalMs) {
          // Until the oldest datapoint is due, a push fills the batch, or shutdown begins.
          yield* Effect.raceFirst(
            Effect.sleep(Duration.millis(settings.flushIntervalMs - age)),
            pushOrClosing,
          )
          continue
        }
        work.push(groupOf(buffer.take(settings.batchSize)))
      }
    })

    if (endpoint === undefined) {
      yield* logInfo("no exporter endpoint: accepted datapoints are counted and discarded", { protocol })
    }
    const fiber = yield* Effect.forkDaemon(loop)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        yield* Ref.set(closing, now + settings.shutdownTimeoutMs)
        yield* Deferred.succeed(closingStarted, undefined)
        // Finalizers run uninterruptibly: without `interruptible` the timeout could not stop the join.
        const done = yield* Fiber.join(fiber).pipe(
          Effect.timeout(Duration.millis(settings.shutdownTimeoutMs + 1_000)),
          Effect.option,
          Effect.interruptible,
        )
        if (done._tag === "None") yield* Fiber.interrupt(fiber)
        grpcClient?.close()
        // What is still buffered, and what was taken and not delivered when it was cut off, is lost,
        // unless the queue is durable: then the next start sends it.
        const left = buffer.datapoints + inFlight()
        if (left > 0 && buffer.durable) {
          yield* logInfo("datapoints left in the durable queue for the next start", {
            protocol,
            datapoints: left,
          })
        } else if (left > 0) {
          telemetry.datapointsLost.inc({ protocol, reason: "shutdown_timeout" }, left)
          yield* logError("datapoints left unsent at shutdown", { protocol, datapoints: left })
        } else if (abandoned === 0) {
          yield* logInfo("exporter flushed", { protocol })
        }
      }),
    )
    return {
      /** Datapoints accepted and not delivered yet: buffered, or taken and being sent. */
      pending: () => buffer.datapoints + inFlight(),
      /** Takes no more pushes: the loop ends once what is held is delivered (or given up). */
      retire: Effect.suspend(() => {
        retiring = true
        return Deferred.succeed(retired, undefined)
      }),
      /** Completes when the loop has ended. */
      done: Effect.asVoid(Fiber.await(fiber)),
    } satisfies ExporterHandle
  })
