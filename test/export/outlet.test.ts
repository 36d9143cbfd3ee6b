import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, TestClock } from "effect"
import { type OutletPlan, openOutlet, planOf } from "../../src/export/outlet.js"
import { prwEncoder } from "../../src/protocols/prw/protocol.js"
import { makeShutdownClock } from "../../src/server/shutdown.js"
import * as Log from "../../src/telemetry/log.js"
import { Telemetry } from "../../src/telemetry/metrics.js"
import { DnsServer } from "../support/dns-server.js"
import { tempDir } from "../support/governor.js"

const quiet = Log.layer("error", () => {})

/** Lets fibers run and a loopback DNS answer arrive (real I/O), up to `tries` turns. */
const settle = (done: () => boolean, tries = 200) =>
  Effect.gen(function* () {
    for (let i = 0; i < tries && !done(); i++) {
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      yield* Effect.yieldNow()
    }
  })

const outlet = (plan: OutletPlan) =>
  Effect.gen(function* () {
    const telemetry = yield* Telemetry
    return yield* openOutlet(
      {
        protocol: "prw",
        encoder: prwEncoder,
        telemetry,
        shutdown: makeShutdownClock(1_000),
        log: (e) => Effect.runFork(Effect.provide(e, quiet)),
      },
      plan,
    )
  }).pipe(Effect.provide(Telemetry.test), Effect.provide(quiet))

const prw = (yaml: Record<string, unknown>) => planOf("prw", yaml as never, undefined, 1 << 20)

describe("the outlet's endpoints", () => {
  it.scoped(
    "a DNS name is resolved again every refresh_interval, on the clock: a new address joins the ring",
    () =>
      Effect.gen(function* () {
        const dns = yield* Effect.acquireRelease(
          Effect.promise(() => DnsServer.start({ "gov.outlet.test": ["127.0.0.2", "127.0.0.3"] })),
          (s) => Effect.promise(() => s.close()),
        )
        const o = yield* outlet(
          prw({
            exporters: {
              prw: {
                sharding: {
                  dns: { name: "gov.outlet.test", port: 9, refresh_interval: 30_000, server: dns.address },
                },
              },
            },
          }),
        )
        expect(o.endpoints()).toEqual(["http://127.0.0.2:9/api/v1/write", "http://127.0.0.3:9/api/v1/write"])
        dns.set("gov.outlet.test", ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        yield* TestClock.adjust(Duration.seconds(29))
        yield* settle(() => false, 20)
        // Not asked again before the interval.
        expect(dns.queries.get("gov.outlet.test")).toBe(2) // A and AAAA at start
        expect(o.endpoints()).toHaveLength(2)
        yield* TestClock.adjust(Duration.seconds(1))
        yield* settle(() => o.endpoints().length === 3)
        expect(o.endpoints()).toEqual([
          "http://127.0.0.2:9/api/v1/write",
          "http://127.0.0.3:9/api/v1/write",
          "http://127.0.0.4:9/api/v1/write",
        ])
        // An answer with no addresses keeps the endpoints as they are.
        dns.set("gov.outlet.test", [])
        yield* TestClock.adjust(Duration.seconds(30))
        yield* settle(() => (dns.queries.get("gov.outlet.test") ?? 0) >= 6)
        expect(o.endpoints()).toHaveLength(3)
      }),
  )

  it.scoped("configure swaps the endpoint set between two requests; with none, nothing can be taken", () =>
    Effect.gen(function* () {
      const a = "http://127.0.0.1:1/api/v1/write"
      const b = "http://127.0.0.1:2/api/v1/write"
      const o = yield* outlet(prw({ exporters: { prw: { endpoint: a } } }))
      expect(o.endpoints()).toEqual([a])
      expect(o.canTake(10, 100)).toBe(true)
      yield* o.configure(prw({ exporters: { prw: { sharding: { endpoints: [a, b] } } } }))
      expect(o.endpoints()).toEqual([a, b])
      yield* o.configure(prw({ exporters: { prw: { endpoint: b } } }))
      expect(o.endpoints()).toEqual([b])
      // No endpoint configured: count and discard (one discarding lane, no endpoint on the ring).
      yield* o.configure(prw({}))
      expect(o.endpoints()).toEqual([])
      expect(o.canTake(10, 100)).toBe(true)
    }),
  )

  it.scoped(
    "with the durable queue, an endpoint that comes back while its retired lane still drains gets a directory of its own",
    () =>
      Effect.gen(function* () {
        // Nothing listens on these ports: what is queued for them stays queued.
        const a = "http://127.0.0.1:1/api/v1/write"
        const b = "http://127.0.0.1:2/api/v1/write"
        const queue = { path: tempDir("mg-outlet-") }
        const o = yield* outlet(prw({ exporters: { queue, prw: { endpoint: a } } }))
        yield* o.configure(prw({ exporters: { queue, prw: { endpoint: b } } }))
        yield* o.configure(prw({ exporters: { queue, prw: { endpoint: a } } }))
        expect(o.endpoints()).toEqual([a])
      }),
  )

  it.scoped(
    "a reload whose exporter TLS files do not load changes nothing: the previous endpoints and settings stay",
    () =>
      Effect.gen(function* () {
        const a = "https://127.0.0.1:1/api/v1/write"
        const b = "https://127.0.0.1:2/api/v1/write"
        const o = yield* outlet(prw({ exporters: { prw: { endpoint: a } } }))
        yield* o.configure(
          prw({ exporters: { prw: { endpoint: b, tls: { ca_file: "/nonexistent/ca.crt" } } } }),
        )
        expect(o.endpoints()).toEqual([a])
        // A good reload afterwards applies.
        yield* o.configure(prw({ exporters: { prw: { endpoint: b } } }))
        expect(o.endpoints()).toEqual([b])
      }),
  )
})
