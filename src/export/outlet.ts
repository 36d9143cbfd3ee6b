/**
 * The outlet of one protocol: where what passes the limits goes. One endpoint, or several on a
 * consistent-hash ring (`exporters.<protocol>.sharding`); each endpoint is a lane with its own
 * buffer or durable-queue directory, its own exporter (batching, retry, backpressure, circuit) and
 * its own counters. A lane's data stays with its endpoint: a failing endpoint is never spilled onto
 * the others.
 *
 * The outlet reloads. `configure(plan)` (a reload of `config.yaml`, or a DNS answer that changed)
 * keeps the lanes whose endpoint and queue stay, changes their settings in place (headers,
 * credentials, timeouts, TLS, batch size, buffer and queue bounds), opens lanes for new endpoints and
 * retires the lanes of endpoints that went: a retired lane takes nothing new and drains what it
 * holds (a memory buffer within `shutdown_timeout`, what is left counted as lost; a durable queue
 * until it is empty, or at shutdown it waits in its directory for the next start, which sends it to
 * the same endpoint). The swap is synchronous, between two requests: a request is routed whole by
 * one set of lanes.
 *
 * @module
 */
import * as dnsPromises from "node:dns/promises"
import * as fs from "node:fs"
import * as path from "node:path"
import { Cause, Duration, Effect, Exit, Fiber, Scope } from "effect"
import {
  type Compression,
  isHostPort,
  MAIN_DEFAULTS,
  type MainConfigSpec,
  type OtlpExporterSpec,
  type OtlpTransport,
  type ShardingDnsSpec,
} from "../config/main-schema.js"
import type { BatchVerdict, SeriesBatch } from "../limits/batch.js"
import { fingerprint } from "../limits/fingerprint.js"
import { type ShardKeySpec, shardOwners } from "../pipeline/route.js"
import type { ProtocolAdapter, ProtocolName, WireEncoder } from "../protocols/protocol.js"
import { ExporterTls } from "../security/exporter-tls.js"
import { SecretFileError } from "../security/material.js"
import type { ShutdownClock } from "../server/shutdown.js"
import { logError, logInfo, logWarn } from "../telemetry/log.js"
import type { Instruments } from "../telemetry/metrics.js"
import { ExportBuffer, type ExportQueue } from "./buffer.js"
import { type ExporterHandle, type ExporterSettings, runExporter } from "./exporter.js"
import { DurableQueue, type FullBehavior, QueueError } from "./queue.js"
import { HashRing } from "./ring.js"

/** Where the endpoints come from. */
export type EndpointSource =
  | { readonly _tag: "Static"; readonly endpoints: ReadonlyArray<string> }
  | { readonly _tag: "Dns"; readonly dns: ShardingDnsSpec }
  /** No endpoint: accepted data is counted and discarded. */
  | { readonly _tag: "Discard" }

export interface QueuePlan {
  readonly path: string
  readonly maxBytes: number
  readonly syncIntervalMs: number
  readonly fullBehavior: FullBehavior
}

export interface ExporterTlsPlan {
  readonly caFile?: string | undefined
  readonly certFile?: string | undefined
  readonly keyFile?: string | undefined
  readonly serverName?: string | undefined
  readonly insecureSkipVerify?: boolean | undefined
}

/** Everything of `config.yaml` (and the flags) an outlet is built from. */
export interface OutletPlan {
  readonly source: EndpointSource
  readonly sharded: boolean
  readonly key: ShardKeySpec
  readonly virtualNodes: number
  readonly headers: Readonly<Record<string, string>>
  readonly bearerTokenFile: string | undefined
  readonly basicUsername: string | undefined
  readonly basicPasswordFile: string | undefined
  readonly tls: ExporterTlsPlan | undefined
  /** How OTLP travels: OTLP/HTTP or OTLP/gRPC (remote write: always http). */
  readonly transport: OtlpTransport
  /** Compression of export requests (remote write: always snappy, this is "none"). */
  readonly compression: Compression
  readonly timeoutMs: number
  readonly batchSize: number
  readonly flushIntervalMs: number
  readonly bufferSize: number
  readonly bufferMaxBytes: number
  /** Undefined: memory buffers. */
  readonly queue: QueuePlan | undefined
}

