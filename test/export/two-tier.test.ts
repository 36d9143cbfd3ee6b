/**
 * The two-tier fleet with real processes: two routers (`-mode router`, sharding by `rule_group`)
 * in front of three governors that enforce, all with the same limits.yaml, one sink behind the
 * governors. A rule's `max_cardinality: 1000` admits 1,000 series for the whole fleet; three
 * governors fed directly admit 1,000 each.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import type { WriteRequest } from "../../src/protocols/prw/types.js"
import { freePort, startGovernor, tempDir, waitFor } from "../support/governor.js"
import { pushRemoteWrite, type TestSeries } from "../support/remote-write.js"
import { Sink } from "../support/sink.js"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const LIMITS = `window: 1h
rules:
  - name: fleet-cap
    match: {metric_name: "fleet_.*"}
    max_cardinality: 1000
    action: drop
  - name: direct-cap
    match: {metric_name: "direct_.*"}
    max_cardinality: 1000
    action: drop
`

const series = (metric: string, from: number, count: number): Array<TestSeries> =>
  Array.from({ length: count }, (_, i) => ({
    labels: { __name__: metric, i: String(from + i) },
    samples: [{ value: 1, timestamp: Date.now() }],
  }))

/** Distinct series of `metric` the sink received. */
const distinct = (sink: Sink<WriteRequest>, metric: string): number => {
  const keys = new Set<string>()
  for (const req of sink.delivered)
    for (const ts of req.timeseries) {
      if (ts.labels.find((l) => l.name === "__name__")?.value !== metric) continue
      keys.add(ts.labels.map((l) => `${l.name}=${l.value}`).join(","))
    }
  return keys.size
}

/** A process with remote write on a free port; resolves to its write URL. */
const start = async (dir: string, name: string, config: string, extra: ReadonlyArray<string> = []) => {
  const file = path.join(dir, `${name}.yaml`)
  fs.writeFileSync(file, config)
  const port = await freePort()
  const gov = await startGovernor({
    args: [
      "-prw-listen",
      `127.0.0.1:${port}`,
      "-http-listen",
      "",
      "-config",
      file,
      "-limits-config",
      path.join(dir, "limits.yaml"),
      "-reload-watch=false",
      ...extra,
    ],
  })
  cleanups.push(() => gov.stop())
  return { gov, url: `http://127.0.0.1:${port}/api/v1/write` }
}

describe("two tiers: routers in front of enforcing governors", () => {
  it("a max_cardinality of 1,000 admits 1,000 series for the whole fleet (3,000 with one tier)", async () => {
    const sink = await Sink.start("prw")
    cleanups.push(() => sink.close())
    const dir = tempDir("mg-tiers-")
    fs.writeFileSync(path.join(dir, "limits.yaml"), LIMITS)
    const flush = "buffer:\n  flush_interval: 50ms\n"
    const governors = await Promise.all(
      [0, 1, 2].map((g) =>
        start(dir, `governor-${g}`, `${flush}exporters:\n  prw:\n    endpoint: ${sink.url}\n`),
      ),
    )
    const routerConfig = `${flush}exporters:\n  prw:\n    sharding:\n      key: rule_group\n      endpoints: [${governors.map((g) => g.url).join(", ")}]\n`
    const routers = await Promise.all(
      [0, 1].map((r) => start(dir, `router-${r}`, routerConfig, ["-mode", "router"])),
    )

    // 5,000 distinct series, 100 per request, round robin over both routers.
    for (let r = 0; r < 50; r++) {
      const router = routers[r % 2] as (typeof routers)[number]
      expect(await pushRemoteWrite(router.url, series("fleet_requests", r * 100, 100))).toBe(204)
    }
    // One tier: another rule's series straight to the three governors, round robin.
    for (let r = 0; r < 50; r++) {
      const g = governors[r % 3] as (typeof governors)[number]
      expect(await pushRemoteWrite(g.url, series("direct_requests", r * 100, 100))).toBe(204)
    }

    await waitFor(
      "every admitted series delivered",
      async () => {
        let dropped = 0
        for (const g of governors) {
          dropped +=
            (await g.gov.metric(
              'metrics_governor_limit_datapoints_dropped_total{rule="fleet-cap",action="drop"}',
            )) ?? 0
          dropped +=
            (await g.gov.metric(
              'metrics_governor_limit_datapoints_dropped_total{rule="direct-cap",action="drop"}',
            )) ?? 0
        }
        // Sent: 5,000 + 5,000; what was not dropped arrives.
        return sink.datapoints + dropped === 10_000 ? true : undefined
      },
      20_000,
    )
    expect(sink.undecodable).toEqual([])
    const fleet = distinct(sink, "fleet_requests")
    const direct = distinct(sink, "direct_requests")
    console.log(`two tiers: ${fleet} of 5,000 series delivered; one tier: ${direct} of 5,000`)
    expect(fleet).toBe(1_000)
    expect(direct).toBe(3_000)
    // The routers enforce nothing: no rule counters move there.
    for (const r of routers) {
      expect(
        await r.gov.metric('metrics_governor_limit_datapoints_dropped_total{rule="fleet-cap",action="drop"}'),
      ).toBeUndefined()
      expect(await r.gov.metric('metrics_governor_datapoints_sent_total{protocol="prw"}')).toBeGreaterThan(0)
    }
  }, 90_000)
})
