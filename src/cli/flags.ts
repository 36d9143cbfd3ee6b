import { Data, Either } from "effect"
import { parseDuration } from "../config/duration.js"
import { DEFAULT_CONFIG_MAX_BYTES } from "../config/load.js"

/**
 * The command line of docs/cli.md. Flags are accepted Go-style and GNU-style (`-name=value`,
 * `-name value`, `--name=value`, `--name value`); a boolean alone means true. Parsing is a pure
 * function from argv to either the parsed command or a `UsageError` (exit code 2).
 */

export type LogLevelName = "debug" | "info" | "warn" | "error"

export interface RunFlags {
  readonly config: string | undefined
  readonly limitsConfig: string | undefined
  /** Undefined when the flag was not given: then `limits.dry_run` in `-config` decides. */
  readonly limitsDryRun: boolean | undefined
  readonly grpcListen: string
  readonly httpListen: string
  readonly prwListen: string
  readonly statsAddr: string
  readonly exporterEndpoint: string | undefined
  readonly prwExporterEndpoint: string | undefined
  readonly reloadWatch: boolean
  readonly reloadPollIntervalMs: number
  readonly reloadTriggerFile: string | undefined
  readonly reloadHttp: boolean
  readonly reloadAuthTokenFile: string | undefined
  readonly reloadDebounceMs: number
  readonly reloadEventLog: string | undefined
  /** `-config-max-bytes`: a config or limits file larger than this is refused before it is read. */
  readonly configMaxBytes: number
  /** `-memory-limit`: undefined when not given (then `memory.limit_ratio` of the cgroup limit). */
  readonly memoryLimit: number | undefined
  readonly logLevel: LogLevelName
  /** `-stats-labels`: usage statistics by these labels; empty: none. */
  readonly statsLabels: ReadonlyArray<string>
  /** `-stats-max-label-combinations`: the bound of those statistics. */
  readonly statsMaxLabelCombinations: number
  /** `-mode`: `router` matches and routes but enforces nothing (the first of two tiers). */
  readonly mode: RunMode
  /** `-cardinality-mode`: how rules track their distinct series. */
  readonly cardinalityMode: CardinalityMode
  readonly cardinalityExpectedItems: number
  readonly cardinalityFpRate: number
  readonly cardinalityHllThreshold: number
}

export const RUN_MODES = ["standalone", "router"] as const
export type RunMode = (typeof RUN_MODES)[number]

export const CARDINALITY_MODES = ["exact", "bloom", "hybrid"] as const
export type CardinalityMode = (typeof CARDINALITY_MODES)[number]

export type Command =
  | { readonly _tag: "Run"; readonly flags: RunFlags }
  | { readonly _tag: "Validate"; readonly flags: RunFlags }
  | {
      readonly _tag: "Replay"
      readonly eventLog: string
      readonly verify: boolean
      readonly at: string | undefined
      readonly configMaxBytes: number
    }
  | {
      readonly _tag: "Diff"
      readonly old: string
      readonly new: string
      readonly statsAddr: string | undefined
      readonly configMaxBytes: number
    }
  | { readonly _tag: "Help"; readonly text: string }
  | { readonly _tag: "Version" }

/** A command line that cannot be run; printed with a usage hint, exit code 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly reason: string }> {
  override get message(): string {
    return `${this.reason}\nRun 'metrics-governor --help' for usage.`
  }
}

type Kind = "string" | "bool" | "duration" | "level" | "bytes" | "list" | "number" | "choice"

interface FlagSpec {
  readonly name: string
  readonly kind: Kind
  /** Shown by --help; `none` when the flag has no default. */
  readonly defaultText: string
  readonly help: string
}

