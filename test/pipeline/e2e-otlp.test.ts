/**
 * OTLP end to end: the official OpenTelemetry JS SDK exporters (OTLP/HTTP protobuf, OTLP/HTTP JSON,
 * OTLP/gRPC) send to the real governor process, which forwards OTLP/HTTP protobuf to a sink on
 * 127.0.0.1 that decodes every request with our codec. What arrives is compared with what the SDK
 * collected, data point for data point, and with the governor's counters.
 */

import * as fs from "node:fs"
import { type DiagLogger, DiagLogLevel, diag, ValueType } from "@opentelemetry/api"
import { OTLPMetricExporter as GrpcExporter } from "@opentelemetry/exporter-metrics-otlp-grpc"
import { OTLPMetricExporter as JsonExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPMetricExporter as ProtoExporter } from "@opentelemetry/exporter-metrics-otlp-proto"
import { resourceFromAttributes } from "@opentelemetry/resources"
import {
  MeterProvider,
  MetricReader,
  PeriodicExportingMetricReader,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics"
import { afterEach, describe, expect, it } from "vitest"
import type { ExportMetricsServiceRequest } from "../../src/protocols/otlp/types.js"
import {
  collectSample,
  expectSameAsSdk,
  normalizeDecoded,
  normalizeSdk,
  RESOURCE,
} from "../protocols/otlp/sdk.js"
import { flattenOtlp, metricValue, writeFile } from "../support/data-path.js"
import { freePort, type Governor, startGovernor, tempDir, waitFor } from "../support/governor.js"
import { Sink } from "../support/sink.js"

type ProtoOptions = NonNullable<ConstructorParameters<typeof ProtoExporter>[0]>

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

interface Exporter {
  export(metrics: ResourceMetrics, done: (result: { code: number; error?: Error }) => void): void
  shutdown(): Promise<void>
}

const exportOnce = (exporter: Exporter, metrics: ResourceMetrics) =>
  new Promise<{ code: number; error?: Error }>((resolve) => exporter.export(metrics, resolve))

const CONFIG = `buffer:\n  flush_interval: 50ms\nshutdown_timeout: 2s\n`

interface Setup {
  readonly governor: Governor
  readonly sink: Sink<ExportMetricsServiceRequest>
  readonly httpPort: number
  readonly grpcPort: number
  /** One exporter per transport, pointed at the governor. */
  readonly exporters: ReadonlyArray<readonly [string, Exporter]>
}

const setup = async (limits?: string): Promise<Setup> => {
  const dir = tempDir("mg-e2e-otlp-")
  cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }))
  const sink = await Sink.start("otlp")
  cleanup.push(() => sink.close())
  const httpPort = await freePort()
  const grpcPort = await freePort()
  const governor = await startGovernor({
    args: [
      "-config",
      writeFile(dir, "config.yaml", CONFIG),
      ...(limits === undefined ? [] : ["-limits-config", writeFile(dir, "limits.yaml", limits)]),
      "-http-listen",
      `127.0.0.1:${httpPort}`,
      "-grpc-listen",
      `127.0.0.1:${grpcPort}`,
      "-exporter-endpoint",
      sink.url,
    ],
  })
  cleanup.push(() => governor.stop())
  const url = `http://127.0.0.1:${httpPort}/v1/metrics`
  const exporters: Array<readonly [string, Exporter]> = [
    ["OTLP/HTTP protobuf", new ProtoExporter({ url })],
    [
      "OTLP/HTTP protobuf, gzip",
      new ProtoExporter({ url, compression: "gzip" as NonNullable<ProtoOptions["compression"]> }),
    ],
    ["OTLP/HTTP JSON", new JsonExporter({ url })],
    ["OTLP/gRPC", new GrpcExporter({ url: `http://127.0.0.1:${grpcPort}` })],
  ]
  for (const [, e] of exporters) cleanup.push(() => e.shutdown())
  return { governor, sink, httpPort, grpcPort, exporters }
}

const otlpCount = (g: Governor, name: string) => metricValue(g, name, { protocol: "otlp" })

/** Waits until the sink holds `requests` delivered requests and `datapoints` datapoints. */
const waitForSink = (sink: Sink<ExportMetricsServiceRequest>, requests: number, datapoints: number) =>
  waitFor(
    `${requests} requests / ${datapoints} datapoints at the sink`,
    () => (sink.delivered.length >= requests && sink.datapoints >= datapoints ? true : undefined),
    10_000,
  )

class ManualReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

const LIMITED_RESOURCE = { "service.name": "checkout", "deployment.environment": "e2e" }
const USERS = ["u1", "u2", "u3", "u4", "u5"]

