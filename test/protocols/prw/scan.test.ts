import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { BatchVerdict } from "../../../src/limits/batch.js"
import { fingerprintSeries } from "../../../src/limits/fingerprint.js"
import { type CompiledRule, NO_ADVANCED_KEYS } from "../../../src/limits/rules.js"
import { applyVerdict } from "../../../src/protocols/prw/adapter.js"
import { encodeWriteRequest } from "../../../src/protocols/prw/codec.js"
import { decodeBody } from "../../../src/protocols/prw/decode-pool.js"
import type { PrwDecodeError } from "../../../src/protocols/prw/errors.js"
import { prwAdapter, prwEncoder } from "../../../src/protocols/prw/protocol.js"
import {
  applyScannedVerdict,
  ScanArena,
  type ScannedWriteRequest,
  scanBuffers,
  scanWriteRequest,
} from "../../../src/protocols/prw/scan.js"
import { compressBody, decompressBody } from "../../../src/protocols/prw/snappy.js"
import type { Label, TimeSeries, WriteRequest } from "../../../src/protocols/prw/types.js"
import { joinBytes } from "../../../src/wire/bytes.js"
import { decodeWriteRequest, toSeriesBatch } from "../../support/prw.js"
import { anyLabels, comparable, writeRequest } from "./arbitraries.js"

const mustDecode = (bytes: Uint8Array): WriteRequest => Either.getOrThrow(decodeWriteRequest(bytes))
const mustScan = (bytes: Uint8Array): ScannedWriteRequest => Either.getOrThrow(scanWriteRequest(bytes))

/** Senders sort labels by name; the arbitrary request sorts some of its series, as senders do. */
const sortedLabels = (series: TimeSeries): TimeSeries => ({
  ...series,
  labels: [...series.labels].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
})
const request = writeRequest.chain((req) =>
  fc
    .array(fc.boolean(), { minLength: req.timeseries.length, maxLength: req.timeseries.length })
    .map((sort) => ({
      ...req,
      timeseries: req.timeseries.map((ts, i) => (sort[i] ? sortedLabels(ts) : ts)),
    })),
)

/** Plain ASCII series as senders send them: `__name__` and sorted labels (the fast path). */
const asciiText = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,10}$/)
const senderRequest: fc.Arbitrary<WriteRequest> = fc
  .array(
    fc.record({
      name: asciiText,
      labels: fc.dictionary(asciiText, fc.oneof(fc.constant(""), fc.string({ maxLength: 10 })), {
        maxKeys: 6,
      }),
      samples: fc.nat({ max: 3 }),
    }),
    { maxLength: 8 },
  )
  .map((series) => ({
    timeseries: series.map((s) => ({
      labels: [
        { name: "__name__", value: s.name },
        ...Object.keys(s.labels)
          .filter((k) => k !== "__name__")
          .sort()
          .map((k) => ({ name: k, value: s.labels[k] as string })),
      ].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      samples: Array.from({ length: s.samples }, (_, i) => ({ value: i, timestamp: i })),
      exemplars: [],
      histograms: [],
      unknown: [],
    })),
    metadata: [],
    unknown: [],
  }))

const rule = (stripLabels: ReadonlyArray<string>): CompiledRule => ({
  name: "r",
  metricName: undefined,
  metricNameSource: undefined,
  metricNamePrefix: "",
  labels: [],
  groupBy: [],
  maxCardinality: 0,
  maxDatapointsRate: 0,
  action: "strip_labels",
  sampleRate: 1,
  stripLabels,
  ...NO_ADVANCED_KEYS,
})

