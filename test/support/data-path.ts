/**
 * Helpers for data-path tests against the real governor: request builders (OTLP and remote write,
 * encoded with our own codecs), plain HTTP senders, and a /metrics reader that matches labels in
 * any order.
 */

import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import { encodeOtlpProtobuf } from "../../src/protocols/otlp/protobuf.js"
import type {
  ExportMetricsServiceRequest,
  KeyValue,
  NumberDataPoint,
} from "../../src/protocols/otlp/types.js"
import { encodeWriteRequest } from "../../src/protocols/prw/codec.js"
import { compressBody } from "../../src/protocols/prw/snappy.js"
import { NO_BYTES, type TimeSeries, type WriteRequest } from "../../src/protocols/prw/types.js"
import { freePort, type Governor, sleep, startGovernor, tempDir } from "./governor.js"
import { encodeOtlpJson } from "./otlp-json.js"

export const writeFile = (dir: string, name: string, text: string): string => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
}

/** A governor with all three receivers on free loopback ports. */
export interface Running {
  readonly governor: Governor
  readonly httpPort: number
  readonly prwPort: number
  readonly grpcPort: number
}

/**
 * Starts the governor with `config` (written to `configDir`) and all three receivers, exporting to
 * the given endpoints (none: counted and discarded). The caller stops it.
 */
export const startWithReceivers = async (
  configDir: string,
  config: string,
  endpoints: { readonly otlp?: string; readonly prw?: string } = {},
): Promise<Running> => {
  const httpPort = await freePort()
  const prwPort = await freePort()
  const grpcPort = await freePort()
  const governor = await startGovernor({
    args: [
      "-config",
      writeFile(configDir, "config.yaml", config),
      "-http-listen",
      `127.0.0.1:${httpPort}`,
      "-prw-listen",
      `127.0.0.1:${prwPort}`,
      "-grpc-listen",
      `127.0.0.1:${grpcPort}`,
      ...(endpoints.otlp === undefined ? [] : ["-exporter-endpoint", endpoints.otlp]),
      ...(endpoints.prw === undefined ? [] : ["-prw-exporter-endpoint", endpoints.prw]),
    ],
  })
  return { governor, httpPort, prwPort, grpcPort }
}

const unescapeLabel = (v: string): string => v.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c))

/** Every sample of `name` on a /metrics text, with its labels. */
export const samples = (
  text: string,
  name: string,
): Array<{ labels: Record<string, string>; value: number }> => {
  const out: Array<{ labels: Record<string, string>; value: number }> = []
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue
    const rest = line.slice(name.length)
    let labels: Record<string, string> = {}
    let valueText: string
    if (rest.startsWith("{")) {
      const close = rest.lastIndexOf("}")
      labels = Object.fromEntries(
        [...rest.slice(1, close).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [
          m[1] as string,
          unescapeLabel(m[2] as string),
        ]),
      )
      valueText = rest.slice(close + 1).trim()
    } else if (rest.startsWith(" ")) {
      valueText = rest.trim()
    } else continue
    out.push({ labels, value: Number(valueText.split(" ")[0]) })
  }
  return out
}

/** The value of the sample of `name` whose labels include `labels` (summed if several match); 0 when absent. */
export const metricValue = async (
  g: Governor,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> => {
  const text = await g.metrics()
  let sum = 0
  for (const s of samples(text, name)) {
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value
  }
  return sum
}

/**
 * `metricValue` once it equals `expected`, or the last value read after `timeoutMs`. A sink counts a
 * request when it receives it; the governor counts it sent when the answer is back, a moment later.
 */
export const settledMetricValue = async (
  g: Governor,
  name: string,
  labels: Readonly<Record<string, string>>,
  expected: number,
  timeoutMs = 5_000,
): Promise<number> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await metricValue(g, name, labels)
    if (v === expected || Date.now() > deadline) return v
    await sleep(20)
  }
}

// ---------------------------------------------------------------------------------------------
// OTLP

const kv = (key: string, value: string): KeyValue => ({ key, value: { type: "string", value } })

export interface GaugePoint {
  readonly attributes: Readonly<Record<string, string>>
  readonly value: number
}

/** One resource, one scope, one gauge `metric` with these points (double values, distinct times). */
export const otlpGauge = (
  metric: string,
  points: ReadonlyArray<GaugePoint>,
  resource: Readonly<Record<string, string>> = { "service.name": "e2e" },
): ExportMetricsServiceRequest => ({
  resourceMetrics: [
    {
      schemaUrl: "",
      resource: {
        attributes: Object.entries(resource).map(([k, v]) => kv(k, v)),
        droppedAttributesCount: 0,
      },
      scopeMetrics: [
        {
          schemaUrl: "",
          scope: { name: "e2e", version: "1", attributes: [], droppedAttributesCount: 0 },
          metrics: [
            {
              name: metric,
              description: "",
              unit: "",
              metadata: [],
              data: {
                type: "gauge",
                dataPoints: points.map(
                  (p, i): NumberDataPoint => ({
                    attributes: Object.entries(p.attributes).map(([k, v]) => kv(k, v)),
                    startTimeUnixNano: 0n,
                    timeUnixNano: 1_700_000_000_000_000_000n + BigInt(i),
                    value: { type: "double", value: p.value },
                    exemplars: [],
                    flags: 0,
                  }),
                ),
              },
            },
          ],
        },
      ],
    },
  ],
})

/** `n` points of `metric`, one series each (`id` = 0..n-1), value = id. */
export const otlpSeries = (metric: string, n: number, extra: Record<string, string> = {}) =>
  otlpGauge(
    metric,
    Array.from({ length: n }, (_, i) => ({ attributes: { id: String(i), ...extra }, value: i })),
  )

