import { Schema } from "effect"
import { DurationMs } from "./duration.js"

const opt = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

const Count = Schema.Number.pipe(
  Schema.int({ message: () => "must be a whole number" }),
  Schema.positive({ message: () => "must be > 0" }),
  Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER, { message: () => "is too large" }),
).annotations({ message: () => ({ message: "must be a whole number > 0", override: true }) })

const Threads = Schema.Number.pipe(
  Schema.int({ message: () => "must be a whole number" }),
  Schema.between(0, 64, { message: () => "must be between 0 and 64" }),
).annotations({ message: () => ({ message: "must be a whole number from 0 to 64", override: true }) })

const Ratio = Schema.Number.pipe(
  Schema.greaterThan(0, { message: () => "must be > 0" }),
  Schema.lessThanOrEqualTo(1, { message: () => "must be at most 1" }),
).annotations({ message: () => ({ message: "must be a number above 0 and at most 1", override: true }) })

const Bool = Schema.Boolean.annotations({
  message: () => ({ message: "must be true or false", override: true }),
})

const Path = Schema.NonEmptyString.annotations({ message: () => "must be a non-empty path" })

/** Client TLS of an exporter (an https:// endpoint). */
export const ExporterTlsSpec = Schema.Struct({
  /** CA bundle the downstream's certificate must chain to (default: the system's). */
  ca_file: opt(Path),
  /** Client certificate and key, for a downstream that asks for one (mTLS). */
  cert_file: opt(Path),
  key_file: opt(Path),
  /** The name the downstream's certificate must carry (default: the endpoint's host). */
  server_name: opt(Schema.NonEmptyString),
  /** Accept any certificate (test setups only; logged at warn at start). */
  insecure_skip_verify: opt(Bool),
})
export type ExporterTlsSpec = typeof ExporterTlsSpec.Type

export const isHttpUrl = (value: string): boolean => {
  try {
    const url = new URL(value)
    return (url.protocol === "http:" || url.protocol === "https:") && url.host !== ""
  } catch {
    return false
  }
}

const HttpUrl = Schema.String.pipe(
  Schema.filter(isHttpUrl, { message: () => "must be an http:// or https:// URL" }),
).annotations({ message: () => ({ message: "must be an http:// or https:// URL", override: true }) })

const Port = Schema.Number.pipe(
  Schema.int({ message: () => "must be a whole number" }),
  Schema.between(1, 65535, { message: () => "must be between 1 and 65535" }),
).annotations({ message: () => ({ message: "must be a port number from 1 to 65535", override: true }) })

const VirtualNodes = Schema.Number.pipe(
  Schema.int({ message: () => "must be a whole number" }),
  Schema.between(1, 10_000, { message: () => "must be between 1 and 10000" }),
).annotations({ message: () => ({ message: "must be a whole number from 1 to 10000", override: true }) })

export const SHARD_KEYS = ["series", "labels", "rule", "rule_group"] as const
export type ShardKey = (typeof SHARD_KEYS)[number]

/** Endpoints from a DNS name (a Kubernetes headless Service): one per address it resolves to. */
export const ShardingDnsSpec = Schema.Struct({
  name: Schema.NonEmptyString.annotations({ message: () => "must be a non-empty host name" }),
  port: Port,
  scheme: opt(
    Schema.Literal("http", "https").annotations({
      message: () => ({ message: 'must be "http" or "https"', override: true }),
    }),
  ),
  /** The URL path on every address (default: the protocol's usual path). */
  path: opt(Schema.String),
  /** How often the name is resolved again (default 30s). */
  refresh_interval: opt(DurationMs),
  /** A DNS server (`host:port`) to ask instead of the system's resolver. */
  server: opt(Schema.NonEmptyString),
})
export type ShardingDnsSpec = typeof ShardingDnsSpec.Type

/** Consistent-hash sharding over several downstream endpoints. */
export const ShardingSpec = Schema.Struct({
  endpoints: opt(Schema.Array(HttpUrl)),
  dns: opt(ShardingDnsSpec),
  key: opt(
    Schema.Literal(...SHARD_KEYS).annotations({
      message: () => ({ message: 'must be "series", "labels", "rule" or "rule_group"', override: true }),
    }),
  ),
  /** With `key: labels`: the labels whose values are the shard key. */
  labels: opt(Schema.Array(Schema.NonEmptyString)),
  /** Points per endpoint on the hash ring (default 160). */
  virtual_nodes: opt(VirtualNodes),
})
export type ShardingSpec = typeof ShardingSpec.Type