const DNS_PATHS: Readonly<Record<ProtocolName, string>> = { otlp: "/v1/metrics", prw: "/api/v1/write" }

/**
 * The plan of `protocol` from `config.yaml`; `flagEndpoint` (`-exporter-endpoint`,
 * `-prw-exporter-endpoint`) is used when the file names no endpoint. `bufferMaxBytes` is already
 * bounded by the memory limit.
 */
export const planOf = (
  protocol: ProtocolName,
  main: MainConfigSpec,
  flagEndpoint: string | undefined,
  bufferMaxBytes: number,
): OutletPlan => {
  const spec = main.exporters?.[protocol] ?? {}
  const otlp: OtlpExporterSpec = protocol === "otlp" ? (main.exporters?.otlp ?? {}) : {}
  const transport = otlp.protocol ?? MAIN_DEFAULTS.otlpTransport
  const sharding = spec.sharding
  const buffer = main.buffer ?? {}
  const queue = main.exporters?.queue
  const given = spec.endpoint ?? flagEndpoint
  const endpoint =
    given === undefined || transport !== "grpc" ? given : grpcUrl(given, spec.tls !== undefined)
  const source: EndpointSource =
    sharding?.dns !== undefined
      ? { _tag: "Dns", dns: sharding.dns }
      : sharding?.endpoints !== undefined
        ? { _tag: "Static", endpoints: sharding.endpoints }
        : endpoint !== undefined
          ? { _tag: "Static", endpoints: [endpoint] }
          : { _tag: "Discard" }
  return {
    source,
    sharded: sharding !== undefined,
    key: { key: sharding?.key ?? MAIN_DEFAULTS.shardingKey, labels: sharding?.labels ?? [] },
    virtualNodes: sharding?.virtual_nodes ?? MAIN_DEFAULTS.shardingVirtualNodes,
    headers: spec.headers ?? {},
    bearerTokenFile: spec.bearer_token_file,
    basicUsername: spec.basic_username,
    basicPasswordFile: spec.basic_password_file,
    tls:
      spec.tls === undefined
        ? undefined
        : {
            caFile: spec.tls.ca_file,
            certFile: spec.tls.cert_file,
            keyFile: spec.tls.key_file,
            serverName: spec.tls.server_name,
            insecureSkipVerify: spec.tls.insecure_skip_verify,
          },
    transport,
    // Remote write is snappy by its protocol; only OTLP export compresses on top.
    compression: protocol === "otlp" ? (otlp.compression ?? MAIN_DEFAULTS.compression) : "none",
    timeoutMs: spec.timeout ?? MAIN_DEFAULTS.exporterTimeoutMs,
    batchSize: buffer.batch_size ?? MAIN_DEFAULTS.batchSize,
    flushIntervalMs: buffer.flush_interval ?? MAIN_DEFAULTS.flushIntervalMs,
    bufferSize: buffer.size ?? MAIN_DEFAULTS.bufferSize,
    bufferMaxBytes,
    queue:
      queue?.path === undefined
        ? undefined
        : {
            path: queue.path,
            maxBytes: queue.max_bytes ?? MAIN_DEFAULTS.queueMaxBytes,
            syncIntervalMs: queue.sync_interval ?? MAIN_DEFAULTS.queueSyncIntervalMs,
            fullBehavior: queue.full_behavior ?? MAIN_DEFAULTS.queueFullBehavior,
          },
  }
}

/**
 * A gRPC endpoint as a URL: `host:port` becomes `https://host:port` when `exporters.otlp.tls` is
 * set, else `http://host:port` (plaintext); a URL stays as it is.
 */