/** One gauge point as the governor forwards it, flattened for comparison. */
export interface FlatPoint {
  readonly resource: Record<string, string>
  readonly metric: string
  readonly attributes: Record<string, string>
  readonly value: number | bigint | undefined
}

const stringAttrs = (attrs: ReadonlyArray<KeyValue>): Record<string, string> =>
  Object.fromEntries(
    attrs.map((a) => [a.key, a.value.type === "string" ? a.value.value : JSON.stringify(a.value)]),
  )

/** Every number data point (gauge or sum) of `requests`, in order. */
export const flattenOtlp = (requests: ReadonlyArray<ExportMetricsServiceRequest>): FlatPoint[] => {
  const out: FlatPoint[] = []
  for (const req of requests)
    for (const rm of req.resourceMetrics) {
      const resource = stringAttrs(rm.resource?.attributes ?? [])
      for (const sm of rm.scopeMetrics)
        for (const m of sm.metrics) {
          const d = m.data
          if (d === undefined || (d.type !== "gauge" && d.type !== "sum")) continue
          for (const p of d.dataPoints)
            out.push({
              resource,
              metric: m.name,
              attributes: stringAttrs(p.attributes),
              value: p.value?.value,
            })
        }
    }
  return out
}

// ---------------------------------------------------------------------------------------------
// Remote write

export const prwSeries = (
  labels: Readonly<Record<string, string>>,
  values: ReadonlyArray<number>,
  t0 = 1_700_000_000_000,
): TimeSeries => ({
  labels: Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => ({ name, value })),
  samples: values.map((value, i) => ({ value, timestamp: t0 + i * 1000 })),
  exemplars: NO_BYTES,
  histograms: NO_BYTES,
  unknown: NO_BYTES,
})

export const prwRequest = (timeseries: ReadonlyArray<TimeSeries>): WriteRequest => ({
  timeseries,
  metadata: NO_BYTES,
  unknown: NO_BYTES,
})

/** `n` series of `metric` (`id` = 0..n-1) with one sample each. */
export const prwMany = (metric: string, n: number): WriteRequest =>
  prwRequest(Array.from({ length: n }, (_, i) => prwSeries({ __name__: metric, id: String(i) }, [i])))

export const prwBody = (req: WriteRequest): Uint8Array => compressBody(encodeWriteRequest(req))

// ---------------------------------------------------------------------------------------------
// Sending

export interface HttpAnswer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
}

/**
 * One HTTP request with node:http (fetch would refuse some of what the bad-input tests send, and
 * hides how a response to a body that was not read arrives). Times out after `timeoutMs`.
 */
export const send = (
  port: number,
  options: {
    readonly method?: string
    readonly path: string
    readonly headers?: Readonly<Record<string, string>>
    readonly body?: Uint8Array | string
    /** Send the body chunked (no Content-Length). */
    readonly chunked?: boolean
    readonly timeoutMs?: number
  },
): Promise<HttpAnswer> =>
  new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : Buffer.from(options.body)
    const headers: Record<string, string> = { ...options.headers }
    if (body !== undefined && options.chunked !== true) headers["content-length"] = String(body.length)
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: options.method ?? "POST",
        path: options.path,
        headers,
        agent: false,
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        )
        res.on("error", reject)
      },
    )
    req.on("timeout", () => req.destroy(new Error(`no answer within ${options.timeoutMs ?? 10_000} ms`)))
    // The server may answer (413) before the body is sent and stop reading: that is not our error.
    req.on("error", reject)
    if (body === undefined) req.end()
    else if (options.chunked === true) {
      const step = 64 * 1024
      for (let i = 0; i < body.length; i += step) req.write(body.subarray(i, i + step))
      req.end()
    } else req.end(body)
  })

export const postOtlp = (
  port: number,
  req: ExportMetricsServiceRequest,
  format: "protobuf" | "json" = "protobuf",
): Promise<HttpAnswer> =>
  send(port, {
    path: "/v1/metrics",
    headers: { "content-type": format === "json" ? "application/json" : "application/x-protobuf" },
    body: format === "json" ? encodeOtlpJson(req) : encodeOtlpProtobuf(req),
  })

export const postPrw = (port: number, req: WriteRequest): Promise<HttpAnswer> =>
  send(port, {
    path: "/api/v1/write",
    headers: {
      "content-type": "application/x-protobuf",
      "content-encoding": "snappy",
      "x-prometheus-remote-write-version": "0.1.0",
    },
    body: prwBody(req),
  })

// ---------------------------------------------------------------------------------------------
// Durable queue

/**
 * A governor with a durable queue (`queue`: the lines under `exporters.queue` after its path, each
 * indented four spaces), its remote-write receiver on one port and `endpoint()` as its downstream;
 * `start` starts it, again on the same queue path after a stop. Directories and processes are
 * registered in `cleanup`.
 */
export const queuedGovernor = async (
  queue: string,
  endpoint: () => string,
  cleanup: Array<() => unknown>,
): Promise<{
  readonly queueDir: string
  readonly prwPort: number
  readonly start: () => Promise<Governor>
}> => {
  const dir = tempDir("mg-queue-")
  cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }))
  const config = path.join(dir, "config.yaml")
  fs.writeFileSync(
    config,
    `exporters:\n  queue:\n    path: ${path.join(dir, "queue")}\n${queue}buffer:\n  flush_interval: 50ms\nshutdown_timeout: 2s\n`,
  )
  const prwPort = await freePort()
  const start = async () => {
    const gov = await startGovernor({
      args: ["-config", config, "-prw-listen", `127.0.0.1:${prwPort}`, "-prw-exporter-endpoint", endpoint()],
    })
    cleanup.push(() => gov.stop())
    return gov
  }
  return { queueDir: path.join(dir, "queue"), prwPort, start }
}
