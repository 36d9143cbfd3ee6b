import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeOtlpJson, encodeOtlpResponseJson } from "../../../src/protocols/otlp/json.js"
import { decodeOtlpProtobuf, encodeOtlpProtobuf } from "../../../src/protocols/otlp/protobuf.js"
import type { ExportMetricsServiceRequest } from "../../../src/protocols/otlp/types.js"
import { encodeOtlpJson } from "../../support/otlp-json.js"
import { makeArbitraries } from "./arbitraries.js"

const NUM_RUNS = 300
const { request } = makeArbitraries({ unknown: false })

const decodeOk = (input: string | Uint8Array): ExportMetricsServiceRequest => {
  const r = decodeOtlpJson(input)
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}

const decodeErr = (input: string | Uint8Array): string => {
  const r = decodeOtlpJson(input)
  if (Either.isRight(r)) throw new Error("decoded")
  expect(r.left.kind).toBe("bad_json")
  return r.left.message
}

/** The OTLP/JSON example of a sum, as the spec's examples write it (numbers and strings mixed). */
const EXAMPLE = `{
  "resourceMetrics": [{
    "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": "my.service" } }] },
    "scopeMetrics": [{
      "scope": { "name": "my.library", "version": "1.0.0",
                 "attributes": [{ "key": "my.scope.attribute", "value": { "stringValue": "some scope attribute" } }] },
      "metrics": [{
        "name": "my.counter", "unit": "1", "description": "I am a Counter",
        "sum": {
          "aggregationTemporality": 1, "isMonotonic": true,
          "dataPoints": [{
            "asDouble": 5, "startTimeUnixNano": "1544712660300000000", "timeUnixNano": 1544712660300000001,
            "attributes": [{ "key": "my.counter.attr", "value": { "stringValue": "some value" } }],
            "exemplars": [{ "asInt": "-3", "timeUnixNano": "1544712660300000000",
                            "spanId": "EEE19B7EC3C1B174", "traceId": "5B8EFFF798038103D269B633813FC60C" }],
            "someFutureField": { "x": 1 }
          }]
        }
      }]
    }]
  }]
}`

