import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { freePort, type Governor, sleep, startGovernor, tempDir, waitFor } from "../support/governor.js"
import { pushRemoteWrite, RemoteWriteSink } from "../support/remote-write.js"

const limits = (maxCardinality: number) => `window: 24h
rules:
  - name: load
    match:
      metric_name: "load_total"
    max_cardinality: ${maxCardinality}
    action: drop
`
const DEBOUNCE_MS = 100
const SERIES_PER_REQUEST = 10
const REQUESTS = 240
const INTERVAL_MS = 10

describe("reload under traffic", () => {
  let gov: Governor | undefined
  let sink: RemoteWriteSink | undefined
  let dir: string | undefined
  afterEach(async () => {
    await gov?.stop()
    await sink?.close()
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  it("a limit changed on disk governs within one debounce; no request fails; the sink gets exactly what was sent", async () => {
    dir = tempDir("mg-reload-load-")
    const limitsFile = path.join(dir, "limits.yaml")
    fs.writeFileSync(limitsFile, limits(50))
    fs.writeFileSync(path.join(dir, "config.yaml"), "buffer:\n  flush_interval: 20ms\n")
    sink = await RemoteWriteSink.start()
    const port = await freePort()
    const url = `http://127.0.0.1:${port}/api/v1/write`
    gov = await startGovernor({
      args: [
        "-config",
        path.join(dir, "config.yaml"),
        "-limits-config",
        limitsFile,
        "-prw-listen",
        `127.0.0.1:${port}`,
        "-prw-exporter-endpoint",
        sink.url,
        "-reload-debounce",
        `${DEBOUNCE_MS}ms`,
      ],
    })

    // Steady load: every request brings 10 new series, so the cardinality limit decides everything.
    const sent: Array<{ at: number; status: number; ids: Array<string> }> = []
    let writtenAt = 0
    const started = Date.now()
    for (let r = 0; r < REQUESTS; r++) {
      if (r === REQUESTS / 2) {
        fs.writeFileSync(`${limitsFile}.tmp`, limits(100_000))
        fs.renameSync(`${limitsFile}.tmp`, limitsFile)
        writtenAt = Date.now()
      }
      const ids = Array.from({ length: SERIES_PER_REQUEST }, (_, k) => `s${r * SERIES_PER_REQUEST + k}`)
      const at = Date.now()
      const status = await pushRemoteWrite(
        url,
        ids.map((id) => ({ labels: { __name__: "load_total", id }, samples: [{ value: r, timestamp: at }] })),
      )
      sent.push({ at, status, ids })
      await sleep(INTERVAL_MS)
      expect(Date.now() - started).toBeLessThan(60_000)
    }

    expect(sent.filter((s) => s.status !== 204)).toEqual([])
    expect((await gov.status()).version).toBe(2)
    const sentCounter = async () => gov?.metric('metrics_governor_datapoints_sent_total{protocol="prw"}')
    await waitFor(
      "the sink to receive everything sent",
      async () => ((await sentCounter()) === sink?.samples && (await sentCounter()) !== 0 ? true : undefined),
      10_000,
    )
    expect(sink.samples).toBe(await sentCounter())

    const arrived = new Set(sink.labelValues("id"))
    const before = sent.filter((s) => s.at < writtenAt)
    const settled = sent.filter((s) => s.at >= writtenAt + DEBOUNCE_MS + 250)
    // Before the change: the first 50 series pass, nothing after them.
    expect(before.flatMap((s) => s.ids).filter((id) => arrived.has(id))).toEqual(
      Array.from({ length: 50 }, (_, i) => `s${i}`),
    )
    // From one debounce (plus the reload itself) after the write on, the new limit governs.
    expect(settled.length).toBeGreaterThan(50)
    for (const s of settled) expect(s.ids.every((id) => arrived.has(id))).toBe(true)
    const received = await gov.metric('metrics_governor_datapoints_received_total{protocol="prw"}')
    expect(received).toBe(REQUESTS * SERIES_PER_REQUEST)
    expect(
      (await gov.metric('metrics_governor_limit_datapoints_dropped_total{rule="load",action="drop"}')) ?? 0,
    ).toBe((received ?? 0) - ((await sentCounter()) ?? 0))
  }, 90_000)
})