export const RUN_FLAGS: ReadonlyArray<FlagSpec> = [
  { name: "config", kind: "string", defaultText: "none", help: "main config YAML (config.yaml)" },
  {
    name: "limits-config",
    kind: "string",
    defaultText: "none",
    help: "limits YAML (limits.yaml); none = no limits",
  },
  {
    name: "limits-dry-run",
    kind: "bool",
    defaultText: "false",
    help: "evaluate limits, drop nothing; overrides limits.dry_run in -config, also after every reload",
  },
  {
    name: "grpc-listen",
    kind: "string",
    defaultText: ":4317",
    help: "OTLP/gRPC receiver address; empty = off",
  },
  {
    name: "http-listen",
    kind: "string",
    defaultText: ":4318",
    help: "OTLP/HTTP receiver address (POST /v1/metrics)",
  },
  {
    name: "prw-listen",
    kind: "string",
    defaultText: ":9091",
    help: "Prometheus remote-write receiver address (POST /api/v1/write); empty = off",
  },
  {
    name: "stats-addr",
    kind: "string",
    defaultText: ":9090",
    help: "control server: /metrics, /live, /ready, /-/reload, /api/v1/status/*",
  },
  {
    name: "exporter-endpoint",
    kind: "string",
    defaultText: "none",
    help: "OTLP/HTTP URL OTLP traffic is forwarded to; none = count and discard",
  },
  {
    name: "prw-exporter-endpoint",
    kind: "string",
    defaultText: "none",
    help: "remote-write URL PRW traffic is forwarded to; none = count and discard",
  },
  {
    name: "reload-watch",
    kind: "bool",
    defaultText: "true",
    help: "watch the config files for content changes",
  },
  {
    name: "reload-poll-interval",
    kind: "duration",
    defaultText: "0s",
    help: "also re-hash the config files every interval; 0 = off",
  },
  {
    name: "reload-trigger-file",
    kind: "string",
    defaultText: "none",
    help: "a file whose modification (e.g. touch) forces a reload",
  },
  { name: "reload-http", kind: "bool", defaultText: "false", help: "enable POST /-/reload" },
  {
    name: "reload-auth-token-file",
    kind: "string",
    defaultText: "none",
    help: "bearer token required by POST /-/reload (re-read on change)",
  },
  {
    name: "reload-debounce",
    kind: "duration",
    defaultText: "250ms",
    help: "quiet time of the file watch before a reload (SIGHUP, touch and HTTP reload at once)",
  },
  {
    name: "reload-event-log",
    kind: "string",
    defaultText: "none",
    help: "append-only reload event log (JSON lines); config snapshots live beside it",
  },
  {
    name: "config-max-bytes",
    kind: "bytes",
    defaultText: "8MiB",
    help: "a config or limits file larger than this is refused (reload rejected) before it is read",
  },
  {
    name: "memory-limit",
    kind: "bytes",
    defaultText: "none: memory.limit_ratio (0.9) of the container's memory limit, if it has one",
    help: "stay under this much memory (e.g. 512MiB): heap, buffers and requests in flight are sized from it, and receivers push back near it",
  },
  { name: "log-level", kind: "level", defaultText: "info", help: "debug, info, warn, error" },
  {
    name: "stats-labels",
    kind: "list",
    defaultText: "none",
    help: "comma-separated labels: datapoints and series of all traffic by their values",
  },
  {
    name: "stats-max-label-combinations",
    kind: "number",
    defaultText: "10000",
    help: "most -stats-labels value combinations kept; the rest is counted as __other__",
  },
  {
    name: "mode",
    kind: "choice",
    defaultText: "standalone",
    help: "standalone: enforce the limits; router: match series against the limits, enforce nothing, and route them to the exporters' shards",
  },
  {
    name: "cardinality-mode",
    kind: "choice",
    defaultText: "exact",
    help: "how rules track distinct series: exact, bloom, hybrid",
  },
  {
    name: "cardinality-expected-items",
    kind: "number",
    defaultText: "100000",
    help: "bloom: series a rule's filter is sized for",
  },
  {
    name: "cardinality-fp-rate",
    kind: "number",
    defaultText: "0.01",
    help: "bloom: rate at which a new series may be taken for a known one, in (0, 1)",
  },
  {
    name: "cardinality-hll-threshold",
    kind: "number",
    defaultText: "10000",
    help: "hybrid: series of a rule tracked exactly before it switches to an estimate",
  },
]

