/**
 * Writes a small Prometheus remote-write body (a snappy-compressed protobuf WriteRequest) for the
 * README tour and docs/receiving.md.
 *
 *   npx tsx deploy/examples/make-remote-write.ts              # deploy/examples/remote-write.bin
 *   npx tsx deploy/examples/make-remote-write.ts --now FILE   # the same series, stamped with the current time
 *
 * Without `--now` every sample carries a fixed timestamp (2026-01-01T00:00:00Z), so the file is the
 * same on every run. A Prometheus that already holds newer data refuses samples that old, so use
 * `--now` for a body you want to forward to a real Prometheus.
 *
 * The series, against deploy/examples/limits.yaml:
 *   http_requests_total{env="prod",service="cart",…}  2 series, 1 sample each  → rule prod-http
 *   batch_job_runs_total{team="data",job="nightly"}   1 series, 2 samples      → rule batch-jobs
 *   node_load1{instance="host-a"}                     1 series, 1 sample       → rule default
 * 4 series, 5 datapoints.
 */
import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { encodeWriteRequest } from "../../src/protocols/prw/codec.js"
import { compressBody } from "../../src/protocols/prw/snappy.js"
import type { TimeSeries, WriteRequest } from "../../src/protocols/prw/types.js"

const FIXED_MS = Date.UTC(2026, 0, 1) // 2026-01-01T00:00:00Z

const args = process.argv.slice(2)
const now = args.includes("--now")
const out = args.find((a) => a !== "--now") ?? fileURLToPath(new URL("./remote-write.bin", import.meta.url))
const t = now ? Date.now() : FIXED_MS

/** One series; labels are sorted by name, as Prometheus sends them. */
const series = (
  labels: Record<string, string>,
  samples: ReadonlyArray<{ value: number; timestamp: number }>,
): TimeSeries => ({
  labels: Object.keys(labels)
    .sort()
    .map((name) => ({ name, value: labels[name] as string })),
  samples,
  exemplars: [],
  histograms: [],
  unknown: [],
})

const request: WriteRequest = {
  timeseries: [
    series({ __name__: "http_requests_total", env: "prod", service: "cart", method: "GET", code: "200" }, [
      { value: 1027, timestamp: t },
    ]),
    series({ __name__: "http_requests_total", env: "prod", service: "cart", method: "POST", code: "500" }, [
      { value: 3, timestamp: t },
    ]),
    series({ __name__: "batch_job_runs_total", team: "data", job: "nightly" }, [
      { value: 41, timestamp: t - 15_000 },
      { value: 42, timestamp: t },
    ]),
    series({ __name__: "node_load1", instance: "host-a" }, [{ value: 0.42, timestamp: t }]),
  ],
  metadata: [],
  unknown: [],
}

const body = compressBody(encodeWriteRequest(request))
writeFileSync(out, body)
console.log(`wrote ${out}: ${body.length} bytes, 4 series, 5 samples, timestamp ${new Date(t).toISOString()}`)
