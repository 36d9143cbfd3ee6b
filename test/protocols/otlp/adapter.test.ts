import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { BatchVerdict } from "../../../src/limits/batch.js"
import { fingerprintSeries } from "../../../src/limits/fingerprint.js"
import { type CompiledRule, NO_ADVANCED_KEYS } from "../../../src/limits/rules.js"
import {
  applyVerdict,
  countDataPoints,
  fingerprintDataPoints,
  toSeriesBatch,
} from "../../../src/protocols/otlp/adapter.js"
import { attributeText, flattenAttributes, mergeLabels } from "../../../src/protocols/otlp/attribute-text.js"
import type {
  AnyValue,
  ExportMetricsServiceRequest,
  KeyValue,
  Metric,
  MetricData,
  NumberDataPoint,
  ResourceMetrics,
  ScopeMetrics,
} from "../../../src/protocols/otlp/types.js"
import { makeArbitraries } from "./arbitraries.js"

// --- builders ---------------------------------------------------------------------------------

const s = (value: string): AnyValue => ({ type: "string", value })
const attrs = (o: Record<string, AnyValue | string>): KeyValue[] =>
  Object.entries(o).map(([key, v]) => ({ key, value: typeof v === "string" ? s(v) : v }))

const point = (a: Record<string, AnyValue | string>, value = 1): NumberDataPoint => ({
  attributes: attrs(a),
  startTimeUnixNano: 0n,
  timeUnixNano: 1700000000123456789n,
  value: { type: "double", value },
  exemplars: [],
  flags: 0,
})

const metric = (name: string, data: MetricData | undefined): Metric =>
  data === undefined
    ? { name, description: "", unit: "", metadata: [] }
    : { name, description: "", unit: "", metadata: [], data }

const gauge = (name: string, points: NumberDataPoint[]): Metric =>
  metric(name, { type: "gauge", dataPoints: points })

const scope = (name: string, metrics: Metric[], a: Record<string, string> = {}): ScopeMetrics => ({
  scope: { name, version: "1", attributes: attrs(a), droppedAttributesCount: 0 },
  metrics,
  schemaUrl: "",
})

const resource = (a: Record<string, AnyValue | string>, scopes: ScopeMetrics[]): ResourceMetrics => ({
  resource: { attributes: attrs(a), droppedAttributesCount: 0 },
  scopeMetrics: scopes,
  schemaUrl: "",
})

const rule = (name: string, stripLabels: string[]): CompiledRule => ({
  name,
  metricName: undefined,
  metricNameSource: undefined,
  metricNamePrefix: "",
  labels: [],
  maxDatapointsRate: 0,
  maxCardinality: 0,
  action: "strip_labels",
  groupBy: [],
  sampleRate: 1,
  stripLabels,
  ...NO_ADVANCED_KEYS,
})

const verdict = (
  pass: number[],
  strip: number[] = [],
  rules: Array<CompiledRule | undefined> = [],
): BatchVerdict => ({
  pass: Uint32Array.from(pass),
  strip: Uint8Array.from(pass.map((_, i) => strip[i] ?? 0)),
  rule: pass.map((_, i) => rules[i]),
})

/** Every kind of metric, two resources, a key clash between resource and point. */
const sample = (): ExportMetricsServiceRequest => ({
  resourceMetrics: [
    resource({ "service.name": "api", region: "eu", zone: "a" }, [
      scope("lib", [
        gauge("temp", [point({ zone: "b", room: "1" }, 20), point({ room: "2" }, 21)]),
        metric("requests", {
          type: "sum",
          aggregationTemporality: 2,
          isMonotonic: true,
          dataPoints: [point({ code: { type: "int", value: 200n } }, 5)],
        }),
        metric("no_data", undefined),
      ]),
      scope(
        "other",
        [
          metric("latency", {
            type: "histogram",
            aggregationTemporality: 2,
            dataPoints: [
              {
                attributes: attrs({ path: "/x" }),
                startTimeUnixNano: 1n,
                timeUnixNano: 2n,
                count: 3n,
                sum: 1.5,
                bucketCounts: [1n, 2n],
                explicitBounds: [1],
                exemplars: [],
                flags: 0,
              },
            ],
          }),
        ],
        { "scope.attr": "ignored" },
      ),
    ]),
    {
      scopeMetrics: [
        scope("lib2", [
          metric("size", {
            type: "exponentialHistogram",
            aggregationTemporality: 1,
            dataPoints: [
              {
                attributes: attrs({ ok: { type: "bool", value: true } }),
                startTimeUnixNano: 0n,
                timeUnixNano: 5n,
                count: 0n,
                scale: 3,
                zeroCount: 0n,
                flags: 0,
                exemplars: [],
                zeroThreshold: 0,
              },
            ],
          }),
          metric("rpc", {
            type: "summary",
            dataPoints: [
              {
                attributes: [],
                startTimeUnixNano: 0n,
                timeUnixNano: 5n,
                count: 2n,
                sum: 3,
                quantileValues: [{ quantile: 0.5, value: 1 }],
                flags: 0,
              },
            ],
          }),
        ]),
      ],
      schemaUrl: "",
    },
  ],
})

