/**
 * Request bodies of the end-to-end benchmarks, prepared once and sent many times: remote-write
 * (snappy protobuf) and OTLP/HTTP protobuf requests of 1,000 series with one datapoint each, every
 * body with its own series (so `bodies` bodies carry `bodies × 1,000` distinct series).
 */

import { type ArraySeriesBatch, arrayBatch } from "../src/limits/batch.js"
import { encodeOtlpProtobuf } from "../src/protocols/otlp/protobuf.js"
import type { ExportMetricsServiceRequest, KeyValue } from "../src/protocols/otlp/types.js"
import { encodeWriteRequest } from "../src/protocols/prw/codec.js"
import { compressBody } from "../src/protocols/prw/snappy.js"
import { NO_BYTES, type TimeSeries } from "../src/protocols/prw/types.js"

export interface Body {
  readonly body: Uint8Array
  readonly datapoints: number
}

export const PRW_HEADERS = {
  "Content-Type": "application/x-protobuf",
  "Content-Encoding": "snappy",
  "X-Prometheus-Remote-Write-Version": "0.1.0",
} as const

export const OTLP_HEADERS = { "Content-Type": "application/x-protobuf" } as const

/** Body `b` of remote write: `series` series of 10 labels (with `__name__`), one sample each. */
export const prwBody = (b: number, series = 1_000, now = Date.now()): Body => {
  const timeseries: Array<TimeSeries> = []
  for (let j = 0; j < series; j++) {
    const i = b * series + j
    const labels: Array<[string, string]> = [
      ["__name__", `http_requests_total_${i % 20}`],
      ["cluster", "eu-west-1-prod"],
      ["container", "api"],
      ["handler", `/api/v1/items/${i % 50}`],
      ["instance", `10.0.${i % 7}.${i % 250}:8080`],
      ["job", "kubernetes-pods"],
      ["method", i % 3 === 0 ? "POST" : "GET"],
      ["namespace", "shop"],
      ["pod", `api-7d9f8c6b5-${i.toString(36)}`],
      ["status_code", String(200 + (i % 5))],
    ]
    labels.sort(([a], [c]) => (a < c ? -1 : a > c ? 1 : 0))
    timeseries.push({
      labels: labels.map(([name, value]) => ({ name, value })),
      samples: [{ value: i * 1.25, timestamp: now }],
      exemplars: NO_BYTES,
      histograms: NO_BYTES,
      unknown: NO_BYTES,
    })
  }
  return {
    body: compressBody(encodeWriteRequest({ timeseries, metadata: NO_BYTES, unknown: NO_BYTES })),
    datapoints: series,
  }
}

const kv = (key: string, value: string): KeyValue => ({ key, value: { type: "string", value } })

/**
 * Body `b` of OTLP: one resource (service.name, host.name), 10 gauge metrics × `points / 10` data
 * points with 5 attributes each, every point its own series.
 */
export const otlpRequest = (b: number, points = 1_000, nowNs = BigInt(Date.now()) * 1_000_000n) => {
  const perMetric = Math.ceil(points / 10)
  const req: ExportMetricsServiceRequest = {
    resourceMetrics: [
      {
        schemaUrl: "",
        resource: {
          attributes: [kv("service.name", `svc-${b % 5}`), kv("host.name", `host-${b}`)],
          droppedAttributesCount: 0,
        },
        scopeMetrics: [
          {
            schemaUrl: "",
            scope: { name: "bench", version: "1", attributes: [], droppedAttributesCount: 0 },
            metrics: Array.from({ length: 10 }, (_, m) => ({
              name: `app.requests.${m}`,
              description: "",
              unit: "1",
              metadata: [],
              data: {
                type: "gauge" as const,
                dataPoints: Array.from({ length: perMetric }, (_, p) => {
                  const i = b * points + m * perMetric + p
                  return {
                    attributes: [
                      kv("http.route", `/api/v1/items/${i % 50}`),
                      kv("http.method", i % 3 === 0 ? "POST" : "GET"),
                      kv("status", String(200 + (i % 5))),
                      kv("pod", `api-7d9f8c6b5-${i.toString(36)}`),
                      kv("zone", "eu-west-1a"),
                    ],
                    startTimeUnixNano: 0n,
                    timeUnixNano: nowNs,
                    value: { type: "double" as const, value: i * 1.25 },
                    exemplars: [],
                    flags: 0,
                  }
                }),
              },
            })),
          },
        ],
      },
    ],
  }
  return req
}

export const otlpBody = (b: number, points = 1_000): Body => ({
  body: encodeOtlpProtobuf(otlpRequest(b, points)),
  datapoints: points,
})

/**
 * Series `i` of the enforcement and memory benchmarks: metric `svc{i mod (rules + 5)}_requests_total`
 * (spread over every rule, and a few names no rule matches) and 6 labels, key-sorted as adapters
 * deliver them; about 100 characters.
 */
export const benchSeries = (
  i: number,
  rules: number,
): { readonly name: string; readonly labels: Array<string> } => ({
  name: `svc${i % (rules + 5)}_requests_total`,
  labels: [
    "env",
    i % 3 === 0 ? "prod" : "dev",
    "instance",
    `10.0.${i % 250}.${i % 7}:9100`,
    "job",
    "api",
    "method",
    ["GET", "POST", "PUT"][i % 3] as string,
    "path",
    `/v1/items/${i}`,
    "service",
    `svc-${i % 40}`,
  ],
})

/** `series` distinct `benchSeries` in batches of `batch` entries with one datapoint each. */
export const enforceBatches = (rules: number, series: number, batch: number): Array<ArraySeriesBatch> =>
  Array.from({ length: series / batch }, (_, b) => {
    const names: Array<string> = []
    const labels: Array<Array<string>> = []
    for (let j = 0; j < batch; j++) {
      const s = benchSeries(b * batch + j, rules)
      names.push(s.name)
      labels.push(s.labels)
    }
    return arrayBatch(names, labels, new Uint32Array(batch).fill(1))
  })

/**
 * The relay load of the end-to-end areas: 8 prepared bodies of 1,000 series (8,000 distinct
 * series, under the one rule's limit of 10,000, so nothing is dropped), 8 connections.
 */
export const RELAY_BODIES = 8
export const RELAY_SERIES_PER_REQUEST = 1_000
export const RELAY_CONNECTIONS = 8
export const RELAY_LIMITS = "rules:\n  - name: all-series\n    max_cardinality: 10000\n    action: drop\n"
