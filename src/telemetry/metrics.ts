import { Context, Effect, Layer } from "effect"
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client"

export const TRIGGERS = ["startup", "sighup", "watch", "poll", "touch", "http", "rollback"] as const
export const RESULTS = ["applied", "unchanged", "rejected", "error"] as const

/** Per-rule window figures, read from the active config version at scrape time. */
export interface RuleWindow {
  readonly rule: string
  readonly cardinality: number
  readonly datapoints: number
  /** Bytes the rule's tracking holds. */
  readonly memoryBytes?: number
  /** Seconds since the rule last owned a datapoint (+Inf: never). */
  readonly lastMatchSeconds?: number
  /** Whether the rule is dead (`dead_rule_interval`). */
  readonly dead?: boolean
}

/** A rule's ownership metadata (`labels:` of the rule), for `metrics_governor_rule_info`. */
export interface RuleInfo {
  readonly rule: string
  readonly info: ReadonlyArray<readonly [string, string]>
}

/**
 * `metrics_governor_rule_info{rule,<metadata keys>} 1`: its label names are the rules' metadata
 * keys, which change with the limits file, so it is written at scrape time rather than declared.
 * A rule without one of the keys has it empty.
 */
const ruleInfoMetric = (registry: Registry, source: () => ReadonlyArray<RuleInfo>) => {
  const metric = {
    name: "metrics_governor_rule_info",
    help: "1 per rule, with the rule's ownership labels (labels: in the limits file).",
    type: "gauge",
    aggregator: "sum",
    get: async () => {
      const rules = source()
      const keys = new Set<string>()
      for (const r of rules) for (const [k] of r.info) keys.add(k)
      const values = rules.map((r) => {
        const labels: Record<string, string> = { rule: r.rule }
        for (const k of keys) labels[k] = ""
        for (const [k, v] of r.info) labels[k] = v
        return { labels, value: 1 }
      })
      return {
        name: metric.name,
        help: metric.help,
        type: metric.type,
        aggregator: metric.aggregator,
        values,
      }
    },
    reset: () => {},
  }
  registry.registerMetric(metric as unknown as Parameters<Registry["registerMetric"]>[0])
}

/**
 * Every instrument the governor exports on `/metrics` (docs/reload.md#metrics), in one registry. `now` (ms since
 * the epoch) is read at every scrape of the `{rule}` gauges and handed to their source, so a window
 * that has ended reads 0 without waiting for the next request.
 */