describe("attribute values as label text", () => {
  it("writes each kind canonically", () => {
    const cases: Array<[AnyValue, string]> = [
      [s("plain / ünïcode"), "plain / ünïcode"],
      [{ type: "bool", value: true }, "true"],
      [{ type: "bool", value: false }, "false"],
      [{ type: "int", value: -9223372036854775808n }, "-9223372036854775808"],
      [{ type: "int", value: 1700000000123456789n }, "1700000000123456789"],
      [{ type: "double", value: 1.5 }, "1.5"],
      [{ type: "double", value: 0.1 + 0.2 }, "0.30000000000000004"],
      [{ type: "double", value: 1e21 }, "1e+21"],
      [{ type: "double", value: -0 }, "0"],
      [{ type: "double", value: Number.NaN }, "NaN"],
      [{ type: "double", value: Number.POSITIVE_INFINITY }, "+Inf"],
      [{ type: "double", value: Number.NEGATIVE_INFINITY }, "-Inf"],
      [{ type: "bytes", value: new Uint8Array([0, 1, 2, 250]) }, "AAEC+g=="],
      [{ type: "empty" }, ""],
      [
        {
          type: "array",
          values: [
            s('a"b'),
            { type: "int", value: 12345678901234567890n },
            { type: "double", value: 2.5 },
            { type: "double", value: Number.POSITIVE_INFINITY },
            { type: "bool", value: false },
            { type: "empty" },
            { type: "bytes", value: new Uint8Array([255]) },
            { type: "array", values: [] },
          ],
        },
        '["a\\"b",12345678901234567890,2.5,"+Inf",false,null,"/w==",[]]',
      ],
      [
        { type: "kvlist", values: [...attrs({ z: "1", a: "2" }), { key: "z", value: s("dup") }] },
        '{"a":"2","z":"1"}',
      ],
    ]
    for (const [value, text] of cases) expect(attributeText(value)).toBe(text)
  })

  it("flattens key-sorted, first of a repeated key wins; merge lets the second list win", () => {
    const many = attrs(
      Object.fromEntries(
        Array.from({ length: 20 }, (_, i) => [`k${String(19 - i).padStart(2, "0")}`, `${i}`]),
      ),
    )
    expect(flattenAttributes(many).filter((_, i) => i % 2 === 0)).toEqual(
      Array.from({ length: 20 }, (_, i) => `k${String(i).padStart(2, "0")}`),
    )
    expect(flattenAttributes([...attrs({ b: "1", a: "2" }), { key: "b", value: s("3") }])).toEqual([
      "a",
      "2",
      "b",
      "1",
    ])
    expect(mergeLabels(["a", "1", "c", "3"], ["b", "2", "c", "x", "d", "4"])).toEqual([
      "a",
      "1",
      "b",
      "2",
      "c",
      "x",
      "d",
      "4",
    ])
    // Keys sort by UTF-16 code unit, as Array#sort does.
    expect(flattenAttributes(attrs({ b: "", B: "", é: "", _: "" })).filter((_, i) => i % 2 === 0)).toEqual([
      "B",
      "_",
      "b",
      "é",
    ])
  })
})

