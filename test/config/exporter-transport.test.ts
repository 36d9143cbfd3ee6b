import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { decodeMainConfig } from "../../src/config/decode.js"
import { MAIN_DEFAULTS } from "../../src/config/main-schema.js"
import { planOf } from "../../src/export/outlet.js"

const decode = (text: string) => decodeMainConfig("config.yaml", new TextEncoder().encode(text))

const messageOf = (text: string): string => {
  const r = decode(text)
  if (Either.isRight(r)) throw new Error("expected the config to be refused")
  return r.left.message
}

describe("exporters.otlp.protocol and compression", () => {
  it("accepts http and grpc, none and gzip; defaults: http, gzip", () => {
    const r = decode(
      "exporters:\n  otlp:\n    endpoint: collector:4317\n    protocol: grpc\n    compression: gzip\n",
    )
    expect(Either.isRight(r)).toBe(true)
    if (Either.isLeft(r)) return
    const plan = planOf("otlp", r.right.spec, undefined, 1 << 20)
    expect(plan.transport).toBe("grpc")
    expect(plan.compression).toBe("gzip")
    expect(plan.source).toEqual({ _tag: "Static", endpoints: ["http://collector:4317"] })
    const none = planOf("otlp", {}, "http://c:4318/v1/metrics", 1 << 20)
    expect([none.transport, none.compression]).toEqual([
      MAIN_DEFAULTS.otlpTransport,
      MAIN_DEFAULTS.compression,
    ])
    expect([none.transport, none.compression]).toEqual(["http", "gzip"])
  })

  it("host:port is https:// when exporters.otlp.tls is set", () => {
    const r = decode(
      "exporters:\n  otlp:\n    endpoint: collector:4317\n    protocol: grpc\n    tls: {ca_file: /ca.crt}\n",
    )
    if (Either.isLeft(r)) throw new Error(r.left.message)
    expect(planOf("otlp", r.right.spec, undefined, 1 << 20).source).toEqual({
      _tag: "Static",
      endpoints: ["https://collector:4317"],
    })
  })

  it("refuses other values, with their position", () => {
    expect(messageOf("exporters:\n  otlp:\n    protocol: grpcs\n")).toMatch(
      /config\.yaml:3:\d+: exporters\.otlp\.protocol: must be "http" or "grpc"/,
    )
    expect(messageOf("exporters:\n  otlp:\n    compression: zstd\n")).toMatch(
      /config\.yaml:3:\d+: exporters\.otlp\.compression: must be "none" or "gzip"/,
    )
  })

  it("takes host:port only with protocol: grpc", () => {
    expect(messageOf("exporters:\n  otlp:\n    endpoint: collector:4317\n")).toMatch(
      /config\.yaml:3:\d+: exporters\.otlp\.endpoint: must be an http:\/\/ or https:\/\/ URL \(host:port only with protocol: grpc\)/,
    )
    expect(messageOf("exporters:\n  otlp:\n    endpoint: not a target\n    protocol: grpc\n")).toMatch(
      /config\.yaml:3:\d+: exporters\.otlp\.endpoint: must be an http:\/\/ or https:\/\/ URL/,
    )
  })

  it("has no protocol or compression for remote write (always snappy over HTTP)", () => {
    expect(messageOf("exporters:\n  prw:\n    compression: gzip\n")).toMatch(/exporters\.prw/)
    expect(messageOf("exporters:\n  prw:\n    protocol: grpc\n")).toMatch(/exporters\.prw/)
  })
})