export const grpcUrl = (endpoint: string, tls: boolean): string =>
  isHostPort(endpoint) ? `${tls ? "https" : "http"}://${endpoint}` : endpoint

/** The URL of one address a DNS name resolved to. */
export const dnsEndpoint = (protocol: ProtocolName, dns: ShardingDnsSpec, address: string): string => {
  const host = address.includes(":") ? `[${address}]` : address
  return `${dns.scheme ?? "http"}://${host}:${dns.port}${dns.path ?? DNS_PATHS[protocol]}`
}

/** Resolves a sharding DNS name: every IPv4 and IPv6 address, sorted. */
export const resolveDns = async (dns: ShardingDnsSpec): Promise<ReadonlyArray<string>> => {
  const resolver = new dnsPromises.Resolver({ timeout: 2_000, tries: 2 })
  if (dns.server !== undefined) resolver.setServers([dns.server])
  const answers = await Promise.allSettled([resolver.resolve4(dns.name), resolver.resolve6(dns.name)])
  const out = new Set<string>()
  let failure: unknown
  for (const a of answers) {
    if (a.status === "fulfilled") for (const ip of a.value) out.add(ip)
    else if (!["ENODATA", "ENOTFOUND"].includes((a.reason as { code?: string }).code ?? ""))
      failure = a.reason
  }
  if (out.size === 0 && failure !== undefined) throw failure
  return [...out].sort()
}

/** The directory name of an endpoint's lane in the durable queue: readable, and unique by URL. */
export const laneDirName = (url: string): string => {
  const out = new Uint32Array(2)
  fingerprint(url, out)
  let host = "endpoint"
  try {
    host = new URL(url).host
  } catch {
    // keep the placeholder
  }
  const hex = ((out[0] as number) >>> 0).toString(16).padStart(8, "0")
  return `${host.replace(/[^A-Za-z0-9.-]+/g, "_")}-${hex}`
}

/** The file in a lane's directory that names its endpoint. */
const ENDPOINT_FILE = "endpoint"

interface Lane {
  /** Undefined: the discarding lane. */
  readonly url: string | undefined
  /** The durable queue's directory, when the lane has one. */
  readonly dir: string | undefined
  readonly queue: ExportQueue<Uint8Array>
  readonly handle: ExporterHandle
  readonly scope: Scope.CloseableScope
  closed: boolean
}

/** What requests are routed by: read synchronously, swapped whole. */
interface Targets {
  readonly lanes: ReadonlyArray<Lane>
  /** Defined when there is more than one lane. */
  readonly ring: HashRing | undefined
  readonly key: ShardKeySpec
}

export interface OutletDeps {
  readonly protocol: ProtocolName
  readonly encoder: WireEncoder<Uint8Array>
  readonly telemetry: Instruments
  readonly shutdown: ShutdownClock
  /** Runs a log effect from a Node callback. */
  readonly log: (effect: Effect.Effect<void>) => void
  readonly minBackoffMs?: number
  readonly maxBackoffMs?: number
}

/** The outlet of one protocol, as the ingest path sees it. */
export interface Outlet {
  /** Whether every lane can take a request of this size now (else the receiver pushes back). */
  readonly canTake: (datapoints: number, bytes: number) => boolean
  /**
   * Buffers what `verdict` lets pass of `req`, each entry on its endpoint's lane; returns the
   * datapoints forwarded. `bytes` and `total` (the request's size and datapoints) size each part.
   */
  readonly deliver: <Req>(
    adapter: ProtocolAdapter<Req, Uint8Array>,
    req: Req,
    batch: SeriesBatch,
    verdict: BatchVerdict,
    at: number,
    bytes: number,
    total: number,
  ) => number
  /** Applies a new plan (a reload); failures keep the previous lanes and are logged. */
  readonly configure: (plan: OutletPlan) => Effect.Effect<void>
  /** The endpoints on the ring now. */
  readonly endpoints: () => ReadonlyArray<string>
}

const NO_KEY: ShardKeySpec = { key: "series", labels: [] }

