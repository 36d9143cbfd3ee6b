import { describe, expect, it } from "vitest"
import type { MainConfigSpec } from "../../src/config/main-schema.js"
import { restartOnlyChanges } from "../../src/reload/restart.js"

const tls = (cert: string, ca?: string) => ({
  receivers: { tls: { cert_file: cert, key_file: "k", ...(ca === undefined ? {} : { client_ca_file: ca }) } },
})

describe("restart_required: what a reload cannot apply", () => {
  it("exporters, buffer, limits.dry_run, receivers.auth, receivers.tls, the receivers' request limits and decoding threads, and shutdown_timeout reload; memory does not", () => {
    const start: MainConfigSpec = {}
    const now: MainConfigSpec = {
      limits: { dry_run: true },
      exporters: {
        prw: { endpoint: "http://a/api/v1/write" },
        queue: { path: "/q" },
      },
      buffer: { size: 5 },
      receivers: {
        auth: { bearer_token_file: "/t" },
        tls: { cert_file: "/c", key_file: "/k", client_ca_file: "/ca" },
        max_request_bytes: 10,
        max_decompressed_bytes: 20,
        max_datapoints_per_request: 30,
        max_elements_per_request: 40,
        decode_threads: 3,
      },
      memory: { limit_ratio: 0.5 },
      shutdown_timeout: 1_000,
    }
    expect(restartOnlyChanges(start, now)).toEqual(["memory.limit_ratio"])
  })

  it("receivers.tls reloads whole: other files, TLS turned on or off, mutual TLS turned on or off", () => {
    expect(restartOnlyChanges(tls("a"), tls("b"))).toEqual([])
    expect(restartOnlyChanges(tls("a", "ca1"), tls("b", "ca2"))).toEqual([])
    expect(restartOnlyChanges({}, tls("a"))).toEqual([])
    expect(restartOnlyChanges(tls("a"), {})).toEqual([])
    expect(restartOnlyChanges(tls("a"), tls("a", "ca"))).toEqual([])
    expect(restartOnlyChanges(tls("a", "ca"), tls("a"))).toEqual([])
    // Beside them, the one key that still needs a restart is reported.
    expect(restartOnlyChanges(tls("a"), { ...tls("b", "ca"), memory: { limit_ratio: 0.5 } })).toEqual([
      "memory.limit_ratio",
    ])
  })
})