describe("toSeriesBatch", () => {
  it("lists every data point of every metric kind with resource + point labels (point wins, scope ignored)", () => {
    const batch = toSeriesBatch(sample())
    expect(batch.length).toBe(6)
    expect(batch.names).toEqual(["temp", "temp", "requests", "latency", "size", "rpc"])
    expect(batch.labels).toEqual([
      ["region", "eu", "room", "1", "service.name", "api", "zone", "b"],
      ["region", "eu", "room", "2", "service.name", "api", "zone", "a"],
      ["code", "200", "region", "eu", "service.name", "api", "zone", "a"],
      ["path", "/x", "region", "eu", "service.name", "api", "zone", "a"],
      ["ok", "true"],
      [],
    ])
    expect([...(batch.datapoints as Uint32Array)]).toEqual([1, 1, 1, 1, 1, 1])
    expect(countDataPoints(sample())).toBe(6)
  })

  it("is empty for an empty request", () => {
    const batch = toSeriesBatch({ resourceMetrics: [] })
    expect(batch.length).toBe(0)
    expect(batch.names).toEqual([])
    expect(batch.labels).toEqual([])
    expect(batch.datapoints).toEqual(new Uint32Array(0))
  })
})

describe("fingerprintDataPoints", () => {
  it("law: equals fingerprintSeries of every toSeriesBatch entry (shared, shadowed and empty attributes)", () => {
    const keys = fc.constantFrom("a", "b", "c", "service", "é", "")
    const values = fc.constantFrom("", "x", "y", "ü")
    const attrsArb = fc
      .array(fc.tuple(keys, values), { maxLength: 5 })
      .map((kvs) => kvs.map(([key, v]): KeyValue => ({ key, value: s(v) })))
    const req = fc.array(
      fc.tuple(
        fc.option(attrsArb, { nil: undefined }),
        fc.array(fc.tuple(fc.constantFrom("m", "n", ""), fc.array(attrsArb, { maxLength: 4 })), {
          maxLength: 3,
        }),
      ),
      { maxLength: 3 },
    )
    const fp = new Uint32Array(2)
    fc.assert(
      fc.property(req, (resources) => {
        const request: ExportMetricsServiceRequest = {
          resourceMetrics: resources.map(([res, metrics]) => ({
            ...(res === undefined ? {} : { resource: { attributes: res, droppedAttributesCount: 0 } }),
            scopeMetrics: [
              {
                metrics: metrics.map(([name, points]) =>
                  gauge(
                    name,
                    points.map((a) => ({ ...point({}), attributes: a })),
                  ),
                ),
                schemaUrl: "",
              },
            ],
            schemaUrl: "",
          })),
        }
        const batch = toSeriesBatch(request)
        const { hi, lo } = fingerprintDataPoints(request)
        expect(hi.length).toBe(batch.length)
        for (let i = 0; i < batch.length; i++) {
          fingerprintSeries(batch.nameOf(i), batch.labelsOf(i), fp)
          expect([hi[i], lo[i]]).toEqual([fp[0], fp[1]])
        }
      }),
      { numRuns: 500 },
    )
  })
})