/** `user.logins` with 5 attribute sets (the rule's target) and `queue.size` with 2 (untracked). */
const collectLimited = async (): Promise<ResourceMetrics> => {
  const reader = new ManualReader()
  const provider = new MeterProvider({
    resource: resourceFromAttributes(LIMITED_RESOURCE),
    readers: [reader],
  })
  const meter = provider.getMeter("e2e-limits", "0.1.0")
  const logins = meter.createCounter("user.logins", { valueType: ValueType.INT })
  USERS.forEach((user, i) => {
    logins.add(i + 1, { user })
  })
  const queue = meter.createGauge("queue.size")
  queue.record(1.5, { queue: "a" })
  queue.record(2.5, { queue: "b" })
  const { resourceMetrics, errors } = await reader.collect()
  await provider.shutdown()
  if (errors.length > 0) throw new Error(`collect errors: ${errors.join(", ")}`)
  return resourceMetrics
}

/** Captures the SDK's diagnostic warnings (where it reports a partial success). */
const captureDiag = (): string[] => {
  const warnings: string[] = []
  const text = (message: string, args: unknown[]) =>
    [message, ...args.map((a) => (typeof a === "string" ? a : JSON.stringify(a)))].join(" ")
  const logger: DiagLogger = {
    error: () => {},
    warn: (message, ...args) => {
      warnings.push(text(message, args))
    },
    info: () => {},
    debug: () => {},
    verbose: () => {},
  }
  diag.setLogger(logger, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true })
  cleanup.push(() => diag.disable())
  return warnings
}