export const ExporterSpec = Schema.Struct({
  /** The downstream URL (overrides -exporter-endpoint / -prw-exporter-endpoint; reloads). */
  endpoint: opt(HttpUrl),
  /** Several downstream endpoints, each series always to the same one (instead of `endpoint`). */
  sharding: opt(ShardingSpec),
  /** Extra HTTP headers sent with every export request. */
  headers: opt(Schema.Record({ key: Schema.String, value: Schema.String })),
  /** A file holding a bearer token; re-read when it changes. */
  bearer_token_file: opt(Schema.String),
  /** Timeout of one export request. */
  timeout: opt(DurationMs),
  /** HTTP basic authentication: the user name, and a file holding the password (re-read when it changes). */
  basic_username: opt(Schema.NonEmptyString),
  basic_password_file: opt(Path),
  tls: opt(ExporterTlsSpec),
})
export type ExporterSpec = typeof ExporterSpec.Type

/** `host:port` (a gRPC target): a host name, an IPv4 address or a bracketed IPv6 address, and a port. */
export const isHostPort = (value: string): boolean => {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/.exec(value)
  if (m === null) return false
  const port = Number(m[2])
  return port >= 1 && port <= 65535
}

const OtlpEndpoint = Schema.String.pipe(
  Schema.filter((v) => isHttpUrl(v) || isHostPort(v), {
    message: () => "must be an http:// or https:// URL (or host:port with protocol: grpc)",
  }),
).annotations({
  message: () => ({
    message: "must be an http:// or https:// URL (or host:port with protocol: grpc)",
    override: true,
  }),
})

export const OTLP_TRANSPORTS = ["http", "grpc"] as const
export type OtlpTransport = (typeof OTLP_TRANSPORTS)[number]
export const COMPRESSIONS = ["none", "gzip"] as const
export type Compression = (typeof COMPRESSIONS)[number]

/** The OTLP exporter: the keys of every exporter, and how OTLP travels (HTTP or gRPC, compressed or not). */
export const OtlpExporterSpec = Schema.Struct({
  ...ExporterSpec.fields,
  /** The downstream: a URL, or with `protocol: grpc` also `host:port`. */
  endpoint: opt(OtlpEndpoint),
  /** OTLP/HTTP (default) or OTLP/gRPC. */
  protocol: opt(
    Schema.Literal(...OTLP_TRANSPORTS).annotations({
      message: () => ({ message: 'must be "http" or "grpc"', override: true }),
    }),
  ),
  /** Compression of export requests: gzip (default) or none. */
  compression: opt(
    Schema.Literal(...COMPRESSIONS).annotations({
      message: () => ({ message: 'must be "none" or "gzip"', override: true }),
    }),
  ),
})
export type OtlpExporterSpec = typeof OtlpExporterSpec.Type

/** `config.yaml`. Every key reloads but `receivers.*` and `memory.*`, which are read at start. */
export const MainConfigSpec = Schema.Struct({
  limits: opt(Schema.Struct({ dry_run: opt(Bool) })),
  receivers: opt(
    Schema.Struct({
      /** Largest accepted request body, as sent (compressed). */
      max_request_bytes: opt(Count),
      /** Largest accepted request body after decompression. */
      max_decompressed_bytes: opt(Count),
      /** Worker threads that decode OTLP and remote-write bodies (each protocol its own); 0: the main thread does. */
      decode_threads: opt(Threads),
      /** Most datapoints one request may carry; decoding stops past it (413). */
      max_datapoints_per_request: opt(Count),
      /** Most decoded elements (series, metrics, attributes, labels, datapoints, ...) per request (413). */
      max_elements_per_request: opt(Count),
      /** All three receivers serve TLS (1.2 or later); with client_ca_file, clients need a certificate it signed. */
      tls: opt(Schema.Struct({ cert_file: Path, key_file: Path, client_ca_file: opt(Path) })),
      /** Credentials every request must carry: a bearer token, basic authentication, or either. */
      auth: opt(
        Schema.Struct({
          bearer_token_file: opt(Path),
          basic_username: opt(Schema.NonEmptyString),
          basic_password_file: opt(Path),
        }),
      ),
    }),
  ),
  exporters: opt(
    Schema.Struct({
      otlp: opt(OtlpExporterSpec),
      prw: opt(ExporterSpec),
      /** The durable export queue; without `path`, the memory buffer. */
      queue: opt(
        Schema.Struct({
          /** A directory; each protocol keeps its segments in a subdirectory. */
          path: opt(Schema.NonEmptyString.annotations({ message: () => "must be a non-empty path" })),
          /** Bytes on disk per protocol before `full_behavior` applies. */
          max_bytes: opt(Count),
          /** How often what was appended is made durable (fsync); 0s: before each answer. */
          sync_interval: opt(DurationMs),
          full_behavior: opt(
            Schema.Literal("reject", "drop_oldest").annotations({
              message: () => ({ message: 'must be "reject" or "drop_oldest"', override: true }),
            }),
          ),
        }),
      ),
    }),
  ),
  buffer: opt(
    Schema.Struct({
      /** Datapoints held in memory before receivers push back. */
      size: opt(Count),
      /** Bytes held in memory before receivers push back. */
      max_bytes: opt(Count),
      /** Datapoints per export request. */
      batch_size: opt(Count),
      /** Longest time a datapoint waits before it is exported. */
      flush_interval: opt(DurationMs),
    }),
  ),
  /** How long shutdown may take to flush what is buffered. */
  shutdown_timeout: opt(DurationMs),
  memory: opt(
    Schema.Struct({
      /** The fraction of the container's memory limit to stay under (`-memory-limit` wins). */
      limit_ratio: opt(Ratio),
    }),
  ),
})
export type MainConfigSpec = typeof MainConfigSpec.Type