const samePlanPart = <A>(a: A, b: A): boolean => JSON.stringify(a) === JSON.stringify(b)

/** The exporter settings a lane reads from the outlet's current plan on every attempt. */
const PLAN_SETTINGS = [
  "headers",
  "bearerTokenFile",
  "basicUsername",
  "basicPasswordFile",
  "transport",
  "compression",
  "timeoutMs",
  "batchSize",
  "flushIntervalMs",
] as const satisfies ReadonlyArray<keyof OutletPlan>

/**
 * `target` with, for each of `keys`, a getter that reads that key of `source()` on each access
 * (enumerable and configurable, as an object literal's getter is).
 */
const readThrough = <T extends object, S, K extends keyof S>(
  target: T,
  source: () => S,
  keys: ReadonlyArray<K>,
): T & Pick<S, K> => {
  for (const key of keys)
    Object.defineProperty(target, key, { get: () => source()[key], enumerable: true, configurable: true })
  return target as T & Pick<S, K>
}

/**
 * Opens the outlet of one protocol for the life of the scope: its lanes, and (with a DNS source) the
 * fiber that resolves the name every `refresh_interval`. Closing the scope flushes every lane in
 * parallel within what is left of `shutdown_timeout`.
 */
export const openOutlet = (deps: OutletDeps, initial: OutletPlan) =>
  Effect.gen(function* () {
    const { protocol, telemetry, log } = deps
    const outletScope = yield* Effect.scope
    let plan = initial
    let targets: Targets = { lanes: [], ring: undefined, key: NO_KEY }
    /** Retired lanes still draining. */
    const retiring = new Set<Lane>()
    let tls: ExporterTls | undefined
    let dnsFiber: Fiber.RuntimeFiber<void> | undefined
    let closing = false

    const loadTls = (next: ExporterTlsPlan | undefined) =>
      Effect.gen(function* () {
        if (next === undefined) return undefined
        if (next.insecureSkipVerify === true) {
          yield* logWarn(
            "exporter TLS: insecure_skip_verify is set, the downstream's certificate is not checked",
            { protocol },
          )
        }
        const loaded = ExporterTls.load(next)
        return loaded instanceof SecretFileError ? yield* Effect.fail(loaded) : loaded
      })
    tls = yield* loadTls(plan.tls)

    /** A lane's view of the settings: read on every attempt, so a reload applies to the next one. */
    const settingsOf = (url: string | undefined): ExporterSettings<Uint8Array> =>
      readThrough(
        {
          protocol,
          endpoint: url,
          get tls() {
            return tls
          },
          onTlsError: (file: string, reason: string) => {
            telemetry.tlsReloadFailures.inc({ file })
            log(
              logError("exporter TLS file changed but does not load; the previous material stays in use", {
                protocol,
                file,
                error: reason,
              }),
            )
          },
          // What is left of shutdown_timeout once shutdown began; all of it for a lane retired before.
          get shutdownTimeoutMs() {
            return deps.shutdown.remainingMs()
          },
          encoder: deps.encoder,
          ...(deps.minBackoffMs === undefined ? {} : { minBackoffMs: deps.minBackoffMs }),
          ...(deps.maxBackoffMs === undefined ? {} : { maxBackoffMs: deps.maxBackoffMs }),
        },
        () => plan,
        PLAN_SETTINGS,
      )

    const openDurable = (dir: string, url: string, q: QueuePlan) =>
      Effect.try({
        try: () => {
          fs.mkdirSync(dir, { recursive: true })
          const named = path.join(dir, ENDPOINT_FILE)
          if (!fs.existsSync(named)) fs.writeFileSync(named, `${url}\n`)
          return DurableQueue.open(
            {
              dir,
              maxBytes: q.maxBytes,
              syncIntervalMs: q.syncIntervalMs,
              fullBehavior: q.fullBehavior,
              memoryBytes: plan.bufferMaxBytes,
              ...(deps.encoder.compressed === undefined
                ? {}
                : { storeAsIs: { upgrade: deps.encoder.compressed.fromUncompressed } }),
            },
            {
              dropped: (datapoints) =>
                telemetry.datapointsLost.inc({ protocol, reason: "queue_full" }, datapoints),
              corrupt: (bytes, datapoints, where) => {
                telemetry.queueCorruptBytes.inc({ protocol }, bytes)
                if (datapoints > 0) {
                  telemetry.datapointsLost.inc({ protocol, reason: "queue_corrupt" }, datapoints)
                }
                log(logError("durable queue: corrupt data skipped", { protocol, bytes, datapoints, where }))
              },
            },
          )
        },
        catch: (e) =>
          new QueueError({ protocol, path: dir, reason: e instanceof Error ? e.message : String(e) }),
      }).pipe(
        Effect.tap((q) =>
          logInfo("durable queue opened", {
            protocol,
            endpoint: url,
            dir: q.settings.dir,
            max_bytes: q.settings.maxBytes,
            sync_interval_ms: q.settings.syncIntervalMs,
            full_behavior: q.settings.fullBehavior,
            recovered_records: q.recovered.records,
            recovered_datapoints: q.recovered.datapoints,
          }),
        ),
      )

    /**
     * `base`, or `base.2`, `base.3`… when a lane of this process still holds it: an endpoint that
     * comes back while its retired lane is still draining gets a directory of its own (the next
     * start adopts every one of them and sends it to the endpoint it names).
     */
    const unheldDir = (base: string): string => {
      const held = (d: string) =>
        targets.lanes.some((l) => l.dir === d) || [...retiring].some((l) => l.dir === d)
      let d = base
      for (let n = 2; held(d); n++) d = `${base}.${n}`
      return d
    }

    /** Opens the lane of `url` (its queue and exporter); `dir` overrides the durable directory. */
    const openLane = (url: string | undefined, q: QueuePlan | undefined, dir?: string) =>
      Effect.gen(function* () {
        const laneDir =
          url === undefined || q === undefined
            ? undefined
            : (dir ?? unheldDir(path.join(q.path, protocol, laneDirName(url))))
        const queue: ExportQueue<Uint8Array> =
          laneDir === undefined || url === undefined || q === undefined
            ? new ExportBuffer<Uint8Array>(plan.bufferSize, plan.bufferMaxBytes)
            : yield* openDurable(laneDir, url, q)
        if (url !== undefined) {
          telemetry.exportCircuitOpen.set({ protocol, endpoint: url }, 0)
          telemetry.endpointDatapointsSent.inc({ protocol, endpoint: url }, 0)
        }
        const scope = yield* Scope.make()
        const handle = yield* runExporter(settingsOf(url), queue, telemetry).pipe(
          Scope.extend(scope),
          Effect.onError(() => Scope.close(scope, Exit.void)),
        )
        return { url, dir: laneDir, queue, handle, scope, closed: false } satisfies Lane
      })

    /** Flushes and closes a lane (its exporter's finalizer bounds the flush), then its queue. */
    const closeLane = (lane: Lane) =>
      Effect.gen(function* () {
        if (lane.closed) return
        lane.closed = true
        yield* Scope.close(lane.scope, Exit.void)
        if (lane.queue instanceof DurableQueue) {
          const empty = lane.queue.length === 0 && lane.handle.pending() === 0
          lane.queue.close()
          if (empty && retiring.has(lane) && lane.dir !== undefined) {
            // A retired lane's directory that is drained goes; one with data waits for the next start.
            fs.rmSync(lane.dir, { recursive: true, force: true })
          }
        }
        retiring.delete(lane)
        if (lane.url !== undefined && !targets.lanes.some((l) => l.url === lane.url)) {
          telemetry.exportCircuitOpen.remove({ protocol, endpoint: lane.url })
        }
      })

    /**
     * Retires a lane: it takes nothing new (it is no longer a target) and drains. A memory buffer
     * is flushed within shutdown_timeout; a durable queue drains until it is empty.
     */
    const retire = (lane: Lane, why: string) =>
      Effect.gen(function* () {
        retiring.add(lane)
        yield* logInfo("exporter endpoint retired: it drains what it holds and takes nothing new", {
          protocol,
          endpoint: lane.url ?? null,
          reason: why,
          datapoints: lane.handle.pending(),
        })
        yield* lane.handle.retire
        const drain = lane.queue.durable
          ? Effect.zipRight(lane.handle.done, closeLane(lane))
          : closeLane(lane)
        yield* Effect.forkIn(drain, outletScope)
      })

    /**
     * `buffer.size` and `buffer.max_bytes` bound the protocol: the lanes share them evenly (an empty
     * buffer still takes any one request), and a durable queue keeps its share of the bytes in memory.
     */
    const retuneLanes = () => {
      const n = Math.max(1, targets.lanes.length)
      const size = Math.max(1, Math.floor(plan.bufferSize / n))
      const bytes = Math.max(1, Math.floor(plan.bufferMaxBytes / n))
      for (const lane of targets.lanes) {
        if (lane.queue instanceof ExportBuffer) {
          lane.queue.maxDatapoints = size
          lane.queue.maxBytes = bytes
        } else if (lane.queue instanceof DurableQueue && plan.queue !== undefined) {
          lane.queue.retune({
            maxBytes: plan.queue.maxBytes,
            syncIntervalMs: plan.queue.syncIntervalMs,
            fullBehavior: plan.queue.fullBehavior,
            memoryBytes: bytes,
          })
        }
      }
    }

    const setTargets = (lanes: ReadonlyArray<Lane>, key: ShardKeySpec) => {
      const urls = lanes.map((l) => l.url ?? "")
      targets = {
        lanes,
        // One lane takes everything: the request goes to it whole, as without sharding.
        ring: lanes.length > 1 ? new HashRing(urls, plan.virtualNodes) : undefined,
        key,
      }
      retuneLanes()
      telemetry.exportEndpoints.set({ protocol }, lanes.filter((l) => l.url !== undefined).length)
    }

    /**
     * Makes `urls` the endpoints: lanes of endpoints that stay are kept (their queue too, unless the
     * queue's kind or directory changed), new endpoints get new lanes, the rest are retired.
     */
    const setEndpoints = (urls: ReadonlyArray<string | undefined>, queueMoved: boolean, why: string) =>
      Effect.gen(function* () {
        const old = targets.lanes
        const byUrl = new Map(old.map((l) => [l.url, l]))
        const next: Array<Lane> = []
        const opened: Array<Lane> = []
        const failed = yield* Effect.either(
          Effect.forEach(urls, (url) =>
            Effect.gen(function* () {
              const kept = queueMoved ? undefined : byUrl.get(url)
              if (kept !== undefined) {
                next.push(kept)
                return
              }
              const lane = yield* openLane(url, plan.queue)
              opened.push(lane)
              next.push(lane)
            }),
          ),
        )
        if (failed._tag === "Left") {
          // Nothing changes: what was opened closes again, the previous lanes stay.
          yield* Effect.forEach(opened, closeLane, { discard: true })
          return yield* Effect.fail(failed.left)
        }
        setTargets(next, plan.key)
        for (const lane of old) if (!next.includes(lane)) yield* retire(lane, why)
        if (opened.length > 0 || next.length !== old.length) {
          yield* logInfo("exporter endpoints", {
            protocol,
            endpoints: next.map((l) => l.url ?? null),
            sharding_key: plan.sharded ? plan.key.key : null,
          })
        }
      })

    /** Lane directories under the queue path whose endpoint is not a target: drained to it. */
    const adoptOrphans = (q: QueuePlan) =>
      Effect.gen(function* () {
        const base = path.join(q.path, protocol)
        let names: Array<string> = []
        try {
          names = fs.readdirSync(base)
        } catch {
          return
        }
        const active = new Set(targets.lanes.map((l) => l.dir))
        for (const name of names) {
          const dir = path.join(base, name)
          if (active.has(dir)) continue
          let url: string
          try {
            url = fs.readFileSync(path.join(dir, ENDPOINT_FILE), "utf8").trim()
          } catch {
            continue
          }
          const lane = yield* Effect.either(openLane(url, q, dir))
          if (lane._tag === "Left") {
            yield* logError("durable queue of a former endpoint does not open", {
              protocol,
              dir,
              error: lane.left.message,
            })
            continue
          }
          yield* retire(lane.right, "former endpoint with queued data")
        }
      })

    const applyDns = (dns: ShardingDnsSpec, first: boolean) =>
      Effect.gen(function* () {
        const answer = yield* Effect.either(Effect.tryPromise(() => resolveDns(dns)))
        if (answer._tag === "Left" || answer.right.length === 0) {
          telemetry.shardDnsFailures.inc({ protocol })
          const error =
            answer._tag === "Left"
              ? answer.left.error instanceof Error
                ? answer.left.error.message
                : String(answer.left.error)
              : "no addresses"
          yield* (first ? logError : logWarn)(
            "sharding: DNS name does not resolve; the endpoints stay as they are",
            {
              protocol,
              name: dns.name,
              error,
              endpoints: targets.lanes.length,
            },
          )
          return false
        }
        const urls = answer.right.map((ip) => dnsEndpoint(protocol, dns, ip))
        const now = targets.lanes.map((l) => l.url)
        if (!first && samePlanPart(now, urls)) return true
        yield* setEndpoints(urls, false, "gone from the DNS answer").pipe(
          Effect.catchAll((e) =>
            logError("sharding: endpoints from DNS do not open; the previous ones stay", {
              protocol,
              error: e.message,
            }),
          ),
        )
        return true
      })

    const startDns = (dns: ShardingDnsSpec) =>
      Effect.gen(function* () {
        if (dnsFiber !== undefined) yield* Fiber.interrupt(dnsFiber)
        const every = dns.refresh_interval ?? MAIN_DEFAULTS.shardingDnsRefreshMs
        const ok = yield* applyDns(dns, true)
        const loop = Effect.gen(function* () {
          let resolved = ok
          for (;;) {
            // Until a first answer, asked again every second at most.
            yield* Effect.sleep(Duration.millis(resolved ? every : Math.min(every, 1_000)))
            resolved = (yield* applyDns(dns, false)) || resolved
          }
        })
        dnsFiber = yield* Effect.forkIn(loop, outletScope)
      })

    const sourceUrls = (source: EndpointSource): ReadonlyArray<string | undefined> =>
      source._tag === "Static" ? source.endpoints : source._tag === "Discard" ? [undefined] : []

    /** Applies `next` to the lanes; the plan stays as before when it cannot be applied. */
    const apply = (next: OutletPlan, first: boolean) =>
      Effect.gen(function* () {
        const before = plan
        const queueMoved =
          !first &&
          (before.queue?.path !== next.queue?.path ||
            (before.queue === undefined) !== (next.queue === undefined))
        let nextTls = tls
        if (!first && !samePlanPart(before.tls, next.tls)) nextTls = yield* loadTls(next.tls)
        const oldTls = tls
        plan = next
        tls = nextTls
        const keyChanged =
          !samePlanPart(before.key, next.key) ||
          before.virtualNodes !== next.virtualNodes ||
          before.sharded !== next.sharded
        yield* Effect.gen(function* () {
          if (next.source._tag === "Dns") {
            if (first || !samePlanPart(before.source, next.source) || queueMoved) {
              if (queueMoved)
                yield* setEndpoints(
                  targets.lanes.map((l) => l.url),
                  true,
                  "queue moved",
                )
              yield* startDns(next.source.dns)
            } else if (keyChanged) setTargets(targets.lanes, next.key)
            return
          }
          if (dnsFiber !== undefined) {
            yield* Fiber.interrupt(dnsFiber)
            dnsFiber = undefined
          }
          const urls = sourceUrls(next.source)
          if (
            first ||
            queueMoved ||
            !samePlanPart(
              targets.lanes.map((l) => l.url),
              urls,
            )
          ) {
            yield* setEndpoints(urls, queueMoved, "removed from config.yaml")
          } else if (keyChanged) setTargets(targets.lanes, next.key)
        }).pipe(
          Effect.onError(() =>
            Effect.sync(() => {
              plan = before
              tls = oldTls
            }),
          ),
        )
        // Requests on the old connections finish; new ones use the new material.
        if (oldTls !== undefined && oldTls !== tls) void oldTls.close().catch(() => undefined)
        // The bounds of the lanes that stay apply at once.
        retuneLanes()
        if (next.queue !== undefined && (first || queueMoved)) yield* adoptOrphans(next.queue)
      })

    telemetry.shardDnsFailures.inc({ protocol }, 0)
    const allLanes = () => [...targets.lanes, ...retiring]
    telemetry.setBufferSource(protocol, () => allLanes().reduce((n, l) => n + l.handle.pending(), 0))
    telemetry.setQueueSource(protocol, () => {
      let bytes = 0
      let datapoints = 0
      let oldestAt: number | undefined
      for (const l of allLanes()) {
        if (!(l.queue instanceof DurableQueue)) continue
        bytes += l.queue.bytes
        datapoints += l.queue.datapointsQueued
        const at = l.queue.oldestAt
        if (at !== undefined && (oldestAt === undefined || at < oldestAt)) oldestAt = at
      }
      return { bytes, datapoints, oldestAt }
    })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        closing = true
        if (dnsFiber !== undefined) yield* Fiber.interrupt(dnsFiber)
        // Every lane flushes at once: shutdown takes one shutdown_timeout, not one per endpoint.
        yield* Effect.forEach(allLanes(), closeLane, { concurrency: "unbounded", discard: true })
      }),
    )
    yield* apply(initial, true)

    const outlet: Outlet = {
      canTake: (datapoints, bytes) => {
        const lanes = targets.lanes
        if (lanes.length === 0) return false
        for (let e = 0; e < lanes.length; e++) {
          if (!(lanes[e] as Lane).queue.canTake(datapoints, bytes)) return false
        }
        return true
      },
      deliver: (adapter, req, batch, verdict, at, bytes, total) => {
        const { lanes, ring, key } = targets
        const share = (datapoints: number) => (total === 0 ? bytes : Math.ceil((bytes * datapoints) / total))
        if (ring === undefined) {
          const lane = lanes[0]
          if (lane === undefined) return 0
          const { request, datapoints } = adapter.applyVerdict(req, verdict)
          if (datapoints > 0) lane.queue.push({ payload: request, datapoints, bytes: share(datapoints), at })
          return datapoints
        }
        const owner = new Uint16Array(batch.length)
        const counts = shardOwners(ring, key, batch, verdict, owner)
        let forwarded = 0
        for (let e = 0; e < lanes.length; e++) {
          if ((counts[e] as number) === 0) continue
          const { request, datapoints } = adapter.applyVerdict(req, verdict, { owner, index: e })
          if (datapoints === 0) continue
          ;(lanes[e] as Lane).queue.push({ payload: request, datapoints, bytes: share(datapoints), at })
          forwarded += datapoints
        }
        return forwarded
      },
      configure: (next) =>
        closing
          ? Effect.void
          : apply(next, false).pipe(
              Effect.catchAllCause((cause) =>
                logError("exporter settings from the reload do not apply; the previous ones stay in use", {
                  protocol,
                  error: Cause.pretty(cause),
                }),
              ),
            ),
      endpoints: () => targets.lanes.flatMap((l) => (l.url === undefined ? [] : [l.url])),
    }
    return outlet
  })
