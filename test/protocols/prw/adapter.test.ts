import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { BatchVerdict } from "../../../src/limits/batch.js"
import { type CompiledRule, NO_ADVANCED_KEYS } from "../../../src/limits/rules.js"
import { applyVerdict } from "../../../src/protocols/prw/adapter.js"
import {
  NO_BYTES,
  type Sample,
  type TimeSeries,
  type WriteRequest,
} from "../../../src/protocols/prw/types.js"
import { toSeriesBatch } from "../../support/prw.js"
import { writeRequest } from "./arbitraries.js"

const rule = (name: string, stripLabels: ReadonlyArray<string> = []): CompiledRule => ({
  name,
  metricName: undefined,
  metricNameSource: undefined,
  metricNamePrefix: "",
  labels: [],
  maxDatapointsRate: 10,
  maxCardinality: 0,
  action: stripLabels.length > 0 ? "strip_labels" : "drop",
  groupBy: [],
  sampleRate: 1,
  stripLabels,
  ...NO_ADVANCED_KEYS,
})

const samples = (...timestamps: ReadonlyArray<number>): Array<Sample> =>
  timestamps.map((t) => ({ value: t / 10, timestamp: t }))

const series = (
  labels: Record<string, string>,
  points: Array<Sample>,
  extra: Partial<TimeSeries> = {},
): TimeSeries => ({
  labels: Object.entries(labels).map(([name, value]) => ({ name, value })),
  samples: points,
  exemplars: NO_BYTES,
  histograms: NO_BYTES,
  unknown: NO_BYTES,
  ...extra,
})

const request = (...timeseries: Array<TimeSeries>): WriteRequest => ({
  timeseries,
  metadata: [Uint8Array.from([0x08, 0x01])],
  unknown: [Uint8Array.from([0x12, 0x01, 0x41])],
})

const verdict = (
  pass: ReadonlyArray<number>,
  strip: ReadonlyArray<number> = [],
  rules: ReadonlyArray<CompiledRule | undefined> = [],
): BatchVerdict => ({
  pass: Uint32Array.from(pass),
  strip: Uint8Array.from({ length: pass.length }, (_, i) => strip[i] ?? 0),
  rule: rules,
})

const histogram = Uint8Array.from([0x08, 0x01])
const exemplar = Uint8Array.from([0x11, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f])