const REPLAY_FLAGS: ReadonlyArray<FlagSpec> = [
  {
    name: "verify",
    kind: "bool",
    defaultText: "false",
    help: "re-validate every recorded config with the current code; exit 1 on divergence",
  },
  {
    name: "at",
    kind: "string",
    defaultText: "none",
    help: "print the version active at this RFC 3339 time; with -verify, verify up to it",
  },
  {
    name: "config-max-bytes",
    kind: "bytes",
    defaultText: "8MiB",
    help: "-verify treats a snapshot larger than this as the reload would: refused",
  },
]

const DIFF_FLAGS: ReadonlyArray<FlagSpec> = [
  {
    name: "stats-addr",
    kind: "string",
    defaultText: "none",
    help: "control server of a running governor: print each changed limit against the rule's current usage",
  },
  {
    name: "config-max-bytes",
    kind: "bytes",
    defaultText: "8MiB",
    help: "a limits file larger than this is refused",
  },
]

const flagLines = (flags: ReadonlyArray<FlagSpec>): string =>
  flags
    .map((f) => {
      const arg =
        f.kind === "bool" ? "" : f.kind === "duration" ? " duration" : f.kind === "bytes" ? " size" : " value"
      return `  -${f.name}${arg}\n      ${f.help} (default ${f.defaultText})`
    })
    .join("\n")

export const usage = (): string =>
  [
    "metrics-governor: cardinality and rate limits for OTLP and Prometheus remote-write metrics,",
    "reloadable without a restart.",
    "",
    "Usage:",
    "  metrics-governor [run] [flags]       run the governor (the default)",
    "  metrics-governor validate [flags]    check -config / -limits-config; exit 0 or 1",
    "  metrics-governor replay EVENT_LOG [-verify] [-at RFC3339]",
    "                                       fold a reload event log",
    "  metrics-governor diff OLD NEW [-stats-addr HOST:PORT]",
    "                                       compare two limits files; exit 0 same, 1 different, 2 invalid",
    "",
    "Flags of run and validate (also written --name=value, -name value, --name value):",
    flagLines(RUN_FLAGS),
    "",
    "Flags of replay:",
    flagLines(REPLAY_FLAGS),
    "",
    "Flags of diff:",
    flagLines(DIFF_FLAGS),
    "",
    "Signals: SIGHUP reloads; SIGTERM and SIGINT shut down gracefully.",
  ].join("\n")

const BOOL_VALUES: Readonly<Record<string, boolean>> = {
  true: true,
  false: false,
  "1": true,
  "0": false,
  t: true,
  f: false,
  TRUE: true,
  FALSE: false,
  True: true,
  False: false,
}

const LEVELS: ReadonlyArray<LogLevelName> = ["debug", "info", "warn", "error"]

type Raw = Map<string, string | boolean>

/** Splits argv into flags (by spec) and positionals. */
const scan = (
  args: ReadonlyArray<string>,
  specs: ReadonlyArray<FlagSpec>,
): Either.Either<{ raw: Raw; positionals: Array<string> }, UsageError> => {
  const byName = new Map(specs.map((s) => [s.name, s]))
  const raw: Raw = new Map()
  const positionals: Array<string> = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    if (arg === "--") {
      positionals.push(...args.slice(i + 1))
      break
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg)
      continue
    }
    const body = arg.startsWith("--") ? arg.slice(2) : arg.slice(1)
    const eq = body.indexOf("=")
    const name = eq === -1 ? body : body.slice(0, eq)
    const spec = byName.get(name)
    if (spec === undefined)
      return Either.left(new UsageError({ reason: `flag provided but not defined: -${name}` }))
    if (spec.kind === "bool") {
      if (eq === -1) raw.set(name, true)
      else {
        const v = BOOL_VALUES[body.slice(eq + 1)]
        if (v === undefined) {
          return Either.left(
            new UsageError({ reason: `invalid boolean value "${body.slice(eq + 1)}" for flag -${name}` }),
          )
        }
        raw.set(name, v)
      }
      continue
    }
    if (eq !== -1) raw.set(name, body.slice(eq + 1))
    else if (i + 1 < args.length) raw.set(name, args[++i] as string)
    else return Either.left(new UsageError({ reason: `flag needs an argument: -${name}` }))
  }
  return Either.right({ raw, positionals })
}