export const makeInstruments = (registry: Registry, now: () => number = Date.now) => {
  const opts = { registers: [registry] }
  /** Set once the active version exists; until then no `{rule}` series are exposed. */
  let ruleWindows: (nowMs: number) => ReadonlyArray<RuleWindow> = () => []
  let ruleInfos: () => ReadonlyArray<RuleInfo> = () => []
  ruleInfoMetric(registry, () => ruleInfos())
  const instruments = {
    /** Points `metrics_governor_rule_info` at the active version's rules. */
    setRuleInfoSource: (source: () => ReadonlyArray<RuleInfo>) => {
      ruleInfos = source
    },
    ruleMemoryBytes: new Gauge({
      name: "metrics_governor_rule_cardinality_memory_bytes",
      help: "Bytes held by the rule's tracking (series, groups, label values) in its current window.",
      labelNames: ["rule"] as const,
      ...opts,
      collect() {
        this.reset()
        for (const w of ruleWindows(now())) this.set({ rule: w.rule }, w.memoryBytes ?? 0)
      },
    }),
    ruleDead: new Gauge({
      name: "metrics_governor_limits_rule_dead",
      help: "1 while the rule has matched nothing for dead_rule_interval (0 without dead_rule_interval).",
      labelNames: ["rule"] as const,
      ...opts,
      collect() {
        this.reset()
        for (const w of ruleWindows(now())) this.set({ rule: w.rule }, w.dead === true ? 1 : 0)
      },
    }),
    ruleLastMatch: new Gauge({
      name: "metrics_governor_limits_rule_last_match_seconds",
      help: "Seconds since the rule last owned a datapoint (+Inf when it has not since the process started).",
      labelNames: ["rule"] as const,
      ...opts,
      collect() {
        this.reset()
        for (const w of ruleWindows(now()))
          this.set({ rule: w.rule }, w.lastMatchSeconds ?? Number.POSITIVE_INFINITY)
      },
    }),
    /**
     * Points the `{rule}` gauges at the active version's stats (rules removed by a reload vanish). The
     * source gets the scrape's time and reports each rule's usage in the window current then (see
     * `currentUsages` in limits/stats.ts).
     */
    setRuleSource: (source: (nowMs: number) => ReadonlyArray<RuleWindow>) => {
      ruleWindows = source
    },
    ruleCardinality: new Gauge({
      name: "metrics_governor_rule_current_cardinality",
      help: "Distinct series in the rule's current window.",
      labelNames: ["rule"] as const,
      ...opts,
      collect() {
        this.reset()
        for (const w of ruleWindows(now())) this.set({ rule: w.rule }, w.cardinality)
      },
    }),
    ruleDatapoints: new Gauge({
      name: "metrics_governor_rule_current_datapoints",
      help: "Datapoints in the rule's current window.",
      labelNames: ["rule"] as const,
      ...opts,
      collect() {
        this.reset()
        for (const w of ruleWindows(now())) this.set({ rule: w.rule }, w.datapoints)
      },
    }),
    registry,
    reloadsTotal: new Counter({
      name: "metrics_governor_config_reloads_total",
      help: "Successful config reloads (applied or unchanged).",
      ...opts,
    }),
    reloadLastSuccess: new Gauge({
      name: "metrics_governor_config_reload_last_success_timestamp_seconds",
      help: "Unix time of the last successful reload; 0 until one happens.",
      ...opts,
    }),
    reloadFailures: new Counter({
      name: "metrics_governor_config_reload_failures_total",
      help: "Rejected config reloads.",
      ...opts,
    }),
    lastReloadSuccessful: new Gauge({
      name: "metrics_governor_config_last_reload_successful",
      help: "Whether the last reload attempt succeeded (1) or was rejected (0).",
      ...opts,
    }),
    reloadAttempts: new Counter({
      name: "metrics_governor_config_reload_attempts_total",
      help: "Reload attempts by trigger and result.",
      labelNames: ["trigger", "result"] as const,
      ...opts,
    }),
    reloadDuration: new Histogram({
      name: "metrics_governor_config_reload_duration_seconds",
      help: "Time from trigger to decision.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      ...opts,
    }),
    configVersion: new Gauge({
      name: "metrics_governor_config_version",
      help: "The active config version (starts at 1, +1 per applied reload).",
      ...opts,
    }),
    configInfo: new Gauge({
      name: "metrics_governor_config_info",
      help: "1 for the content hashes of the active config files.",
      labelNames: ["limits_sha256", "config_sha256"] as const,
      ...opts,
    }),
    limitsRules: new Gauge({
      name: "metrics_governor_limits_rules",
      help: "Rules in the active limits config.",
      ...opts,
    }),
    cardinalityMode: new Gauge({
      name: "metrics_governor_cardinality_mode",
      help: "1 for the -cardinality-mode in force (exact, bloom or hybrid).",
      labelNames: ["mode"] as const,
      ...opts,
    }),
    limitsDryRun: new Gauge({
      name: "metrics_governor_limits_dry_run",
      help: "1 while dry-run is on.",
      ...opts,
    }),
    restartRequired: new Gauge({
      name: "metrics_governor_config_restart_required",
      help: "1 while the active config.yaml differs from the start in a key that needs a restart.",
      ...opts,
    }),
  }
  const data = makeDataPathInstruments(opts, now)
  for (const trigger of TRIGGERS) {
    for (const result of RESULTS) instruments.reloadAttempts.inc({ trigger, result }, 0)
  }
  instruments.reloadsTotal.inc(0)
  instruments.reloadFailures.inc(0)
  instruments.reloadLastSuccess.set(0)
  instruments.restartRequired.set(0)
  return { ...instruments, ...data }
}

const RULE_ACTION = ["rule", "action"] as const