describe("applyVerdict", () => {
  it("returns the very same request when everything passes (and in dry-run)", () => {
    const req = sample()
    const all = applyVerdict(req, verdict([1, 1, 1, 1, 1, 1]))
    expect(all.request).toBe(req)
    expect(all.datapoints).toBe(6)
    // Strip requested but nothing to strip: unchanged too.
    const noop = applyVerdict(req, verdict([1, 0, 1, 1, 1, 1], [0, 1], [undefined, rule("r", ["absent"])]))
    expect(noop.request).toBe(req)
    expect(noop.datapoints).toBe(6)
  })

  it("drops data points and removes what they leave empty, sharing the untouched parts", () => {
    const req = sample()
    // Drop temp#2, requests, and both points of the second resource.
    const { request, datapoints } = applyVerdict(req, verdict([1, 0, 0, 1, 0, 0]))
    expect(datapoints).toBe(2)
    const first = req.resourceMetrics[0] as ResourceMetrics
    const lib = first.scopeMetrics[0] as ScopeMetrics
    expect(request).toEqual({
      resourceMetrics: [
        {
          ...first,
          scopeMetrics: [
            {
              ...lib,
              metrics: [gauge("temp", [point({ zone: "b", room: "1" }, 20)]), metric("no_data", undefined)],
            },
            first.scopeMetrics[1],
          ],
        },
      ],
    })
    // Untouched parts are the same objects.
    expect(request.resourceMetrics[0]?.scopeMetrics[1]).toBe(first.scopeMetrics[1])
    expect(request.resourceMetrics[0]?.resource).toBe(first.resource)
    expect(request.resourceMetrics[0]?.scopeMetrics[0]?.metrics[1]).toBe(lib.metrics[2])
    expect(toSeriesBatch(request).length).toBe(datapoints)
  })

  it("drops everything down to an empty request", () => {
    const { request, datapoints } = applyVerdict(sample(), verdict([0, 0, 0, 0, 0, 0]))
    expect(datapoints).toBe(0)
    // The metric without data stays (nothing was removed from it), so its scope and resource stay too.
    expect(request.resourceMetrics).toHaveLength(1)
    expect(request.resourceMetrics[0]?.scopeMetrics).toHaveLength(1)
    expect(request.resourceMetrics[0]?.scopeMetrics[0]?.metrics.map((m) => m.name)).toEqual(["no_data"])
    const simple: ExportMetricsServiceRequest = {
      resourceMetrics: [resource({}, [scope("s", [gauge("g", [point({ a: "1" })])])])],
    }
    expect(applyVerdict(simple, verdict([0]))).toEqual({ request: { resourceMetrics: [] }, datapoints: 0 })
  })

  it("strips the rule's labels from data point attributes only", () => {
    const req = sample()
    const r = rule("strip-zone", ["zone", "room", "service.name"])
    const { request, datapoints } = applyVerdict(req, verdict([0, 1, 1, 1, 1, 1], [1], [r]))
    expect(datapoints).toBe(6)
    const temp = request.resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]
    // zone and room removed from the point; service.name is a resource attribute: stays.
    expect(temp?.data?.dataPoints[0]).toEqual({ ...point({}, 20) })
    expect(temp?.data?.dataPoints[1]).toBe(
      req.resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.data?.dataPoints[1],
    )
    // The resource value of "zone" shows through once the point's own is gone.
    expect(toSeriesBatch(request).labels[0]).toEqual(["region", "eu", "service.name", "api", "zone", "a"])
    expect(request.resourceMetrics[0]?.resource).toBe(req.resourceMetrics[0]?.resource)
  })

  it("without a rule (or strip 0) a violating data point is dropped; with a rule but no labels it passes as is", () => {
    const req = sample()
    expect(applyVerdict(req, verdict([0, 1, 1, 1, 1, 1], [1], [undefined])).datapoints).toBe(6)
    expect(applyVerdict(req, verdict([0, 1, 1, 1, 1, 1], [0], [rule("x", ["zone"])])).datapoints).toBe(5)
  })

  it("keeps entries the verdict does not cover", () => {
    const req = sample()
    expect(applyVerdict(req, verdict([0, 0])).datapoints).toBe(4)
  })

  it("agrees with toSeriesBatch on arbitrary requests and verdicts", () => {
    const { request } = makeArbitraries({ unknown: false })
    const decision = fc.array(
      fc.tuple(fc.boolean(), fc.boolean(), fc.array(fc.string({ maxLength: 2 }), { maxLength: 2 })),
      {
        maxLength: 60,
      },
    )
    fc.assert(
      fc.property(request, decision, (req, decisions) => {
        const before = toSeriesBatch(req)
        const n = before.length
        const fallback: readonly [boolean, boolean, string[]] = [true, false, []]
        const d = Array.from(
          { length: n },
          (_, i) => decisions[i % Math.max(1, decisions.length)] ?? fallback,
        )
        const v: BatchVerdict = {
          pass: Uint32Array.from(d.map(([p]) => (p ? 1 : 0))),
          strip: Uint8Array.from(d.map(([, st]) => (st ? 1 : 0))),
          rule: d.map(([, , labels]) => rule("r", labels)),
        }
        const { request: out, datapoints } = applyVerdict(req, v)
        const kept = d.map(([p, st]) => p || st)
        const after = toSeriesBatch(out)
        expect(after.length).toBe(datapoints)
        expect(datapoints).toBe(kept.filter(Boolean).length)
        expect(after.names).toEqual(before.names.filter((_, i) => kept[i]))
        if (kept.every(Boolean) && d.every(([p]) => p)) expect(out).toBe(req)
        // Points that passed outright keep their labels exactly.
        const passedLabels = before.labels.filter((_, i) => d[i]?.[0])
        const afterPassed = after.labels.filter((_, i) => d.filter((_, j) => kept[j])[i]?.[0])
        expect(afterPassed).toEqual(passedLabels)
      }),
      { numRuns: 200 },
    )
  })
})