describe("scanWriteRequest: the decoder's view without decoding", () => {
  const agreesWithDecode = (req: WriteRequest) => {
    const bytes = encodeWriteRequest(req)
    const scanned = mustScan(bytes)
    const decoded = toSeriesBatch(mustDecode(bytes))
    expect(scanned.length).toBe(decoded.length)
    expect(Array.from(scanned.datapoints)).toEqual(Array.from(decoded.datapoints))
    const fp = new Uint32Array(2)
    for (let i = 0; i < decoded.length; i++) {
      expect(scanned.nameOf(i)).toBe(decoded.names[i])
      expect(scanned.labelsOf(i)).toEqual(decoded.labels[i])
      fingerprintSeries(decoded.names[i] as string, decoded.labels[i] as ReadonlyArray<string>, fp)
      expect([scanned.hi[i], scanned.lo[i]]).toEqual([fp[0], fp[1]])
    }
  }

  it("law: series, datapoints, names, labels and fingerprints equal the decoder's (any request)", () => {
    fc.assert(fc.property(request, agreesWithDecode), { numRuns: 500 })
  })

  it("law: the same for requests as senders make them (fingerprints from the label bytes)", () => {
    fc.assert(fc.property(senderRequest, agreesWithDecode), { numRuns: 500 })
  })

  const sameOutcome = (bytes: Uint8Array) => {
    const scanned = scanWriteRequest(bytes)
    const decoded = decodeWriteRequest(bytes)
    expect(Either.isLeft(scanned)).toBe(Either.isLeft(decoded))
    if (Either.isLeft(scanned) && Either.isLeft(decoded))
      expect(scanned.left.reason).toBe(decoded.left.reason)
  }

  it("refuses invalid UTF-8 in every name and value a label holds, in any field order, also one a later field replaces", () => {
    const series = (label: ReadonlyArray<number>) => {
      const name = [0x0a, 0x0d, 0x0a, 0x08, ...Buffer.from("__name__"), 0x12, 0x01, 0x6d]
      const payload = [...name, 0x0a, label.length, ...label]
      return Uint8Array.from([0x0a, payload.length, ...payload])
    }
    for (const label of [
      [0x12, 0x01, 0xff, 0x0a, 0x01, 0x6e], // the value first
      [0x12, 0x01, 0xff, 0x12, 0x01, 0x61, 0x0a, 0x01, 0x6e], // a bad value, then a good one
      [0x0a, 0x01, 0xff, 0x0a, 0x01, 0x6e, 0x12, 0x01, 0x61], // a bad name, then a good one
      [0x0a, 0x01, 0x6e, 0x12, 0x02, 0xc3, 0x41], // name then value, the value cut short
    ]) {
      const bytes = series(label)
      const scanned = scanWriteRequest(bytes)
      const decoded = decodeWriteRequest(bytes)
      if (Either.isRight(scanned) || Either.isRight(decoded))
        expect.fail(`accepted ${Buffer.from(label).toString("hex")}`)
      expect(scanned.left.reason).toMatch(/^invalid UTF-8 in a label at byte \d+$/)
      expect(decoded.left.reason).toBe(scanned.left.reason)
    }
    // The same labels with valid text are accepted.
    expect(mustScan(series([0x12, 0x01, 0x61, 0x0a, 0x01, 0x6e])).labelsOf(0)).toEqual(["n", "a"])
  })

  it("law: rejects exactly what the decoder rejects, with the same reason (arbitrary bytes)", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), sameOutcome), { numRuns: 2_000 })
  })

  it("law: the same for mutated and truncated valid encodings", () => {
    const mutation = fc.record({
      kind: fc.constantFrom("set", "insert", "delete", "truncate"),
      at: fc.nat(),
      byte: fc.integer({ min: 0, max: 255 }),
    })
    fc.assert(
      fc.property(request, fc.array(mutation, { minLength: 1, maxLength: 4 }), (req, mutations) => {
        const bytes = Array.from(encodeWriteRequest(req))
        for (const { kind, at, byte } of mutations) {
          const i = bytes.length === 0 ? 0 : at % (bytes.length + (kind === "insert" ? 1 : 0))
          if (kind === "set" && bytes.length > 0) bytes[i] = byte
          else if (kind === "insert") bytes.splice(i, 0, byte)
          else if (kind === "delete") bytes.splice(i, 1)
          else bytes.length = i
        }
        sameOutcome(Uint8Array.from(bytes))
      }),
      { numRuns: 2_000 },
    )
  })
})