const str = (raw: Raw, name: string, fallback: string): string => {
  const v = raw.get(name)
  return typeof v === "string" ? v : fallback
}
const optStr = (raw: Raw, name: string): string | undefined => {
  const v = raw.get(name)
  return typeof v === "string" && v !== "" ? v : undefined
}
const bool = (raw: Raw, name: string): boolean | undefined => {
  const v = raw.get(name)
  return typeof v === "boolean" ? v : undefined
}

const duration = (raw: Raw, name: string, fallbackMs: number): Either.Either<number, UsageError> => {
  const v = raw.get(name)
  if (typeof v !== "string") return Either.right(fallbackMs)
  const ms = parseDuration(v)
  return ms === undefined
    ? Either.left(
        new UsageError({ reason: `invalid duration "${v}" for flag -${name} (e.g. 250ms, 10s, 1m)` }),
      )
    : Either.right(ms)
}

const BYTE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
}

/** A size: a whole number of bytes, or with a binary unit (`512KiB`, `8MiB`, `8M`; K = 1024). */
export const parseBytes = (text: string): number | undefined => {
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(text.trim())
  if (m === null) return undefined
  const unit = BYTE_UNITS[(m[2] as string).toLowerCase()]
  if (unit === undefined) return undefined
  const n = Number(m[1]) * unit
  return Number.isSafeInteger(n) && n > 0 ? n : undefined
}

const bytes = (raw: Raw, name: string, fallback: number): Either.Either<number, UsageError> => {
  const v = raw.get(name)
  if (typeof v !== "string") return Either.right(fallback)
  const n = parseBytes(v)
  return n === undefined
    ? Either.left(
        new UsageError({ reason: `invalid size "${v}" for flag -${name} (e.g. 8388608, 512KiB, 8MiB)` }),
      )
    : Either.right(n)
}

const runFlags = (raw: Raw): Either.Either<RunFlags, UsageError> =>
  Either.gen(function* () {
    const level = str(raw, "log-level", "info")
    if (!LEVELS.includes(level as LogLevelName)) {
      return yield* Either.left(
        new UsageError({ reason: `invalid value "${level}" for flag -log-level (debug, info, warn, error)` }),
      )
    }
    return {
      config: optStr(raw, "config"),
      limitsConfig: optStr(raw, "limits-config"),
      limitsDryRun: bool(raw, "limits-dry-run"),
      grpcListen: str(raw, "grpc-listen", ":4317"),
      httpListen: str(raw, "http-listen", ":4318"),
      prwListen: str(raw, "prw-listen", ":9091"),
      statsAddr: str(raw, "stats-addr", ":9090"),
      exporterEndpoint: optStr(raw, "exporter-endpoint"),
      prwExporterEndpoint: optStr(raw, "prw-exporter-endpoint"),
      reloadWatch: bool(raw, "reload-watch") ?? true,
      reloadPollIntervalMs: yield* duration(raw, "reload-poll-interval", 0),
      reloadTriggerFile: optStr(raw, "reload-trigger-file"),
      reloadHttp: bool(raw, "reload-http") ?? false,
      reloadAuthTokenFile: optStr(raw, "reload-auth-token-file"),
      reloadDebounceMs: yield* duration(raw, "reload-debounce", 250),
      reloadEventLog: optStr(raw, "reload-event-log"),
      configMaxBytes: yield* bytes(raw, "config-max-bytes", DEFAULT_CONFIG_MAX_BYTES),
      memoryLimit: raw.has("memory-limit") ? yield* bytes(raw, "memory-limit", 0) : undefined,
      logLevel: level as LogLevelName,
      statsLabels: (optStr(raw, "stats-labels") ?? "")
        .split(",")
        .map((l) => l.trim())
        .filter((l) => l !== ""),
      statsMaxLabelCombinations: yield* number(raw, "stats-max-label-combinations", 10_000, (n) =>
        Number.isInteger(n) && n >= 1 ? undefined : "a whole number >= 1",
      ),
      mode: yield* choice(raw, "mode", RUN_MODES, "standalone"),
      cardinalityMode: yield* choice(raw, "cardinality-mode", CARDINALITY_MODES, "exact"),
      cardinalityExpectedItems: yield* number(raw, "cardinality-expected-items", 100_000, (n) =>
        Number.isInteger(n) && n >= 1 ? undefined : "a whole number >= 1",
      ),
      cardinalityFpRate: yield* number(raw, "cardinality-fp-rate", 0.01, (n) =>
        n > 0 && n < 1 ? undefined : "a number in (0, 1)",
      ),
      cardinalityHllThreshold: yield* number(raw, "cardinality-hll-threshold", 10_000, (n) =>
        Number.isInteger(n) && n >= 1 ? undefined : "a whole number >= 1",
      ),
    }
  })