describe("toSeriesBatch", () => {
  it("lists each series once: name from __name__, other labels flat and sorted, samples + histograms", () => {
    const batch = toSeriesBatch(
      request(
        series({ __name__: "up", instance: "a:9100", job: "node" }, samples(1, 2)),
        series({ job: "api", __name__: "http_requests_total", code: "200" }, samples(3)), // unsorted
        series({ le: "0.5" }, [], { histograms: [histogram, histogram] }), // no name
        series({ __name__: "trace_hits" }, [], { exemplars: [exemplar] }), // exemplar only
      ),
    )
    expect(batch.length).toBe(4)
    expect(batch.names).toEqual(["up", "http_requests_total", "", "trace_hits"])
    expect(batch.labels).toEqual([
      ["instance", "a:9100", "job", "node"],
      ["code", "200", "job", "api"],
      ["le", "0.5"],
      [],
    ])
    expect(Array.from(batch.datapoints)).toEqual([2, 1, 2, 0])
  })

  it("sorts stably and takes the first __name__ when a sender repeats it", () => {
    const batch = toSeriesBatch(
      request(
        series({}, samples(1), {
          labels: [
            { name: "b", value: "2" },
            { name: "__name__", value: "first" },
            { name: "a", value: "1" },
            { name: "b", value: "1" },
            { name: "__name__", value: "second" },
          ],
        }),
      ),
    )
    expect(batch.names).toEqual(["first"])
    expect(batch.labels).toEqual([["a", "1", "b", "2", "b", "1"]])
  })

  it("gives key-sorted labels without __name__ for any request", () => {
    fc.assert(
      fc.property(writeRequest, (req) => {
        const batch = toSeriesBatch(req)
        expect(batch.length).toBe(req.timeseries.length)
        req.timeseries.forEach((ts, i) => {
          const flat = batch.labels[i] ?? []
          const keys = flat.filter((_, k) => k % 2 === 0)
          expect(keys).toEqual([...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
          const pairs = ts.labels.filter((l) => l.name !== "__name__").map((l) => `${l.name}\u0000${l.value}`)
          const flatPairs = keys.map((k, j) => `${k}\u0000${flat[2 * j + 1]}`)
          expect([...flatPairs].sort()).toEqual([...pairs].sort())
          expect(batch.datapoints[i]).toBe(ts.samples.length + ts.histograms.length)
        })
      }),
      { numRuns: 300 },
    )
  })
})

describe("applyVerdict", () => {
  const a = series({ __name__: "a", pod: "p1", job: "j" }, samples(1, 2, 3), { exemplars: [exemplar] })
  const b = series({ __name__: "b", pod: "p2" }, samples(4, 5))
  const h = series({ __name__: "h", pod: "p3" }, samples(6), { histograms: [histogram, histogram] })

  it("returns the same request when everything passes", () => {
    const req = request(a, b, h)
    const applied = applyVerdict(req, verdict([3, 2, 3]))
    expect(applied.request).toBe(req)
    expect(applied.datapoints).toBe(8)
  })

  it("keeps the first pass[i] samples and drops the rest; drops series left empty", () => {
    const req = request(a, b, h)
    const applied = applyVerdict(req, verdict([1, 0, 3], [], [rule("r"), rule("r"), undefined]))
    expect(applied.datapoints).toBe(4)
    expect(applied.request).toEqual({
      timeseries: [{ ...a, samples: samples(1) }, h],
      metadata: req.metadata,
      unknown: req.unknown,
    })
    expect(applied.request.timeseries[1]).toBe(h) // passed series are not copied
    expect(applied.request.metadata).toBe(req.metadata)
  })

  it("passes violating samples in a second series without the rule's stripLabels", () => {
    const strip = rule("strip-pod", ["pod", "absent"])
    const applied = applyVerdict(request(a, b), verdict([1, 0], [1, 1], [strip, strip]))
    expect(applied.datapoints).toBe(5)
    expect(applied.request.timeseries).toEqual([
      { ...a, samples: samples(1) }, // keeps its exemplars
      series({ __name__: "a", job: "j" }, samples(2, 3)),
      series({ __name__: "b" }, samples(4, 5)),
    ])
  })

  it("moves exemplars and unknown fields to the stripped series when nothing passed unchanged", () => {
    const unknown = [Uint8Array.from([0x78, 0x01])]
    const withExtras = { ...a, unknown }
    const applied = applyVerdict(request(withExtras), verdict([0], [1], [rule("s", ["pod"])]))
    expect(applied.request.timeseries).toEqual([
      series({ __name__: "a", job: "j" }, samples(1, 2, 3), { exemplars: [exemplar], unknown }),
    ])
  })

  it("counts histograms after samples, and strips them the same way", () => {
    const strip = rule("s", ["pod"])
    const applied = applyVerdict(request(h), verdict([2], [1], [strip]))
    expect(applied.datapoints).toBe(3)
    expect(applied.request.timeseries).toEqual([
      { ...h, histograms: [histogram] },
      series({ __name__: "h" }, [], { histograms: [histogram] }),
    ])
    const dropped = applyVerdict(request(h), verdict([0], [0], [strip]))
    expect(dropped.request.timeseries).toEqual([])
    expect(dropped.datapoints).toBe(0)
  })

  it("leaves a series whole when strip is set but it has none of the labels", () => {
    const applied = applyVerdict(request(b), verdict([1], [1], [rule("s", ["zone"])]))
    expect(applied.request.timeseries[0]).toBe(b)
    expect(applied.datapoints).toBe(2)
  })

  it("always passes a series without datapoints (exemplars only)", () => {
    const e = series({ __name__: "e" }, [], { exemplars: [exemplar] })
    const req = request(e, b)
    expect(applyVerdict(req, verdict([0, 2])).request).toBe(req)
    const applied = applyVerdict(req, verdict([0, 0]))
    expect(applied.request.timeseries).toEqual([e])
    expect(applied.datapoints).toBe(0)
  })

  it("for any request and verdict: counts match, labels are only removed, order is kept", () => {
    const caseArb = writeRequest.chain((req) =>
      fc.record({
        req: fc.constant(req),
        pass: fc.tuple(...req.timeseries.map((ts) => fc.integer({ min: 0, max: ts.samples.length + 2 }))),
        strip: fc.tuple(...req.timeseries.map(() => fc.constantFrom(0, 1))),
        stripLabels: fc.tuple(
          ...req.timeseries.map(() => fc.subarray(["__name__", "job", "instance", "le", ""])),
        ),
      }),
    )
    fc.assert(
      fc.property(caseArb, ({ req, pass, strip, stripLabels }) => {
        const rules = stripLabels.map((names) => rule("r", names))
        const { request: out, datapoints } = applyVerdict(req, verdict(pass, strip, rules))
        let expected = 0
        const expectedSeries: Array<{ labels: string; points: number }> = []
        req.timeseries.forEach((ts, i) => {
          const count = ts.samples.length + ts.histograms.length
          const passed = Math.min(pass[i] ?? 0, count)
          const names = stripLabels[i] ?? []
          const stripped = ts.labels.filter((l) => !names.includes(l.name))
          const key = (labels: typeof ts.labels) => JSON.stringify(labels)
          if (count === 0 || passed === count) {
            expectedSeries.push({ labels: key(ts.labels), points: count })
            expected += count
          } else if (strip[i] === 1 && stripped.length === ts.labels.length) {
            expectedSeries.push({ labels: key(ts.labels), points: count })
            expected += count
          } else {
            if (passed > 0) expectedSeries.push({ labels: key(ts.labels), points: passed })
            if (strip[i] === 1) expectedSeries.push({ labels: key(stripped), points: count - passed })
            expected += passed + (strip[i] === 1 ? count - passed : 0)
          }
        })
        expect(datapoints).toBe(expected)
        expect(
          out.timeseries.map((ts) => ({
            labels: JSON.stringify(ts.labels),
            points: ts.samples.length + ts.histograms.length,
          })),
        ).toEqual(expectedSeries)
        const allPass = req.timeseries.every(
          (ts, i) => (pass[i] ?? 0) >= ts.samples.length + ts.histograms.length,
        )
        if (allPass) expect(out).toBe(req)
      }),
      { numRuns: 500 },
    )
  })
})