describe("applyScannedVerdict: the verdict applied to bytes", () => {
  const cases = fc.oneof(request, senderRequest).chain((req) =>
    fc.record({
      req: fc.constant(req),
      pass: fc.tuple(
        ...req.timeseries.map((ts) =>
          fc.oneof(
            fc.constant(ts.samples.length + ts.histograms.length),
            fc.integer({ min: 0, max: ts.samples.length + ts.histograms.length }),
          ),
        ),
      ),
      strip: fc.tuple(...req.timeseries.map(() => fc.constantFrom(0, 1))),
      stripLabels: fc.tuple(
        // Not __name__: a rule cannot strip it (limits.yaml refuses it), and without it a series is invalid.
        ...req.timeseries.map(() => fc.subarray(["job", "instance", "le", ""])),
      ),
    }),
  )

  const verdictOf = (
    pass: ReadonlyArray<number>,
    strip: ReadonlyArray<number>,
    stripLabels: ReadonlyArray<ReadonlyArray<string>>,
  ): BatchVerdict => ({
    pass: Uint32Array.from(pass),
    strip: Uint8Array.from(strip),
    rule: stripLabels.map(rule),
  })

  it("law: forwards what applyVerdict forwards from the decoded request, datapoint for datapoint", () => {
    fc.assert(
      fc.property(cases, ({ req, pass, strip, stripLabels }) => {
        const bytes = encodeWriteRequest(req)
        const verdict = verdictOf(pass, strip, stripLabels)
        const fromBytes = applyScannedVerdict(mustScan(bytes), verdict)
        const fromObjects = applyVerdict(mustDecode(bytes), verdict)
        expect(fromBytes.datapoints).toBe(fromObjects.datapoints)
        expect(comparable(mustDecode(fromBytes.request))).toEqual(comparable(fromObjects.request))
        // Everything passes: the body itself goes on, not a copy.
        const counts = (req.timeseries as ReadonlyArray<TimeSeries>).map(
          (ts) => ts.samples.length + ts.histograms.length,
        )
        if (pass.every((p, i) => p >= (counts[i] as number))) expect(fromBytes.request).toBe(bytes)
      }),
      { numRuns: 1_000 },
    )
  })

  it("law: the adapter buffers a snappy block of what applyVerdict forwards; the body as it came, the same bytes, when everything passes", () => {
    fc.assert(
      fc.property(cases, ({ req, pass, strip, stripLabels }) => {
        const bytes = encodeWriteRequest(req)
        const verdict = verdictOf(pass, strip, stripLabels)
        const body = compressBody(bytes)
        const scan = Either.getOrThrow(decodeBody(body, 1 << 24))
        const out = prwAdapter.applyVerdict(scan, verdict)
        const fromObjects = applyVerdict(mustDecode(bytes), verdict)
        expect(out.datapoints).toBe(fromObjects.datapoints)
        const forwarded = Either.getOrThrow(decompressBody(out.request, 1 << 24))
        expect(comparable(mustDecode(Uint8Array.from(forwarded)))).toEqual(comparable(fromObjects.request))
        const counts = (req.timeseries as ReadonlyArray<TimeSeries>).map(
          (ts) => ts.samples.length + ts.histograms.length,
        )
        if (pass.every((p, i) => p >= (counts[i] as number))) expect(out.request).toBe(scan.wire)
      }),
      { numRuns: 500 },
    )
  })

  it("law: the exporter's join of buffered requests (snappy blocks, as the adapter buffers them) is their merge", () => {
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 4 }), (reqs) => {
        const parts = reqs.map((r) => compressBody(encodeWriteRequest(r)))
        const body = Either.getOrThrow(decompressBody(joinBytes(prwEncoder.encode(parts).body), 1 << 24))
        const merged = mustDecode(Uint8Array.from(body))
        expect(comparable(merged)).toEqual(
          comparable({
            timeseries: reqs.flatMap((r) =>
              r.timeseries.map(
                (ts) =>
                  mustDecode(encodeWriteRequest({ ...r, timeseries: [ts], metadata: [], unknown: [] }))
                    .timeseries[0] as TimeSeries,
              ),
            ),
            metadata: reqs.flatMap((r) => r.metadata),
            unknown: reqs.flatMap((r) => r.unknown),
          }),
        )
      }),
      { numRuns: 300 },
    )
  })
})