/** The values a missing key stands for; documented in docs/configuration.md. */
export const MAIN_DEFAULTS = {
  dryRun: false,
  maxRequestBytes: 8 * 1024 * 1024,
  maxDecompressedBytes: 64 * 1024 * 1024,
  maxDatapointsPerRequest: 1_000_000,
  maxElementsPerRequest: 4_000_000,
  exporterTimeoutMs: 10_000,
  bufferSize: 100_000,
  bufferMaxBytes: 64 * 1024 * 1024,
  batchSize: 5_000,
  flushIntervalMs: 1_000,
  shutdownTimeoutMs: 10_000,
  queueMaxBytes: 1024 * 1024 * 1024,
  queueSyncIntervalMs: 1_000,
  queueFullBehavior: "reject",
  shardingVirtualNodes: 160,
  shardingDnsRefreshMs: 30_000,
  shardingKey: "series",
  otlpTransport: "http",
  compression: "gzip",
} as const

/** A problem the schema cannot see: keys that exclude or need each other. */
export interface MainProblem {
  readonly path: ReadonlyArray<string | number>
  readonly message: string
}

/** The cross-key problems of a `config.yaml` the schema accepted. Pure. */
export const mainProblems = (spec: MainConfigSpec): ReadonlyArray<MainProblem> => {
  const out: Array<MainProblem> = []
  const otlp = spec.exporters?.otlp
  if (otlp?.endpoint !== undefined && otlp.protocol !== "grpc" && !isHttpUrl(otlp.endpoint)) {
    out.push({
      path: ["exporters", "otlp", "endpoint"],
      message: "must be an http:// or https:// URL (host:port only with protocol: grpc)",
    })
  }
  for (const protocol of ["otlp", "prw"] as const) {
    const e = spec.exporters?.[protocol]
    const s = e?.sharding
    if (e === undefined || s === undefined) continue
    const at = ["exporters", protocol, "sharding"]
    if (e.endpoint !== undefined) {
      out.push({ path: ["exporters", protocol, "endpoint"], message: "cannot be set together with sharding" })
    }
    if ((s.endpoints === undefined) === (s.dns === undefined)) {
      out.push({ path: at, message: "needs either endpoints or dns (one of them)" })
    }
    if (s.endpoints !== undefined) {
      if (s.endpoints.length === 0)
        out.push({ path: [...at, "endpoints"], message: "must list at least one URL" })
      const seen = new Set<string>()
      s.endpoints.forEach((url, i) => {
        if (seen.has(url)) out.push({ path: [...at, "endpoints", i], message: "is listed twice" })
        seen.add(url)
      })
    }
    const key = s.key ?? MAIN_DEFAULTS.shardingKey
    if (key === "labels" && (s.labels === undefined || s.labels.length === 0)) {
      out.push({ path: [...at, "labels"], message: "must list at least one label with key: labels" })
    }
    if (key !== "labels" && s.labels !== undefined) {
      out.push({ path: [...at, "labels"], message: "is only used with key: labels" })
    }
  }
  return out
}
