import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { type Command, parseCommandLine, RUN_FLAGS } from "../../src/cli/flags.js"

const runFlags = (args: ReadonlyArray<string>) => {
  const r = parseCommandLine(args)
  if (Either.isLeft(r)) throw new Error(r.left.message)
  if (r.right._tag !== "Run" && r.right._tag !== "Validate") throw new Error(`not run: ${r.right._tag}`)
  return r.right.flags
}
const usageError = (args: ReadonlyArray<string>): string => {
  const r = parseCommandLine(args)
  if (Either.isRight(r)) throw new Error(`expected a usage error, got ${JSON.stringify(r.right)}`)
  return r.left.reason
}

describe("parseCommandLine", () => {
  it("has the documented defaults", () => {
    const f = runFlags([])
    expect(f).toEqual({
      config: undefined,
      limitsConfig: undefined,
      limitsDryRun: undefined,
      grpcListen: ":4317",
      httpListen: ":4318",
      prwListen: ":9091",
      statsAddr: ":9090",
      exporterEndpoint: undefined,
      prwExporterEndpoint: undefined,
      reloadWatch: true,
      reloadPollIntervalMs: 0,
      reloadTriggerFile: undefined,
      reloadHttp: false,
      reloadAuthTokenFile: undefined,
      reloadDebounceMs: 250,
      reloadEventLog: undefined,
      configMaxBytes: 8 * 1024 * 1024,
      memoryLimit: undefined,
      logLevel: "info",
      statsLabels: [],
      statsMaxLabelCombinations: 10_000,
      mode: "standalone",
      cardinalityMode: "exact",
      cardinalityExpectedItems: 100_000,
      cardinalityFpRate: 0.01,
      cardinalityHllThreshold: 10_000,
    })
  })

  it("-stats-labels is a comma list; the numeric and choice flags refuse what they cannot use", () => {
    expect(runFlags(["-stats-labels", "service, env,,"]).statsLabels).toEqual(["service", "env"])
    expect(runFlags(["-stats-max-label-combinations=5"]).statsMaxLabelCombinations).toBe(5)
    expect(runFlags(["-cardinality-mode", "hybrid"]).cardinalityMode).toBe("hybrid")
    expect(runFlags(["-mode", "router"]).mode).toBe("router")
    expect(runFlags(["--mode=standalone"]).mode).toBe("standalone")
    for (const [flag, bad] of [
      ["-stats-max-label-combinations", "0"],
      ["-stats-max-label-combinations", "1.5"],
      ["-cardinality-mode", "fuzzy"],
      ["-cardinality-fp-rate", "1"],
      ["-cardinality-expected-items", "x"],
    ] as const) {
      const parsed = parseCommandLine([flag, bad])
      expect(Either.isLeft(parsed) && parsed.left.reason).toContain(flag)
    }
  })

  it("-config-max-bytes takes bytes or a binary unit; anything else is a usage error", () => {
    expect(runFlags(["-config-max-bytes", "1048576"]).configMaxBytes).toBe(1048576)
    expect(runFlags(["-config-max-bytes=512KiB"]).configMaxBytes).toBe(512 * 1024)
    expect(runFlags(["--config-max-bytes", "16MiB"]).configMaxBytes).toBe(16 * 1024 * 1024)
    expect(runFlags(["-config-max-bytes", "2M"]).configMaxBytes).toBe(2 * 1024 * 1024)
    for (const bad of ["0", "-1", "8 parsecs", "1.5MiB", ""]) {
      const parsed = parseCommandLine(["-config-max-bytes", bad])
      expect(Either.isLeft(parsed) && parsed.left.reason).toContain("-config-max-bytes")
    }
  })

  it("-memory-limit takes a size; absent it is undefined (then memory.limit_ratio decides)", () => {
    expect(runFlags([]).memoryLimit).toBeUndefined()
    expect(runFlags(["-memory-limit", "512MiB"]).memoryLimit).toBe(512 * 1024 * 1024)
    expect(runFlags(["--memory-limit=1G"]).memoryLimit).toBe(1024 ** 3)
    for (const bad of ["0", "lots", "", "0.5GiB"]) {
      const parsed = parseCommandLine(["-memory-limit", bad])
      expect(Either.isLeft(parsed) && parsed.left.reason).toContain("-memory-limit")
    }
  })

  it("accepts -name=value, -name value, --name=value and --name value alike", () => {
    for (const args of [
      ["-limits-config=a.yaml"],
      ["-limits-config", "a.yaml"],
      ["--limits-config=a.yaml"],
      ["--limits-config", "a.yaml"],
    ]) {
      expect(runFlags(args).limitsConfig).toBe("a.yaml")
    }
  })

  it("treats a boolean alone as true and accepts -flag=false", () => {
    expect(runFlags(["-limits-dry-run"]).limitsDryRun).toBe(true)
    expect(runFlags(["--limits-dry-run=false"]).limitsDryRun).toBe(false)
    expect(runFlags(["-reload-watch=false"]).reloadWatch).toBe(false)
    expect(runFlags([]).limitsDryRun).toBeUndefined()
  })

  it("lets an empty value turn a listener off", () => {
    expect(runFlags(["-grpc-listen="]).grpcListen).toBe("")
    expect(runFlags(["-prw-listen", ""]).prwListen).toBe("")
  })

  it("parses durations Prometheus-style", () => {
    expect(runFlags(["-reload-debounce=1s"]).reloadDebounceMs).toBe(1000)
    expect(runFlags(["-reload-poll-interval", "1m30s"]).reloadPollIntervalMs).toBe(90_000)
    expect(usageError(["-reload-debounce=soon"])).toBe(
      'invalid duration "soon" for flag -reload-debounce (e.g. 250ms, 10s, 1m)',
    )
  })

  it("selects subcommands; run is the default", () => {
    const tag = (args: Array<string>) => (Either.getOrThrow(parseCommandLine(args)) as Command)._tag
    expect(tag([])).toBe("Run")
    expect(tag(["run", "-limits-config", "x"])).toBe("Run")
    expect(tag(["validate", "-limits-config", "x"])).toBe("Validate")
    expect(
      Either.getOrThrow(
        parseCommandLine(["replay", "log.jsonl", "--verify", "--at", "2026-01-01T00:00:00Z"]),
      ),
    ).toEqual({
      _tag: "Replay",
      eventLog: "log.jsonl",
      verify: true,
      at: "2026-01-01T00:00:00Z",
      configMaxBytes: 8 * 1024 * 1024,
      memoryLimit: undefined,
    })
    expect(tag(["--help"])).toBe("Help")
    expect(tag(["validate", "-h"])).toBe("Help")
  })

  it("rejects what it does not know, with the reason an operator needs", () => {
    expect(usageError(["-bogus"])).toBe("flag provided but not defined: -bogus")
    expect(usageError(["--limits-config"])).toBe("flag needs an argument: -limits-config")
    expect(usageError(["-limits-dry-run=maybe"])).toBe(
      'invalid boolean value "maybe" for flag -limits-dry-run',
    )
    expect(usageError(["-log-level", "verbose"])).toBe(
      'invalid value "verbose" for flag -log-level (debug, info, warn, error)',
    )
    expect(usageError(["serve"])).toBe('unknown command "serve" (run, validate, replay, diff)')
    expect(usageError(["-limits-dry-run", "false"])).toBe('unexpected argument "false"')
    expect(usageError(["replay"])).toBe("replay needs exactly one argument: the event log file")
  })

  it("law: every flag of the table round-trips through every spelling", () => {
    const valued = RUN_FLAGS.filter((f) => f.kind === "string")
    fc.assert(
      fc.property(
        fc.constantFrom(...valued),
        fc.string({ minLength: 1 }).filter((s) => !s.startsWith("-")),
        fc.constantFrom("-", "--"),
        fc.boolean(),
        (flag, value, dashes, joined) => {
          const args = joined ? [`${dashes}${flag.name}=${value}`] : [`${dashes}${flag.name}`, value]
          const key = flag.name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
          expect((runFlags(args) as unknown as Record<string, unknown>)[key]).toBe(value)
        },
      ),
    )
  })

  it("law: no argv makes the parser throw", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string(), fc.constantFrom("-", "--", "-config", "--help", "run", "="))),
        (args) => {
          const r = parseCommandLine(args)
          expect(Either.isLeft(r) || Either.isRight(r)).toBe(true)
        },
      ),
    )
  })
})