describe("label sets a receiver refuses (Prometheus drops such series; its storage answers 500)", () => {
  const body = (labels: ReadonlyArray<Label>): Uint8Array =>
    encodeWriteRequest({
      timeseries: [
        { labels: [], samples: [{ value: 1, timestamp: 1 }], exemplars: [], histograms: [], unknown: [] },
      ].map((ts) => ({ ...ts, labels })),
      metadata: [],
      unknown: [],
    })
  const refused = (labels: ReadonlyArray<Label>, reason: string) => {
    const results: ReadonlyArray<Either.Either<unknown, PrwDecodeError>> = [
      scanWriteRequest(body(labels)),
      decodeWriteRequest(body(labels)),
    ]
    for (const result of results) {
      if (Either.isRight(result)) throw new Error(`accepted ${JSON.stringify(labels)}`)
      expect(result.left.kind).toBe("bad_labels")
      expect(result.left.reason).toBe(reason)
      expect(result.left.message).toBe(`invalid labels: ${reason}`)
    }
  }
  const l = (name: string, value: string): Label => ({ name, value })

  it("refuses a repeated label name, sorted or not, ASCII or not, also __name__", () => {
    refused([l("__name__", "m"), l("a", "1"), l("a", "2")], 'series at byte 2: duplicate label name "a"')
    refused([l("__name__", "m"), l("a", "1"), l("a", "")], 'series at byte 2: duplicate label name "a"')
    refused(
      [l("b", "1"), l("__name__", "m"), l("a", "1"), l("b", "2")],
      'series at byte 2: duplicate label name "b"',
    )
    refused([l("__name__", "m"), l("é", "1"), l("é", "2")], 'series at byte 2: duplicate label name "é"')
    refused([l("__name__", "m"), l("__name__", "n")], 'series at byte 2: duplicate label name "__name__"')
  })

  it("refuses an empty label set, a missing or empty __name__, and an empty label name", () => {
    refused([], "series at byte 2: no metric name (__name__)")
    refused([l("a", "1")], "series at byte 2: no metric name (__name__)")
    refused([l("__name__", ""), l("a", "1")], "series at byte 2: empty metric name (__name__)")
    refused([l("__name__", "m"), l("", "1")], "series at byte 2: a label has an empty name")
    refused([l("", ""), l("__name__", "m")], "series at byte 2: a label has an empty name")
  })

  it("accepts labels with an empty value (an absent label)", () => {
    const labels = [l("__name__", "m"), l("a", ""), l("b", "1")]
    expect(mustScan(body(labels)).length).toBe(1)
    expect(mustDecode(body(labels)).timeseries[0]?.labels).toEqual(labels)
  })

  /** The reference: what Prometheus' `labels.IsValid` and `HasDuplicateLabelNames` accept. */
  const valid = (labels: ReadonlyArray<Label>): boolean =>
    labels.every((x) => x.name !== "") &&
    new Set(labels.map((x) => x.name)).size === labels.length &&
    labels.some((x) => x.name === "__name__" && x.value !== "")

  it("law: scan and decode agree on any label sets, and accept exactly the valid ones", () => {
    fc.assert(
      fc.property(
        fc.array(anyLabels, { maxLength: 4 }),
        fc.array(fc.boolean(), { maxLength: 4 }),
        (sets, sort) => {
          const req: WriteRequest = {
            timeseries: sets.map((labels, i) => ({
              labels:
                sort[i] === true
                  ? [...labels].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
                  : labels,
              samples: [{ value: i, timestamp: i }],
              exemplars: [],
              histograms: [],
              unknown: [],
            })),
            metadata: [],
            unknown: [],
          }
          const bytes = encodeWriteRequest(req)
          const scanned = scanWriteRequest(bytes)
          const decoded = decodeWriteRequest(bytes)
          expect(Either.isRight(scanned)).toBe(req.timeseries.every((ts) => valid(ts.labels)))
          expect(Either.isRight(decoded)).toBe(Either.isRight(scanned))
          if (Either.isLeft(scanned) && Either.isLeft(decoded)) {
            expect(scanned.left.kind).toBe("bad_labels")
            expect(scanned.left.reason).toBe(decoded.left.reason)
          }
        },
      ),
      { numRuns: 2_000 },
    )
  })
})

