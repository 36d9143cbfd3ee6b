import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

/** The built modules (the test suite builds `dist/` first), as the governor runs them. */
const DIST = fileURLToPath(new URL("../../../dist/", import.meta.url))

/**
 * Scans 1,000-series bodies, a few per turn of the event loop as a receiver does, in a process of
 * its own with V8's young-generation collections traced; prints what each one promoted to the old
 * generation.
 */
const SCRIPT = `
import { encodeWriteRequest } from ${JSON.stringify(`${DIST}protocols/prw/codec.js`)}
import { scanWriteRequest } from ${JSON.stringify(`${DIST}protocols/prw/scan.js`)}
const bodies = Array.from({ length: 4 }, (_, b) => encodeWriteRequest({
  timeseries: Array.from({ length: 1000 }, (_, i) => ({
    labels: [
      { name: "__name__", value: "http_requests_total" },
      { name: "instance", value: "host-" + b + "-" + i },
      { name: "job", value: "api" },
      { name: "method", value: i % 2 === 0 ? "GET" : "POST" },
    ],
    samples: [{ value: i, timestamp: 1700000000000 + i }],
    exemplars: [], histograms: [], unknown: [],
  })),
  metadata: [], unknown: [],
}))
let n = 0
const turn = () => {
  for (let k = 0; k < 4; k++) {
    const scan = scanWriteRequest(bodies[n % bodies.length], undefined, bodies[n % bodies.length])
    if (scan._tag !== "Right" || scan.right.length !== 1000) throw new Error("bad scan")
    n++
  }
  if (n < 8000) setImmediate(turn)
}
turn()
`

describe("scanWriteRequest and V8's young generation", () => {
  it("a scan left behind dies young: scanning 8,000 bodies promotes next to nothing to the old generation (a per-scan hidden class held each scan's arrays until a full collection: about 700 KB promoted per scavenge)", () => {
    const out = execFileSync(
      process.execPath,
      ["--trace-gc-nvp", "--max-semi-space-size=4", "--input-type=module", "-e", SCRIPT],
      { encoding: "utf8", maxBuffer: 64 << 20 },
    )
    const promoted = [...out.matchAll(/gc=s .*? promoted=(\d+)/g)].map((m) => Number(m[1]))
    // Enough young-generation collections to see a steady state, whatever the heap's sizing.
    expect(promoted.length).toBeGreaterThan(10)
    const steady = promoted.slice(3)
    const mean = steady.reduce((a, b) => a + b, 0) / steady.length
    expect(mean).toBeLessThan(64 * 1024)
  })
})
