import { Either } from "effect"
import { describe, expect, it } from "vitest"
import {
  encodeRetryInfo,
  encodeRpcStatus,
  encodeRpcStatusJson,
  GrpcCode,
  RETRY_INFO_TYPE_URL,
  retryDelayMs,
  retryInfoDetail,
} from "../../../src/protocols/otlp/status.js"
import { decodeRpcStatus } from "../../support/rpc-status.js"

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex")

describe("google.rpc.Status and RetryInfo", () => {
  it("encodes RetryInfo{retry_delay: Duration{seconds, nanos}} per the field numbers", () => {
    // 0a 08 { 08 01 (seconds 1)  10 80cab5ee01 (nanos 500000000) }
    expect(hex(encodeRetryInfo(1_500))).toBe("0a0808011080cab5ee01")
    expect(hex(encodeRetryInfo(30_000))).toBe("0a02081e")
    expect(hex(encodeRetryInfo(0))).toBe("0a00")
    expect(hex(encodeRetryInfo(-5))).toBe("0a00")
  })

  it("round-trips a Status with a RetryInfo detail", () => {
    const status = {
      code: GrpcCode.RESOURCE_EXHAUSTED,
      message: "slow down",
      details: [retryInfoDetail(2_250)],
    }
    const bytes = encodeRpcStatus(status)
    const back = decodeRpcStatus(bytes)
    const detail = status.details[0]
    expect(back).toEqual(
      Either.right({
        ...status,
        details: [{ typeUrl: detail?.typeUrl, value: Uint8Array.from(detail?.value ?? []) }],
      }),
    )
    if (Either.isRight(back)) {
      expect(back.right.details[0]?.typeUrl).toBe(RETRY_INFO_TYPE_URL)
      expect(retryDelayMs(back.right)).toBe(2_250)
    }
    expect(retryDelayMs({ code: 8, message: "", details: [] })).toBeUndefined()
  })

  it("writes the JSON form of an OTLP/HTTP error body", () => {
    expect(
      JSON.parse(encodeRpcStatusJson({ code: 14, message: "overloaded", details: [retryInfoDetail(1_500)] })),
    ).toEqual({
      code: 14,
      message: "overloaded",
      details: [{ "@type": RETRY_INFO_TYPE_URL, retryDelay: "1.5s" }],
    })
    expect(encodeRpcStatusJson({ code: 0, message: "bad", details: [] })).toBe('{"message":"bad"}')
  })

  it("rejects a malformed Status without throwing", () => {
    expect(Either.isLeft(decodeRpcStatus(Buffer.from("1a05", "hex")))).toBe(true)
  })
})
