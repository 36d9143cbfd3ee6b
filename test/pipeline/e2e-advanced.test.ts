import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { ExportMetricsServiceRequest } from "../../src/protocols/otlp/types.js"
import type { WriteRequest } from "../../src/protocols/prw/types.js"
import { flattenOtlp, metricValue, otlpGauge, samples, writeFile } from "../support/data-path.js"
import { freePort, type Governor, startGovernor, tempDir, waitFor } from "../support/governor.js"
import { encodeOtlpJson } from "../support/otlp-json.js"
import { pushRemoteWrite } from "../support/remote-write.js"
import { Sink } from "../support/sink.js"

/**
 * The advanced rule language through both receivers into loopback sinks: one rule's label value
 * set is shared by OTLP and remote write, values past the limit lose the label on either path, and
 * the per-label counter and the rule's info metric are on /metrics; `-stats-labels` counts all
 * traffic of both paths, bounded.
 */
const LIMITS = `dead_rule_interval: 1h
required_labels: [team]
rules:
  - name: users
    labels: {team: e2e, owner: oncall}
    match: {metric_name: "adv_.*"}
    max_cardinality: 100
    label_limits: {user: 2}
`

describe("label_limits end to end (OTLP and remote write)", () => {
  let dir = ""
  let gov: Governor
  let otlpSink: Sink<ExportMetricsServiceRequest>
  let prwSink: Sink<WriteRequest>
  let httpPort = 0
  let prwPort = 0

  beforeAll(async () => {
    dir = tempDir("mg-e2e-adv-")
    otlpSink = await Sink.start("otlp")
    prwSink = await Sink.start("prw")
    httpPort = await freePort()
    prwPort = await freePort()
    const grpcPort = await freePort()
    gov = await startGovernor({
      args: [
        "-config",
        writeFile(dir, "config.yaml", "buffer:\n  flush_interval: 50ms\n"),
        "-limits-config",
        writeFile(dir, "limits.yaml", LIMITS),
        "-http-listen",
        `127.0.0.1:${httpPort}`,
        "-grpc-listen",
        `127.0.0.1:${grpcPort}`,
        "-prw-listen",
        `127.0.0.1:${prwPort}`,
        "-exporter-endpoint",
        `http://127.0.0.1:${otlpSink.port}/v1/metrics`,
        "-prw-exporter-endpoint",
        `http://127.0.0.1:${prwSink.port}/api/v1/write`,
        "-stats-labels",
        "user",
        "-stats-max-label-combinations",
        "3",
      ],
    })
  }, 60_000)

  afterAll(async () => {
    await gov?.stop()
    await otlpSink?.close()
    await prwSink?.close()
    if (dir) fs.rmSync(path.join(dir), { recursive: true, force: true })
  })

  it("strips a label past its limit on both paths, with one value set for the rule", async () => {
    const points = ["u0", "u1", "u2", "u3"].map((user, i) => ({
      attributes: { user, id: String(i) },
      value: i,
    }))
    const otlp = await fetch(`http://127.0.0.1:${httpPort}/v1/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: encodeOtlpJson(otlpGauge("adv_otlp", points)),
    })
    await otlp.arrayBuffer()
    expect(otlp.status).toBe(200)
    const forwarded = await waitFor(
      "4 OTLP points delivered",
      async () => {
        const flat = flattenOtlp(otlpSink.delivered)
        return flat.length >= 4 ? flat : undefined
      },
      10_000,
    )
    expect(forwarded.map((p) => p.attributes)).toEqual([
      { user: "u0", id: "0" },
      { user: "u1", id: "1" },
      { id: "2" },
      { id: "3" },
    ])

    // Remote write: u1 was admitted by the OTLP request, u2 never was.
    const t = Date.now()
    expect(
      await pushRemoteWrite(`http://127.0.0.1:${prwPort}/api/v1/write`, [
        { labels: { __name__: "adv_prw", user: "u1", id: "a" }, samples: [{ value: 1, timestamp: t }] },
        { labels: { __name__: "adv_prw", user: "u2", id: "b" }, samples: [{ value: 2, timestamp: t }] },
      ]),
    ).toBeLessThan(300)
    const series = await waitFor(
      "2 remote-write series delivered",
      async () => {
        const all = prwSink.delivered.flatMap((r) => r.timeseries)
        return all.length >= 2 ? all : undefined
      },
      10_000,
    )
    expect(series.map((s) => Object.fromEntries(s.labels.map((l) => [l.name, l.value])))).toEqual([
      { __name__: "adv_prw", user: "u1", id: "a" },
      { __name__: "adv_prw", id: "b" },
    ])

    expect(
      await metricValue(gov, "metrics_governor_limit_label_limited_total", {
        rule: "users",
        label: "user",
        action: "strip",
      }),
    ).toBe(3)
    const text = await gov.metrics()
    expect(samples(text, "metrics_governor_rule_info")).toEqual([
      { labels: { rule: "users", owner: "oncall", team: "e2e" }, value: 1 },
    ])
    expect(samples(text, "metrics_governor_limits_rule_dead")).toEqual([
      { labels: { rule: "users" }, value: 0 },
    ])
    const lastMatch = samples(text, "metrics_governor_limits_rule_last_match_seconds")[0]?.value ?? -1
    expect(lastMatch).toBeGreaterThanOrEqual(0)
    expect(lastMatch).toBeLessThan(60)
    expect(samples(text, "metrics_governor_rule_cardinality_memory_bytes")[0]?.value).toBeGreaterThan(0)
    // -stats-labels user, at most 3 combinations: u0, u1 and __other__ (as received, before limits).
    expect(samples(text, "metrics_governor_label_datapoints_total")).toEqual([
      { labels: { user: "u0" }, value: 1 },
      { labels: { user: "u1" }, value: 2 },
      { labels: { user: "__other__" }, value: 3 },
    ])
    expect(samples(text, "metrics_governor_label_cardinality")).toEqual([
      { labels: { user: "u0" }, value: 1 },
      { labels: { user: "u1" }, value: 2 },
      { labels: { user: "__other__" }, value: 3 },
    ])
  })
})