/** The data path: what came in, what went out, what the limits did, and the exporters' state. */
const makeDataPathInstruments = (opts: { registers: Array<Registry> }, nowMs: () => number) => {
  const bufferSources = new Map<"otlp" | "prw", () => number>()
  let inFlightSource: () => number = () => 0
  const queueSources = new Map<
    "otlp" | "prw",
    () => { bytes: number; datapoints: number; oldestAt: number | undefined }
  >()
  const d = {
    datapointsReceived: new Counter({
      name: "metrics_governor_datapoints_received_total",
      help: "Datapoints received, by protocol.",
      labelNames: ["protocol"] as const,
      ...opts,
    }),
    datapointsSent: new Counter({
      name: "metrics_governor_datapoints_sent_total",
      help: "Datapoints forwarded downstream, by protocol.",
      labelNames: ["protocol"] as const,
      ...opts,
    }),
    limitDropped: new Counter({
      name: "metrics_governor_limit_datapoints_dropped_total",
      help: "Datapoints dropped by limits.",
      labelNames: RULE_ACTION,
      ...opts,
    }),
    limitPassed: new Counter({
      name: "metrics_governor_limit_datapoints_passed_total",
      help: "Datapoints that passed a matching rule.",
      labelNames: RULE_ACTION,
      ...opts,
    }),
    limitWouldDrop: new Counter({
      name: "metrics_governor_limit_datapoints_would_drop_total",
      help: "Datapoints dry-run would have dropped (or stripped).",
      labelNames: RULE_ACTION,
      ...opts,
    }),
    limitCardinalityExceeded: new Counter({
      name: "metrics_governor_limit_cardinality_exceeded_total",
      help: "Datapoints that violated a cardinality limit.",
      labelNames: RULE_ACTION,
      ...opts,
    }),
    limitDatapointsExceeded: new Counter({
      name: "metrics_governor_limit_datapoints_exceeded_total",
      help: "Datapoints that violated a datapoints-rate limit.",
      labelNames: RULE_ACTION,
      ...opts,
    }),
    limitTierDatapoints: new Counter({
      name: "metrics_governor_limit_tier_datapoints_total",
      help: "Datapoints decided by a tier of a rule (tier: its at_percent), in dry-run too.",
      labelNames: ["rule", "tier", "action"] as const,
      ...opts,
    }),
    limitLabelLimited: new Counter({
      name: "metrics_governor_limit_label_limited_total",
      help: "Datapoints that brought a label past its label_limits value count, in dry-run too.",
      labelNames: ["rule", "label", "action"] as const,
      ...opts,
    }),
    receiverRequests: new Counter({
      name: "metrics_governor_receiver_requests_total",
      help: "Requests answered by the receivers, by protocol and HTTP status code (gRPC: mapped).",
      labelNames: ["protocol", "code"] as const,
      ...opts,
    }),
    receiverAuthFailures: new Counter({
      name: "metrics_governor_receiver_auth_failures_total",
      help: "Requests refused for missing or wrong credentials (receivers.auth), by protocol.",
      labelNames: ["protocol"] as const,
      ...opts,
    }),
    tlsReloadFailures: new Counter({
      name: "metrics_governor_tls_reload_failures_total",
      help: "Certificate, key, CA, token or password files that changed but did not load (the previous material stays in force), by file.",
      labelNames: ["file"] as const,
      ...opts,
    }),
    receiverRefused: new Counter({
      name: "metrics_governor_receiver_refused_total",
      help: "Requests refused before they were accepted, by protocol and reason (memory: the memory limit; buffer_full: the export buffer).",
      labelNames: ["protocol", "reason"] as const,
      ...opts,
    }),
    memoryLimitBytes: new Gauge({
      name: "metrics_governor_memory_limit_bytes",
      help: "The memory limit in force (-memory-limit or memory.limit_ratio of the cgroup limit); 0: none.",
      ...opts,
    }),
    memoryInFlightBytes: new Gauge({
      name: "metrics_governor_memory_in_flight_bytes",
      help: "Request bytes being read, decoded or enforced, as charged against the memory limit's in-flight budget.",
      ...opts,
      collect() {
        this.set(inFlightSource())
      },
    }),
    /** Points the in-flight gauge at the memory guard, read at scrape time. */
    setInFlightSource: (read: () => number) => {
      inFlightSource = read
    },
    queueBytes: new Gauge({
      name: "metrics_governor_queue_bytes",
      help: "Bytes in the durable export queue on disk, not yet acknowledged by the downstream, by protocol.",
      labelNames: ["protocol"] as const,
      ...opts,
      collect() {
        for (const [protocol, q] of queueSources) this.set({ protocol }, q().bytes)
      },
    }),
    queueDatapoints: new Gauge({
      name: "metrics_governor_queue_datapoints",
      help: "Datapoints in the durable export queue, not yet acknowledged by the downstream, by protocol.",
      labelNames: ["protocol"] as const,
      ...opts,
      collect() {
        for (const [protocol, q] of queueSources) this.set({ protocol }, q().datapoints)
      },
    }),
    queueOldestAge: new Gauge({
      name: "metrics_governor_queue_oldest_age_seconds",
      help: "Age of the oldest entry in the durable export queue (0 when empty), by protocol.",
      labelNames: ["protocol"] as const,
      ...opts,
      collect() {
        const now = nowMs()
        for (const [protocol, q] of queueSources) {
          const at = q().oldestAt
          this.set({ protocol }, at === undefined ? 0 : Math.max(0, (now - at) / 1000))
        }
      },
    }),
    queueCorruptBytes: new Counter({
      name: "metrics_governor_queue_corrupt_bytes_total",
      help: "Bytes of the durable export queue found corrupt or torn and skipped, by protocol.",
      labelNames: ["protocol"] as const,
      ...opts,
    }),
    /** Points the queue gauges of a protocol at its durable queue, read at scrape time. */
    setQueueSource: (
      protocol: "otlp" | "prw",
      read: () => { bytes: number; datapoints: number; oldestAt: number | undefined },
    ) => {
      queueSources.set(protocol, read)
    },
    exportCircuitOpen: new Gauge({
      name: "metrics_governor_export_circuit_open",
      help: "1 while the exporter's circuit is open: the downstream was unavailable 5 times in a row and is probed with one request per backoff pause.",
      labelNames: ["protocol", "endpoint"] as const,
      ...opts,
    }),
    endpointRequests: new Counter({
      name: "metrics_governor_export_endpoint_requests_total",
      help: "Export requests by protocol, endpoint and result (success, retry, rejected).",
      labelNames: ["protocol", "endpoint", "result"] as const,
      ...opts,
    }),
    endpointDatapointsSent: new Counter({
      name: "metrics_governor_export_endpoint_datapoints_sent_total",
      help: "Datapoints delivered, by protocol and endpoint.",
      labelNames: ["protocol", "endpoint"] as const,
      ...opts,
    }),
    exportEndpoints: new Gauge({
      name: "metrics_governor_export_endpoints",
      help: "Endpoints on the protocol's shard ring now (1 without sharding; 0 while a DNS name resolves to nothing).",
      labelNames: ["protocol"] as const,
      ...opts,
    }),
    shardDnsFailures: new Counter({
      name: "metrics_governor_export_dns_failures_total",
      help: "Resolutions of a sharding DNS name that failed (the previous endpoints stay in use), by protocol.",
      labelNames: ["protocol"] as const,
      ...opts,
    }),
    exportRequests: new Counter({
      name: "metrics_governor_export_requests_total",
      help: "Export requests by protocol and result (success, retry, rejected).",
      labelNames: ["protocol", "result"] as const,
      ...opts,
    }),
    datapointsLost: new Counter({
      name: "metrics_governor_export_datapoints_lost_total",
      help: "Accepted datapoints that could not be delivered (rejected by downstream, dropped as poisoned, or left at shutdown).",
      labelNames: ["protocol", "reason"] as const,
      ...opts,
    }),
    bufferDatapoints: new Gauge({
      name: "metrics_governor_buffer_datapoints",
      help: "Datapoints accepted and not yet delivered (in the export buffer or being sent).",
      labelNames: ["protocol"] as const,
      ...opts,
      collect() {
        for (const [protocol, read] of bufferSources) this.set({ protocol }, read())
      },
    }),
    /** Points the buffer gauge of a protocol at its buffer, read at scrape time. */
    setBufferSource: (protocol: "otlp" | "prw", read: () => number) => {
      bufferSources.set(protocol, read)
    },
  }
  d.memoryLimitBytes.set(0)
  for (const protocol of ["otlp", "prw"] as const) {
    d.datapointsReceived.inc({ protocol }, 0)
    d.datapointsSent.inc({ protocol }, 0)
    d.bufferDatapoints.set({ protocol }, 0)
  }
  return d
}

export type Instruments = ReturnType<typeof makeInstruments>

/** The process-wide metrics registry and instruments. */
export class Telemetry extends Context.Tag("metrics-governor/Telemetry")<Telemetry, Instruments>() {
  /**
   * A fresh registry with the governor's instruments and Node's process metrics. Scrape-time reads
   * of the clock go through Effect's `Clock` (a `TestClock` in tests).
   */
  static readonly live = Layer.effect(
    Telemetry,
    Effect.map(Effect.clock, (clock) => {
      const registry = new Registry()
      collectDefaultMetrics({ register: registry })
      return makeInstruments(registry, () => clock.unsafeCurrentTimeMillis())
    }),
  )
  /** Instruments without process metrics, for tests. */
  static readonly test = Layer.effect(
    Telemetry,
    Effect.map(Effect.clock, (clock) =>
      makeInstruments(new Registry(), () => clock.unsafeCurrentTimeMillis()),
    ),
  )
}

/** The `/metrics` body in Prometheus text format. */
export const scrape = Effect.flatMap(Telemetry, (t) =>
  Effect.promise(() => t.registry.metrics()).pipe(
    Effect.map((body) => ({ body, contentType: t.registry.contentType })),
  ),
)