describe("OTLP/JSON codec", () => {
  it("round-trips arbitrary requests of every metric kind, exactly (NaN, ±Inf, -0, 64-bit values)", () => {
    fc.assert(
      fc.property(request, (req) => {
        const text = encodeOtlpJson(req)
        expect(decodeOk(text)).toEqual(req)
        expect(decodeOk(Buffer.from(text))).toEqual(req)
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it("agrees with the protobuf codec", () => {
    fc.assert(
      fc.property(request, (req) => {
        const viaJson = decodeOk(encodeOtlpJson(req))
        const viaProto = decodeOtlpProtobuf(encodeOtlpProtobuf(req))
        expect(viaProto).toEqual(Either.right(viaJson))
      }),
      { numRuns: 100 },
    )
  })

  it("decodes the spec's encoding: camelCase, int64 as string or number (exactly), hex ids, unknown keys ignored", () => {
    const req = decodeOk(EXAMPLE)
    const rm = req.resourceMetrics[0]
    expect(rm?.resource?.attributes).toEqual([
      { key: "service.name", value: { type: "string", value: "my.service" } },
    ])
    const sm = rm?.scopeMetrics[0]
    expect(sm?.scope).toEqual({
      name: "my.library",
      version: "1.0.0",
      attributes: [{ key: "my.scope.attribute", value: { type: "string", value: "some scope attribute" } }],
      droppedAttributesCount: 0,
    })
    expect(sm?.metrics[0]).toEqual({
      name: "my.counter",
      description: "I am a Counter",
      unit: "1",
      metadata: [],
      data: {
        type: "sum",
        aggregationTemporality: 1,
        isMonotonic: true,
        dataPoints: [
          {
            attributes: [{ key: "my.counter.attr", value: { type: "string", value: "some value" } }],
            startTimeUnixNano: 1544712660300000000n,
            // a bare number of 19 digits, still exact
            timeUnixNano: 1544712660300000001n,
            value: { type: "double", value: 5 },
            exemplars: [
              {
                filteredAttributes: [],
                timeUnixNano: 1544712660300000000n,
                value: { type: "int", value: -3n },
                spanId: new Uint8Array(Buffer.from("eee19b7ec3c1b174", "hex")),
                traceId: new Uint8Array(Buffer.from("5b8efff798038103d269b633813fc60c", "hex")),
              },
            ],
            flags: 0,
          },
        ],
      },
    })
  })

  it("encodes int64 as decimal strings, enums as integers, ids as hex, non-finite doubles as strings", () => {
    const req = decodeOk(EXAMPLE)
    const out = JSON.parse(encodeOtlpJson(req))
    const point = out.resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0]
    expect(point.timeUnixNano).toBe("1544712660300000001")
    expect(point.exemplars[0]).toEqual({
      timeUnixNano: "1544712660300000000",
      asInt: "-3",
      spanId: "eee19b7ec3c1b174",
      traceId: "5b8efff798038103d269b633813fc60c",
    })
    expect(out.resourceMetrics[0].scopeMetrics[0].metrics[0].sum.aggregationTemporality).toBe(1)
    const nan = encodeOtlpJson({
      resourceMetrics: [
        {
          schemaUrl: "",
          scopeMetrics: [
            {
              schemaUrl: "",
              metrics: [
                {
                  name: "x",
                  description: "",
                  unit: "",
                  metadata: [],
                  data: {
                    type: "gauge",
                    dataPoints: [
                      {
                        attributes: [
                          { key: "d", value: { type: "double", value: Number.NEGATIVE_INFINITY } },
                        ],
                        startTimeUnixNano: 0n,
                        timeUnixNano: 1n,
                        value: { type: "double", value: Number.NaN },
                        exemplars: [],
                        flags: 1,
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
    })
    expect(nan).toBe(
      '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[{"attributes":[{"key":"d","value":{"doubleValue":"-Infinity"}}],"timeUnixNano":"1","asDouble":"NaN","flags":1}]}}]}]}]}',
    )
  })

  it("accepts snake_case names, enum names, null as unset, numeric strings for doubles, a BOM", () => {
    const text = `\uFEFF{"resource_metrics":[{"scope_metrics":[{"metrics":[{"name":"h","description":null,
      "histogram":{"aggregation_temporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","data_points":[
        {"count":"3","sum":"1.5","bucket_counts":[1,"2"],"explicit_bounds":["Infinity"],"min":null,"time_unix_nano":7}]}}]}]}]}`
    const data = decodeOk(text).resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.data
    expect(data).toEqual({
      type: "histogram",
      aggregationTemporality: 2,
      dataPoints: [
        {
          attributes: [],
          startTimeUnixNano: 0n,
          timeUnixNano: 7n,
          count: 3n,
          sum: 1.5,
          bucketCounts: [1n, 2n],
          explicitBounds: [Number.POSITIVE_INFINITY],
          exemplars: [],
          flags: 0,
        },
      ],
    })
  })

  it("keeps big bare integers exact wherever they are, and leaves strings and doubles alone", () => {
    const text = `{"resourceMetrics":[{"resource":{"attributes":[
      {"key":"a:12345678901234567890","value":{"intValue":-9223372036854775808}},
      {"key":"b","value":{"doubleValue":12345678901234567890}},
      {"key":"c","value":{"doubleValue":1.2345678901234567e300}},
      {"key":"d","value":{"stringValue":"[,12345678901234567890"}}]}}]}`
    expect(decodeOk(text).resourceMetrics[0]?.resource?.attributes).toEqual([
      { key: "a:12345678901234567890", value: { type: "int", value: -9223372036854775808n } },
      { key: "b", value: { type: "double", value: Number("12345678901234567890") } },
      { key: "c", value: { type: "double", value: 1.2345678901234567e300 } },
      { key: "d", value: { type: "string", value: "[,12345678901234567890" } },
    ])
  })

  it("rejects bad shapes and values, naming the path", () => {
    expect(decodeErr("")).toMatch(/^invalid OTLP JSON: /)
    expect(decodeErr("[]")).toBe("invalid OTLP JSON: expected an object")
    expect(decodeErr('{"resourceMetrics":{}}')).toBe("invalid OTLP JSON: resourceMetrics: expected an array")
    expect(decodeErr('{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":5}]}]}]}')).toBe(
      "invalid OTLP JSON: resourceMetrics[0].scopeMetrics[0].metrics[0].name: expected a string",
    )
    expect(
      decodeErr(
        '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"timeUnixNano":"-1"}]}}]}]}]}',
      ),
    ).toBe(
      "invalid OTLP JSON: resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].timeUnixNano: integer -1 out of range",
    )
    expect(decodeErr('{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{},"sum":{}}]}]}]}')).toMatch(
      /both gauge and sum are set/,
    )
    expect(
      decodeErr(
        '{"resourceMetrics":[{"resource":{"attributes":[{"value":{"stringValue":"a","intValue":1}}]}}]}',
      ),
    ).toMatch(/both stringValue and intValue are set/)
    expect(
      decodeErr(
        '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"asInt":1.5}]}}]}]}]}',
      ),
    ).toMatch(/asInt: expected an integer, got 1.5/)
    expect(
      decodeErr(
        '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"exemplars":[{"spanId":"xyz"}]}]}}]}]}]}',
      ),
    ).toMatch(/spanId: expected an even number of hex digits/)
    expect(decodeErr(new Uint8Array([0x7b, 0xff, 0x7d]))).toBe("invalid OTLP JSON: body is not valid UTF-8")
  })

  it("bounds attribute value nesting", () => {
    const deep = `${'{"arrayValue":{"values":['.repeat(5_000)}{}${"]}}".repeat(5_000)}`
    expect(
      decodeErr(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"k","value":${deep}}]}}]}`),
    ).toMatch(/nested too deeply/)
    // Deeper than JSON.parse itself can go: still an error, not a throw.
    const bomb = `${"[".repeat(1_000_000)}${"]".repeat(1_000_000)}`
    expect(Either.isLeft(decodeOtlpJson(bomb))).toBe(true)
  })

  it("never throws on arbitrary text or JSON", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.string({ unit: "binary" })), (text) => {
        expect(Either.isEither(decodeOtlpJson(text))).toBe(true)
      }),
      { numRuns: 1_000 },
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(Either.isEither(decodeOtlpJson(bytes))).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it("never throws on valid requests with a subtree replaced by arbitrary JSON", () => {
    fc.assert(
      fc.property(request, fc.nat(), fc.jsonValue(), (req, pick, replacement) => {
        const doc = JSON.parse(encodeOtlpJson(req)) as unknown
        // Collect every (container, key) slot and replace one.
        const slots: Array<[Record<string | number, unknown>, string | number]> = []
        const walk = (v: unknown): void => {
          if (typeof v !== "object" || v === null) return
          for (const [k, child] of Object.entries(v)) {
            slots.push([v as Record<string, unknown>, Array.isArray(v) ? Number(k) : k])
            walk(child)
          }
        }
        walk(doc)
        const slot = slots[pick % Math.max(1, slots.length)]
        if (slot !== undefined) slot[0][slot[1]] = replacement
        const r = decodeOtlpJson(JSON.stringify(doc))
        if (Either.isRight(r)) expect(() => encodeOtlpJson(r.right)).not.toThrow()
        else expect(r.left.kind).toBe("bad_json")
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it("encodes the Export response", () => {
    expect(encodeOtlpResponseJson({})).toBe("{}")
    const partial = { partialSuccess: { rejectedDataPoints: 12n, errorMessage: "over the limit" } }
    const text = encodeOtlpResponseJson(partial)
    expect(text).toBe('{"partialSuccess":{"rejectedDataPoints":"12","errorMessage":"over the limit"}}')
  })
})
