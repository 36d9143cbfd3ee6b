import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort, type Governor, startGovernor, tempDir, waitFor } from "../support/governor.js"
import { Prometheus, prometheusAvailable } from "../support/prometheus.js"
import { pushRemoteWrite, type TestSeries } from "../support/remote-write.js"

/**
 * Remote write into the governor, a real Prometheus (Debian's package, remote-write receiver on) as
 * the downstream: exactly the series the limits admit arrive, with their values.
 */
const LIMITS = `window: 24h
rules:
  - name: drop-batch
    match:
      metric_name: "batch_.*"
    max_cardinality: 3
    action: drop
  - name: adaptive-http
    match:
      metric_name: "http_.*"
    max_cardinality: 4
    action: adaptive
    group_by: [service]
`
const CONFIG = `buffer:
  flush_interval: 50ms
`

const available = prometheusAvailable()
if (!available)
  console.log("skipping the Prometheus end-to-end test: `prometheus` is not installed (see .ci/run)")

describe.runIf(available)("remote write through the governor into a real Prometheus", () => {
  let prom: Prometheus
  let gov: Governor
  let prwUrl: string
  let dir: string

  beforeAll(async () => {
    prom = await Prometheus.start()
    dir = tempDir("mg-e2e-prom-")
    fs.writeFileSync(path.join(dir, "limits.yaml"), LIMITS)
    fs.writeFileSync(path.join(dir, "config.yaml"), CONFIG)
    const prwPort = await freePort()
    prwUrl = `http://127.0.0.1:${prwPort}/api/v1/write`
    gov = await startGovernor({
      args: [
        "-config",
        path.join(dir, "config.yaml"),
        "-limits-config",
        path.join(dir, "limits.yaml"),
        "-prw-listen",
        `127.0.0.1:${prwPort}`,
        "-prw-exporter-endpoint",
        prom.remoteWriteUrl,
      ],
    })
  }, 60_000)

  afterAll(async () => {
    await gov?.stop()
    await prom?.stop()
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  const series = (labels: Record<string, string>, value: number, timestamp: number): TestSeries => ({
    labels,
    samples: [{ value, timestamp }],
  })

  it("admits exactly what the drop and adaptive rules allow, values intact", async () => {
    const t0 = Date.now() - 60_000
    // 1. drop: 6 batch series against max_cardinality 3: the first 3 in request order pass.
    const batch = [0, 1, 2, 3, 4, 5].map((i) =>
      series({ __name__: "batch_job_runs", job: `j${i}` }, 100 + i, t0),
    )
    // Untracked: no rule matches; it passes as it is.
    const other = series({ __name__: "other_metric", x: "1" }, 42.5, t0)
    expect(await pushRemoteWrite(prwUrl, [...batch, other])).toBe(204)

    // 2. adaptive: service A has 3 series, B 1: 4 series, at the limit, all pass.
    const http = (service: string, pod: string, value: number, t: number) =>
      series({ __name__: "http_requests_total", service, pod }, value, t)
    expect(
      await pushRemoteWrite(prwUrl, [
        http("A", "a1", 1, t0),
        http("A", "a2", 2, t0),
        http("A", "a3", 3, t0),
        http("B", "b1", 4, t0),
      ]),
    ).toBe(204)
    // 3. a second series of B makes 5: A (3 series, the largest group) is dropped; b2 passes.
    expect(await pushRemoteWrite(prwUrl, [http("B", "b2", 5, t0 + 1_000)])).toBe(204)
    // 4. A stays dropped for the window; B flows.
    expect(
      await pushRemoteWrite(prwUrl, [http("A", "a1", 6, t0 + 2_000), http("B", "b1", 7, t0 + 2_000)]),
    ).toBe(204)

    const expectedSent = 3 + 1 + 4 + 1 + 1
    await waitFor(
      "the governor to forward everything",
      async () =>
        (await gov.metric('metrics_governor_datapoints_sent_total{protocol="prw"}')) === expectedSent
          ? true
          : undefined,
      10_000,
    )

    const at = t0 + 3_000
    const byLabel = async (q: string, label: string) =>
      Object.fromEntries((await prom.query(q, at)).map((r) => [r.metric[label] as string, r.value]))
    expect(await byLabel("batch_job_runs", "job")).toEqual({ j0: 100, j1: 101, j2: 102 })
    expect(await byLabel("other_metric", "x")).toEqual({ "1": 42.5 })
    // a1's last value is from request 2: its later sample was dropped with group A.
    expect(await byLabel("http_requests_total", "pod")).toEqual({ a1: 1, a2: 2, a3: 3, b1: 7, b2: 5 })
    expect((await prom.series('{__name__=~"batch_.*|http_.*|other_.*"}')).length).toBe(3 + 1 + 5)

    expect(await gov.metric('metrics_governor_datapoints_received_total{protocol="prw"}')).toBe(7 + 4 + 1 + 2)
    expect(
      await gov.metric('metrics_governor_limit_datapoints_dropped_total{rule="drop-batch",action="drop"}'),
    ).toBe(3)
    expect(
      await gov.metric('metrics_governor_limit_datapoints_passed_total{rule="drop-batch",action="drop"}'),
    ).toBe(3)
    expect(
      await gov.metric('metrics_governor_limit_cardinality_exceeded_total{rule="drop-batch",action="drop"}'),
    ).toBe(3)
    expect(
      await gov.metric(
        'metrics_governor_limit_datapoints_dropped_total{rule="adaptive-http",action="adaptive"}',
      ),
    ).toBe(1)
    expect(
      await gov.metric(
        'metrics_governor_limit_datapoints_passed_total{rule="adaptive-http",action="adaptive"}',
      ),
    ).toBe(6)
    expect(
      await gov.metric(
        'metrics_governor_limit_cardinality_exceeded_total{rule="adaptive-http",action="adaptive"}',
      ),
    ).toBe(1)
    expect(await gov.metric('metrics_governor_rule_current_cardinality{rule="drop-batch"}')).toBe(3)
  })
})