describe("OTLP end to end: OpenTelemetry SDK → governor → OTLP/HTTP sink", () => {
  it("forwards every data point unchanged over HTTP protobuf (plain and gzip), HTTP JSON and gRPC", async () => {
    const { governor, sink, exporters } = await setup()
    let sent = 0
    for (const [i, [transport, exporter]] of exporters.entries()) {
      const sdk = await collectSample()
      const points = normalizeSdk(sdk).length
      expect(points).toBe(9)
      const result = await exportOnce(exporter, sdk)
      expect(result.error, transport).toBeUndefined()
      expect(result.code, transport).toBe(0)
      sent += points
      await waitForSink(sink, i + 1, sent)
      // One SDK export is one governor export, with exactly the SDK's data points: names, kinds,
      // attributes, resource attributes, scope, start and end times, values (histograms included).
      expect(sink.delivered, transport).toHaveLength(i + 1)
      const forwarded = sink.delivered[i] as ExportMetricsServiceRequest
      expectSameAsSdk(sdk, forwarded)
      expect(normalizeDecoded(forwarded)).toEqual(normalizeSdk(sdk))
      expect(forwarded.resourceMetrics[0]?.resource?.attributes.map((a) => [a.key, a.value])).toEqual(
        expect.arrayContaining([
          ["service.name", { type: "string", value: RESOURCE["service.name"] }],
          ["service.instance.id", { type: "string", value: RESOURCE["service.instance.id"] }],
          ["host.cpus", { type: "int", value: 8n }],
          ["deployment.canary", { type: "bool", value: false }],
        ]),
      )
      expect(await otlpCount(governor, "metrics_governor_datapoints_received_total"), transport).toBe(sent)
      await waitFor(`sent_total = ${sent}`, async () =>
        (await otlpCount(governor, "metrics_governor_datapoints_sent_total")) === sent ? true : undefined,
      )
    }
    expect(sink.datapoints).toBe(sent)
    expect(sink.undecodable).toEqual([])
    expect(sink.requests.every((r) => r.headers["content-type"] === "application/x-protobuf")).toBe(true)
    expect(await metricValue(governor, "metrics_governor_receiver_requests_total", { code: "200" })).toBe(3)
    expect(await metricValue(governor, "metrics_governor_receiver_requests_total", { code: "grpc_ok" })).toBe(
      1,
    )
    expect(await metricValue(governor, "metrics_governor_export_requests_total", { result: "retry" })).toBe(0)
  })

  it("a MeterProvider with a PeriodicExportingMetricReader delivers cumulative sums on every flush", async () => {
    const { governor, sink, httpPort } = await setup()
    const reader = new PeriodicExportingMetricReader({
      exporter: new ProtoExporter({ url: `http://127.0.0.1:${httpPort}/v1/metrics` }),
      exportIntervalMillis: 3_600_000,
    })
    const provider = new MeterProvider({
      resource: resourceFromAttributes({ "service.name": "periodic" }),
      readers: [reader],
    })
    cleanup.push(() => provider.shutdown())
    const jobs = provider.getMeter("periodic").createCounter("jobs.done", { valueType: ValueType.INT })
    jobs.add(2, { queue: "fast" })
    jobs.add(5, { queue: "slow" })
    await provider.forceFlush()
    await waitForSink(sink, 1, 2)
    jobs.add(3, { queue: "fast" })
    await provider.forceFlush()
    await waitForSink(sink, 2, 4)
    const resource = { "service.name": "periodic" }
    expect(
      flattenOtlp(sink.delivered).map((p) => ({
        ...p,
        resource: { "service.name": p.resource["service.name"] },
      })),
    ).toEqual([
      { resource, metric: "jobs.done", attributes: { queue: "fast" }, value: 2n },
      { resource, metric: "jobs.done", attributes: { queue: "slow" }, value: 5n },
      { resource, metric: "jobs.done", attributes: { queue: "fast" }, value: 5n },
      { resource, metric: "jobs.done", attributes: { queue: "slow" }, value: 5n },
    ])
    expect(await otlpCount(governor, "metrics_governor_datapoints_received_total")).toBe(4)
    await waitFor("sent_total = 4", async () =>
      (await otlpCount(governor, "metrics_governor_datapoints_sent_total")) === 4 ? true : undefined,
    )
    expect(sink.datapoints).toBe(4)
  })

  it("with max_cardinality 2 / drop, forwards exactly the admitted data points and reports the rest as a partial success", async () => {
    const limits = [
      "window: 1h",
      "rules:",
      "  - name: logins-per-user",
      "    match:",
      '      metric_name: "user\\\\.logins"',
      "    max_cardinality: 2",
      "    action: drop",
      "",
    ].join("\n")
    const { governor, sink, exporters } = await setup(limits)
    const warnings = captureDiag()
    const labels = { rule: "logins-per-user", action: "drop" }
    let received = 0
    let forwarded = 0
    for (const [i, [transport, exporter]] of exporters.entries()) {
      const sdk = await collectLimited()
      const all = normalizeSdk(sdk)
      expect(all).toHaveLength(7)
      // The rule admits the first two series of user.logins in request order (the SDK's order),
      // and keeps admitting the same two for the rest of the window; queue.size is untracked.
      const logins = all.filter((p) => p.metric === "user.logins")
      expect(logins).toHaveLength(5)
      const admitted = new Set(logins.slice(0, 2).map((p) => p.attributes.user))
      const expected = all.filter((p) => p.metric !== "user.logins" || admitted.has(p.attributes.user))
      expect(expected).toHaveLength(4)

      const warned = warnings.length
      const result = await exportOnce(exporter, sdk)
      expect(result.error, transport).toBeUndefined()
      expect(result.code, transport).toBe(0) // success: the client does not retry what was dropped
      const partial = warnings.slice(warned).filter((w) => w.includes("Partial Success"))
      expect(partial, transport).toHaveLength(1)
      expect(partial[0]).toContain("dropped by metrics-governor limits")
      expect(partial[0]).toMatch(/"rejectedDataPoints":"?3"?[,}]/) // JSON carries int64 as a string

      received += 7
      forwarded += 4
      await waitForSink(sink, i + 1, forwarded)
      expect(sink.delivered, transport).toHaveLength(i + 1)
      const delivered = sink.delivered[i] as ExportMetricsServiceRequest
      expect(normalizeDecoded(delivered)).toEqual(expected)
      expect(flattenOtlp([delivered]).every((p) => p.resource["service.name"] === "checkout")).toBe(true)
      expect(flattenOtlp([delivered]).every((p) => p.resource["deployment.environment"] === "e2e")).toBe(true)

      expect(await metricValue(governor, "metrics_governor_limit_datapoints_dropped_total", labels)).toBe(
        3 * (i + 1),
      )
      expect(await metricValue(governor, "metrics_governor_limit_datapoints_passed_total", labels)).toBe(
        2 * (i + 1),
      )
      expect(await metricValue(governor, "metrics_governor_limit_cardinality_exceeded_total", labels)).toBe(
        3 * (i + 1),
      )
      expect(await otlpCount(governor, "metrics_governor_datapoints_received_total")).toBe(received)
      await waitFor(`sent_total = ${forwarded}`, async () =>
        (await otlpCount(governor, "metrics_governor_datapoints_sent_total")) === forwarded
          ? true
          : undefined,
      )
    }
    expect(sink.datapoints).toBe(forwarded)
    expect(await governor.metric('metrics_governor_rule_current_cardinality{rule="logins-per-user"}')).toBe(2)
    // Nothing else was dropped: the untracked metric appears in no rule counter.
    expect(await metricValue(governor, "metrics_governor_limit_datapoints_dropped_total")).toBe(3 * 4)
  })
})