describe("ScanArena: scanning into the arrays of earlier requests", () => {
  /** Everything a scan tells the limits engine and the exporter. */
  const seen = (s: ScannedWriteRequest) => ({
    length: s.length,
    fieldCount: s.fieldCount,
    arrays: [
      s.fieldStarts,
      s.fieldEnds,
      s.fieldSeries,
      s.payloadStarts,
      s.payloadEnds,
      s.datapoints,
      s.hi,
      s.lo,
    ].map((a) => Array.from(a)),
  })
  /** Buffers as earlier requests leave them: any size, any contents. */
  const leftovers = fc.array(
    fc.integer({ min: 0, max: 3000 }).chain((entries) =>
      fc.uint8Array({ minLength: 0, maxLength: 64 }).map((junk) => {
        const b = new Uint8Array(entries * 4)
        for (let i = 0; i < b.length; i++) b[i] = junk.length === 0 ? 0xff : (junk[i % junk.length] as number)
        return b.buffer
      }),
    ),
    { maxLength: 12 },
  )

  it("law: a scan into recycled buffers (any sizes, any contents) sees exactly what a fresh scan sees", () => {
    fc.assert(
      fc.property(request, leftovers, (req, buffers) => {
        const bytes = encodeWriteRequest(req)
        const arena = new ScanArena()
        for (const b of buffers) arena.give(b)
        const into = scanWriteRequest(bytes, undefined, undefined, arena)
        expect(Either.isRight(into)).toBe(true)
        expect(seen(Either.getOrThrow(into))).toStrictEqual(seen(mustScan(bytes)))
      }),
      { numRuns: 500 },
    )
  })

  it("law: scans recycled one after another each see what a fresh scan sees, in the buffers given back", () => {
    fc.assert(
      fc.property(fc.array(request, { minLength: 2, maxLength: 8 }), (reqs) => {
        const arena = new ScanArena()
        let given = new Set<ArrayBuffer>()
        for (const req of reqs) {
          const bytes = encodeWriteRequest(req)
          const scan = Either.getOrThrow(scanWriteRequest(bytes, undefined, undefined, arena))
          expect(seen(scan)).toStrictEqual(seen(mustScan(bytes)))
          // 8 arrays, each in a buffer of its own; under 256 entries nothing grows, so every one of
          // them is a buffer the previous scan gave back.
          const buffers = scanBuffers(scan)
          expect(buffers.length).toBe(8)
          if (given.size > 0 && scan.fieldCount < 256)
            for (const b of buffers) expect(given.has(b)).toBe(true)
          expect(arena.size).toBe(0)
          for (const b of buffers) arena.give(b)
          given = new Set(buffers)
        }
      }),
      { numRuns: 200 },
    )
  })

  it("keeps at most 64 buffers, none over 256 KB and none empty (a buffer handed over elsewhere)", () => {
    const arena = new ScanArena()
    arena.give(new ArrayBuffer(0))
    arena.give(new ArrayBuffer((256 << 10) + 4))
    expect(arena.size).toBe(0)
    for (let i = 0; i < 70; i++) arena.give(new ArrayBuffer(4096))
    expect(arena.size).toBe(64)
    expect(arena.takeUpTo(10)).toHaveLength(10)
    expect(arena.size).toBe(54)
  })

  it("lets go of buffers too small to start a scan in, and gives out the next large enough one", () => {
    const arena = new ScanArena()
    const large = new ArrayBuffer(4096)
    arena.give(large)
    arena.give(new ArrayBuffer(64))
    expect(arena.take(1024)).toBe(large)
    expect(arena.size).toBe(0)
    expect(arena.take(1024)).toBeUndefined()
  })
})