const number = (
  raw: Raw,
  name: string,
  fallback: number,
  problem: (n: number) => string | undefined,
): Either.Either<number, UsageError> => {
  const v = raw.get(name)
  if (typeof v !== "string") return Either.right(fallback)
  const n = v.trim() === "" ? Number.NaN : Number(v)
  const why = Number.isFinite(n) ? problem(n) : "a number"
  return why === undefined
    ? Either.right(n)
    : Either.left(new UsageError({ reason: `invalid value "${v}" for flag -${name} (${why})` }))
}

const choice = <A extends string>(
  raw: Raw,
  name: string,
  choices: ReadonlyArray<A>,
  fallback: A,
): Either.Either<A, UsageError> => {
  const v = raw.get(name)
  if (typeof v !== "string") return Either.right(fallback)
  return (choices as ReadonlyArray<string>).includes(v)
    ? Either.right(v as A)
    : Either.left(
        new UsageError({ reason: `invalid value "${v}" for flag -${name} (${choices.join(", ")})` }),
      )
}

const HELP = new Set(["-h", "--h", "-help", "--help"])

/** Parses the arguments after the program name. Pure. */
export const parseCommandLine = (args: ReadonlyArray<string>): Either.Either<Command, UsageError> => {
  if (args.some((a) => HELP.has(a))) return Either.right({ _tag: "Help", text: usage() })
  if (args[0] === "-version" || args[0] === "--version" || args[0] === "version")
    return Either.right({ _tag: "Version" })
  const [first, ...rest] = args
  const sub =
    first === "run" || first === "validate" || first === "replay" || first === "diff" ? first : undefined
  const tail = sub === undefined ? args : rest
  if (sub === "diff") {
    return Either.flatMap(scan(tail, DIFF_FLAGS), ({ raw, positionals }) => {
      if (positionals.length !== 2) {
        return Either.left(
          new UsageError({ reason: "diff needs exactly two arguments: the old and the new limits file" }),
        )
      }
      return Either.map(bytes(raw, "config-max-bytes", DEFAULT_CONFIG_MAX_BYTES), (configMaxBytes) => ({
        _tag: "Diff" as const,
        old: positionals[0] as string,
        new: positionals[1] as string,
        statsAddr: optStr(raw, "stats-addr"),
        configMaxBytes,
      }))
    })
  }
  if (sub === "replay") {
    return Either.flatMap(scan(tail, REPLAY_FLAGS), ({ raw, positionals }) => {
      if (positionals.length !== 1) {
        return Either.left(
          new UsageError({ reason: "replay needs exactly one argument: the event log file" }),
        )
      }
      return Either.map(bytes(raw, "config-max-bytes", DEFAULT_CONFIG_MAX_BYTES), (configMaxBytes) => ({
        _tag: "Replay" as const,
        eventLog: positionals[0] as string,
        verify: bool(raw, "verify") ?? false,
        at: optStr(raw, "at"),
        configMaxBytes,
      }))
    })
  }
  return Either.flatMap(scan(tail, RUN_FLAGS), ({ raw, positionals }) => {
    if (positionals.length > 0) {
      const p = positionals[0] as string
      return Either.left(
        new UsageError({
          reason:
            sub === undefined && p === args[0] && /^[a-z]+$/.test(p)
              ? `unknown command "${p}" (run, validate, replay, diff)`
              : `unexpected argument "${p}"`,
        }),
      )
    }
    return Either.map(
      runFlags(raw),
      (flags) => ({ _tag: sub === "validate" ? "Validate" : "Run", flags }) as const,
    )
  })
}
