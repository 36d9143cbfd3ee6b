/**
 * Exporter credentials rotated like a Kubernetes Secret (a `..data` symlink swap) while the governor
 * runs: the remote-write sink sees the new `Authorization` on the next export request, without a
 * restart, and every datapoint is delivered.
 */

import * as fs from "node:fs"
import type { IncomingHttpHeaders } from "node:http"
import { afterEach, describe, expect, it } from "vitest"
import type { WriteRequest } from "../../src/protocols/prw/types.js"
import {
  metricValue,
  postPrw,
  prwMany,
  type Running,
  settledMetricValue,
  startWithReceivers,
} from "../support/data-path.js"
import { tempDir, waitFor } from "../support/governor.js"
import { SecretDir } from "../support/secret-dir.js"
import { Sink } from "../support/sink.js"

let running: Running | undefined
let sink: Sink<WriteRequest> | undefined
const dirs: string[] = []

afterEach(async () => {
  await running?.governor.stop()
  running = undefined
  await sink?.close()
  sink = undefined
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

const dir = (prefix: string) => {
  const d = tempDir(prefix)
  dirs.push(d)
  return d
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`

/**
 * Starts a governor exporting remote write to a sink with credentials from `secret` (`auth` lines
 * under `exporters.prw`), sends 5 requests, swaps the secret to `rotated`, sends 5 more, and checks
 * the headers the sink saw: `before` up to the swap, `after` from the first request after it.
 */
const rotate = async (
  secret: SecretDir,
  auth: ReadonlyArray<string>,
  rotated: Readonly<Record<string, string>>,
  before: string,
  after: string,
) => {
  sink = await Sink.start("prw")
  running = await startWithReceivers(
    dir("mg-rotation-"),
    [
      "exporters:",
      "  prw:",
      `    endpoint: ${sink.url}`,
      ...auth.map((l) => `    ${l}`),
      "buffer: { flush_interval: 20ms }",
      "shutdown_timeout: 2s",
      "",
    ].join("\n"),
  )
  const g = running.governor
  const s = sink
  const send = async (from: number, n: number) => {
    for (let i = from; i < from + n; i++) {
      expect((await postPrw((running as Running).prwPort, prwMany(`rotation_${i}`, 2))).status).toBe(204)
    }
    await waitFor("the sink", () => (s.datapoints >= 2 * (from + n) ? true : undefined), 10_000)
  }
  await send(0, 5)
  const seenBefore = s.requests.length
  secret.swap(rotated)
  await send(5, 5)
  const auths = s.requests.map((r: { headers: IncomingHttpHeaders }) => r.headers.authorization)
  expect(auths.slice(0, seenBefore).every((a) => a === before)).toBe(true)
  expect(auths.slice(seenBefore)).toEqual(auths.slice(seenBefore).map(() => after))
  // No restart, nothing lost, nothing sent twice.
  expect(g.exit).toBeUndefined()
  expect(s.datapoints).toBe(20)
  expect(new Set(s.delivered.flatMap((r) => r.timeseries.map((t) => JSON.stringify(t.labels)))).size).toBe(20)
  expect(await metricValue(g, "metrics_governor_export_datapoints_lost_total", { protocol: "prw" })).toBe(0)
  expect(await settledMetricValue(g, "metrics_governor_datapoints_sent_total", { protocol: "prw" }, 20)).toBe(
    20,
  )
  expect(g.logs.filter((l) => l.message === "export failed, retrying")).toEqual([])
}

describe("exporter credentials rotated by a Secret's ..data swap", () => {
  it("bearer_token_file: the next export request carries the new token", async () => {
    const secret = new SecretDir(dir("mg-rotation-secret-"))
    secret.swap({ token: "token-one\n" })
    await rotate(
      secret,
      [`bearer_token_file: ${secret.file("token")}`],
      { token: "token-two\n" },
      "Bearer token-one",
      "Bearer token-two",
    )
  })

  it("basic_password_file: the next export request carries the new password", async () => {
    const secret = new SecretDir(dir("mg-rotation-secret-"))
    secret.swap({ password: "first-pass\n" })
    await rotate(
      secret,
      ["basic_username: shipper", `basic_password_file: ${secret.file("password")}`],
      { password: "second-pass\n" },
      basic("shipper", "first-pass"),
      basic("shipper", "second-pass"),
    )
  })
})
