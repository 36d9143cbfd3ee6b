import { Either, Schema } from "effect"
import fc from "fast-check"
import { RE2JS } from "re2js"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { stringify } from "yaml"
import { type DecodedLimits, decodeLimits, decodeMainConfig } from "../../src/config/decode.js"
import { formatDuration, parseDuration } from "../../src/config/duration.js"
import { ConfigInvalidError, formatIssue } from "../../src/config/errors.js"
import { LimitsSpec, type RuleSpec } from "../../src/config/limits-schema.js"
import { MainConfigSpec } from "../../src/config/main-schema.js"
import type { CompiledLimits, CompiledRule } from "../../src/limits/rules.js"

const NUM_RUNS = 200
const SECOND = 1_000
const TEN_YEARS_MS = 10 * 365 * 86_400_000

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

/** The YAML text a user could have written for the spec. */
const limitsYaml = (spec: LimitsSpec): string => stringify(Schema.encodeSync(LimitsSpec)(spec))
const mainYaml = (spec: MainConfigSpec): string => stringify(Schema.encodeSync(MainConfigSpec)(spec))

const mustDecodeLimits = (text: string): DecodedLimits => {
  const result = decodeLimits("limits.yaml", utf8(text))
  if (Either.isLeft(result)) throw new Error(`did not decode:\n${text}\n${result.left.message}`)
  return result.right
}

const mustDecodeMain = (text: string): MainConfigSpec => {
  const result = decodeMainConfig("config.yaml", utf8(text))
  if (Either.isLeft(result)) throw new Error(`did not decode:\n${text}\n${result.left.message}`)
  return result.right.spec
}

/** A compiled rule without its regex object, which compares by identity. */
const ruleSummary = ({ metricName, ...rest }: CompiledRule) => ({ ...rest, pattern: metricName?.pattern() })
const compiledSummary = (c: CompiledLimits) => ({
  windowMs: c.windowMs,
  rules: c.rules.map(ruleSummary),
  defaults: c.defaults === undefined ? undefined : ruleSummary(c.defaults),
})

// ---------------------------------------------------------------------------------------------
// Arbitraries of valid specs

/** Strings a YAML writer must quote or a JS object may trip on, besides random ones. */
const trickyStrings = [
  "yes",
  "no",
  "null",
  "~",
  "true",
  "1",
  "1.0",
  "0x10",
  "-",
  "? x",
  "#x",
  "a: b",
  "&a",
  "*a",
  "'q'",
  '"q"',
  " lead",
  "trail ",
  "a.b",
  "a b",
  "<<",
  "constructor",
  "toString",
  "hasOwnProperty",
]

/**
 * `__proto__` is excluded: a plain object cannot hold it as an ordinary key, so the loader rejects
 * it (see "keys named __proto__" below).
 */
const notProto = (s: string) => s !== "__proto__"

const labelName = fc
  .oneof(fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,15}$/), fc.constantFrom(...trickyStrings))
  .filter((s) => s !== "" && notProto(s))

const labelValue = fc.oneof(
  fc.constant("*"),
  fc.constantFrom("", ...trickyStrings),
  fc.string({ unit: "grapheme", maxLength: 12 }),
)

const labelList = (minLength: number) =>
  fc.uniqueArray(
    labelName.filter((n) => n !== "__name__"),
    { minLength, maxLength: 3 },
  )

const metricNameRegex = fc.oneof(
  fc.constantFrom(
    "http_.*",
    ".*",
    ".+",
    "a|b",
    "up",
    "node_(cpu|memory)_.*",
    "[a-z_]+_total",
    "go_gc_duration_seconds(_count|_sum)?",
    "x{1,3}y",
    "\\d+",
    "(?i)http_.*",
    "[^_]+",
  ),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 16 }).map((s) => RE2JS.quote(s)),
)

const limit = fc.oneof(fc.nat({ max: 1_000_000 }), fc.maxSafeNat())
const sampleRate = fc.oneof(
  fc.constantFrom(1, 0.5, 0.1, Number.MIN_VALUE),
  fc.double({ min: Number.MIN_VALUE, max: 1, noNaN: true }),
)

/** The limit fields of a rule or of defaults, with exactly the fields its action needs or allows. */
const limitFields = fc
  .tuple(
    fc.record(
      { max_datapoints_rate: limit, max_cardinality: limit },
      { requiredKeys: [], noNullPrototype: true },
    ),
    fc.oneof(
      fc.record({ group_by: labelList(0) }, { requiredKeys: [], noNullPrototype: true }),
      fc.record(
        { action: fc.constantFrom("log" as const, "drop" as const), group_by: labelList(0) },
        { requiredKeys: ["action"], noNullPrototype: true },
      ),
      fc.record(
        { action: fc.constant("adaptive" as const), group_by: labelList(1) },
        { noNullPrototype: true },
      ),
      fc.record(
        { action: fc.constant("sample" as const), sample_rate: sampleRate, group_by: labelList(0) },
        { requiredKeys: ["action", "sample_rate"], noNullPrototype: true },
      ),
      fc.record(
        { action: fc.constant("strip_labels" as const), strip_labels: labelList(1), group_by: labelList(0) },
        { requiredKeys: ["action", "strip_labels"], noNullPrototype: true },
      ),
    ),
  )
  .map(([limits, action]) => ({ ...limits, ...action }))

const ruleName = fc
  .oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/), fc.string({ unit: "grapheme", maxLength: 12 }))
  .filter((s) => s.trim() !== "" && s !== "default")

const match = fc.record(
  {
    metric_name: metricNameRegex,
    labels: fc.dictionary(labelName, labelValue, { maxKeys: 3, noNullPrototype: true }),
  },
  { requiredKeys: [], noNullPrototype: true },
)

const rule: fc.Arbitrary<RuleSpec> = fc
  .tuple(ruleName, fc.option(match, { nil: undefined }), limitFields)
  .map(([name, m, fields]) => (m === undefined ? { name, ...fields } : { name, match: m, ...fields }))

const limitsSpec: fc.Arbitrary<LimitsSpec> = fc.record(
  {
    window: fc.integer({ min: 1, max: 86_400 }).map((s) => s * SECOND),
    defaults: limitFields,
    rules: fc.uniqueArray(rule, { selector: (r) => r.name, maxLength: 5 }),
  },
  { requiredKeys: [], noNullPrototype: true },
)

const count = fc.oneof(
  fc.integer({ min: 1, max: 1_000_000 }),
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
)
const durationMs = fc.oneof(
  fc.constantFrom(0, 1, 250, SECOND, 60 * SECOND, 5_400 * SECOND),
  fc.integer({ min: 0, max: TEN_YEARS_MS }),
)

const exporter = fc.record(
  {
    headers: fc.dictionary(fc.string({ maxLength: 10 }).filter(notProto), fc.string({ maxLength: 10 }), {
      maxKeys: 3,
      noNullPrototype: true,
    }),
    bearer_token_file: fc.string({ unit: "grapheme", maxLength: 20 }),
    timeout: durationMs,
  },
  { requiredKeys: [], noNullPrototype: true },
)

const mainSpec: fc.Arbitrary<MainConfigSpec> = fc.record(
  {
    limits: fc.record({ dry_run: fc.boolean() }, { requiredKeys: [], noNullPrototype: true }),
    receivers: fc.record(
      { max_request_bytes: count, max_decompressed_bytes: count },
      { requiredKeys: [], noNullPrototype: true },
    ),
    exporters: fc.record({ otlp: exporter, prw: exporter }, { requiredKeys: [], noNullPrototype: true }),
    buffer: fc.record(
      { size: count, max_bytes: count, batch_size: count, flush_interval: durationMs },
      { requiredKeys: [], noNullPrototype: true },
    ),
    shutdown_timeout: durationMs,
    memory: fc.record(
      { limit_ratio: fc.double({ min: 0.01, max: 1, noNaN: true }) },
      { requiredKeys: [], noNullPrototype: true },
    ),
  },
  { requiredKeys: [], noNullPrototype: true },
)

// ---------------------------------------------------------------------------------------------

describe("law: a valid spec survives encode → YAML → decode", () => {
  it("limits.yaml: decode(yaml(encode(spec))) equals spec", () => {
    fc.assert(
      fc.property(limitsSpec, (spec) => {
        const decoded = mustDecodeLimits(limitsYaml(spec))
        expect(decoded.spec).toStrictEqual(spec)
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it("limits.yaml: decode → encode → decode gives the same spec and the same compiled rules", () => {
    fc.assert(
      fc.property(limitsSpec, (spec) => {
        const text = limitsYaml(spec)
        const first = mustDecodeLimits(text)
        const againText = limitsYaml(first.spec)
        const again = mustDecodeLimits(againText)
        expect(againText).toBe(text)
        expect(again.spec).toStrictEqual(first.spec)
        expect(again.sha256).toBe(first.sha256)
        expect(compiledSummary(again.compiled)).toStrictEqual(compiledSummary(first.compiled))
        expect(first.compiled.rules.map((r) => r.name)).toEqual((spec.rules ?? []).map((r) => r.name))
        expect(first.compiled.windowMs).toBe(spec.window ?? 60_000)
      }),
      { numRuns: NUM_RUNS },
    )
  })

  it("config.yaml: decode(yaml(encode(spec))) equals spec, and again after a second round", () => {
    fc.assert(
      fc.property(mainSpec, (spec) => {
        const text = mainYaml(spec)
        const decoded = mustDecodeMain(text)
        expect(decoded).toStrictEqual(spec)
        const againText = mainYaml(decoded)
        expect(againText).toBe(text)
        expect(mustDecodeMain(againText)).toStrictEqual(decoded)
      }),
      { numRuns: NUM_RUNS },
    )
  })
})

describe("keys named __proto__", () => {
  // fast-check's strings include "__proto__": as a label or header name it used to vanish from the
  // decoded object (Effect's Record decoder assigns `out[key] = value`), so a rule's label condition
  // was silently lost. The loader now rejects the key with its position.
  it("a label condition named __proto__ is rejected, not silently dropped", () => {
    const text = "rules:\n  - name: a\n    match:\n      labels:\n        __proto__: x\n"
    const result = decodeLimits("limits.yaml", utf8(text))
    if (Either.isRight(result)) expect.fail(`decoded to ${JSON.stringify(result.right.spec)}`)
    expect(result.left.issues.map(formatIssue)).toEqual([
      'limits.yaml:5:9: yaml: the key "__proto__" is not allowed',
    ])
  })

  it("a header named __proto__ is rejected, not silently dropped", () => {
    const text = "exporters:\n  otlp:\n    headers:\n      a: b\n      __proto__: x\n"
    const result = decodeMainConfig("config.yaml", utf8(text))
    if (Either.isRight(result)) expect.fail(`decoded to ${JSON.stringify(result.right.spec)}`)
    expect(result.left.issues.map(formatIssue)).toEqual([
      'config.yaml:5:7: yaml: the key "__proto__" is not allowed',
    ])
  })

  it("a __proto__ key reached through an alias is rejected too", () => {
    const text = "x: &k __proto__\nrules:\n  - name: a\n    match:\n      labels: {*k : v}\n"
    const result = decodeLimits("limits.yaml", utf8(text))
    if (Either.isRight(result)) expect.fail(`decoded to ${JSON.stringify(result.right.spec)}`)
    expect(result.left.issues.map(formatIssue)).toContain(
      'limits.yaml:5:16: yaml: the key "__proto__" is not allowed',
    )
  })
})

// ---------------------------------------------------------------------------------------------
// Arbitrary input never makes the loader throw

const yamlKeys = [
  "rules",
  "name",
  "match",
  "metric_name",
  "labels",
  "defaults",
  "window",
  "action",
  "max_cardinality",
  "max_datapoints_rate",
  "sample_rate",
  "strip_labels",
  "group_by",
  "limits",
  "dry_run",
  "buffer",
  "size",
  "exporters",
  "otlp",
  "headers",
  "timeout",
  "__proto__",
  "<<",
]
const yamlValues = [
  "1",
  "-5",
  "0",
  "0.5",
  "1.5",
  "1e400",
  "1m",
  "5 minutes",
  "true",
  "yes",
  "null",
  "~",
  "http_.*",
  "http_(.*",
  "(?<=x)y",
  "*",
  '"*"',
  "log",
  "drop",
  "adaptive",
  "sample",
  "strip_labels",
  "default",
  "[]",
  "{}",
]
const yamlPunctuation = [
  "\n",
  "\n  ",
  "\n    ",
  "\n      ",
  "  ",
  " ",
  "- ",
  "-",
  ": ",
  ":",
  '"',
  "'",
  "&a ",
  "*a",
  "&b ",
  "*b",
  "[",
  "]",
  "{",
  "}",
  ", ",
  "# ",
  "---\n",
  "...\n",
  "? ",
  "!!str ",
  "!!map ",
  "!!binary ",
  "!custom ",
  "| ",
  "> ",
  "\t",
  "\r\n",
  "%YAML 1.2\n",
  "\\",
  "\u00e9",
  "\ufeff",
]

const yamlShaped = fc
  .array(
    fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...yamlKeys).map((k) => `${k}: `) },
      { weight: 3, arbitrary: fc.constantFrom(...yamlValues) },
      { weight: 4, arbitrary: fc.constantFrom(...yamlPunctuation) },
      { weight: 1, arbitrary: fc.string({ maxLength: 5 }) },
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(""))

/** Well-formed YAML whose shape is random: reaches the schema and the compiler, not just the parser. */
const { tree } = fc.letrec<{ tree: unknown }>((tie) => ({
  tree: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.oneof(
      fc.constantFrom<unknown>(null, true, false, 0, -1, 0.5, 1.5, Number.MAX_SAFE_INTEGER + 2, ""),
      fc.constantFrom(...yamlValues),
      fc.string({ maxLength: 6 }),
      fc.double(),
    ),
    fc.array(tie("tree"), { maxLength: 3 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...yamlKeys), fc.string({ maxLength: 4 })), tie("tree"), {
      maxKeys: 4,
      noNullPrototype: true,
    }),
  ),
}))
const randomDocument = fc
  .oneof(tree, fc.dictionary(fc.constantFrom(...yamlKeys), tree, { maxKeys: 4, noNullPrototype: true }))
  .map((value) => stringify(value))

const lineCount = (bytes: Uint8Array): number => new TextDecoder().decode(bytes).split(/\r\n|\r|\n/).length

/** Both loaders return an Either for any bytes; every issue is well formed. */
const checkTotal = (bytes: Uint8Array): void => {
  for (const decode of [decodeLimits, decodeMainConfig]) {
    const result: Either.Either<unknown, unknown> = decode("fuzz.yaml", bytes)
    expect(Either.isEither(result)).toBe(true)
    if (Either.isLeft(result)) {
      const error = result.left
      expect(error).toBeInstanceOf(ConfigInvalidError)
      if (!(error instanceof ConfigInvalidError)) return
      expect(error.file).toBe("fuzz.yaml")
      expect(error.issues.length).toBeGreaterThan(0)
      for (const issue of error.issues) {
        expect(issue.file).toBe("fuzz.yaml")
        expect(issue.message.trim()).not.toBe("")
        expect(Number.isInteger(issue.line) && issue.line >= 0).toBe(true)
        expect(Number.isInteger(issue.column) && issue.column >= 0).toBe(true)
        expect(issue.line <= lineCount(bytes) + 1).toBe(true)
        if (issue.line === 0) expect(issue.column).toBe(0)
        else expect(issue.column).toBeGreaterThanOrEqual(1)
        expect(formatIssue(issue)).toContain(issue.message)
      }
    }
  }
}

describe("law: no input makes the loader throw", () => {
  // yaml warns (process.emitWarning) about keys that are collections; that is noise here.
  beforeAll(() => {
    vi.spyOn(process, "emitWarning").mockImplementation(() => {})
  })
  afterAll(() => {
    vi.restoreAllMocks()
  })

  it("any string", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" })), (text) => checkTotal(utf8(text))),
      { numRuns: NUM_RUNS },
    )
  })

  it("any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => checkTotal(bytes)),
      { numRuns: NUM_RUNS },
    )
  })

  it("a document that is `!!binary` bytes (found by the law below)", () => {
    checkTotal(utf8("!!binary yes"))
  })

  it("YAML-shaped text built from config fragments", () => {
    fc.assert(
      fc.property(yamlShaped, (text) => checkTotal(utf8(text))),
      { numRuns: 500 },
    )
  })

  it("well-formed YAML of random shape", () => {
    fc.assert(
      fc.property(randomDocument, (text) => checkTotal(utf8(text))),
      { numRuns: 500 },
    )
  })

  it("an alias bomb is rejected quickly", () => {
    const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for (let i = 1; i < 12; i++) {
      const prev = String.fromCharCode(96 + i)
      const name = String.fromCharCode(97 + i)
      lines.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(", ")}]`)
    }
    const bytes = utf8(`${lines.join("\n")}\nrules: []\n`)
    const started = performance.now()
    checkTotal(bytes)
    expect(Either.isLeft(decodeLimits("fuzz.yaml", bytes))).toBe(true)
    expect(performance.now() - started).toBeLessThan(2_000)
  })
})

// ---------------------------------------------------------------------------------------------
// Durations

const UNITS = ["w", "d", "h", "m", "s", "ms"] as const
/** How many of a unit make the next larger one; a canonical duration stays below it. */
const CANONICAL_BELOW: Readonly<Record<(typeof UNITS)[number], number>> = {
  w: Number.POSITIVE_INFINITY,
  d: 7,
  h: 24,
  m: 60,
  s: 60,
  ms: 1000,
}

/** `formatDuration`'s output is canonical: `0s`, or units largest first, each once, in range. */
const expectCanonical = (text: string): void => {
  if (text === "0s") return
  const parts = [...text.matchAll(/(\d+)(ms|w|d|h|m|s)/g)]
  expect(parts.map((p) => p[0]).join("")).toBe(text)
  let last = -1
  for (const [, digits = "", unit] of parts) {
    const index = UNITS.indexOf(unit as (typeof UNITS)[number])
    expect(index).toBeGreaterThan(last)
    last = index
    expect(digits).toMatch(/^[1-9]\d*$/)
    expect(Number(digits)).toBeLessThan(CANONICAL_BELOW[unit as (typeof UNITS)[number]])
  }
}

/** Any duration a user may write: units largest first, each at most once, counts not normalised. */
const writtenDuration = fc
  .tuple(...UNITS.map(() => fc.option(fc.nat({ max: 100_000 }), { nil: undefined })))
  .filter((counts) => counts.some((c) => c !== undefined))
  .map((counts) => counts.map((c, i) => (c === undefined ? "" : `${c}${UNITS[i]}`)).join(""))

describe("law: durations", () => {
  it("parseDuration(formatDuration(ms)) === ms for ms in [0, 10 years]", () => {
    fc.assert(
      fc.property(durationMs, (ms) => {
        expect(parseDuration(formatDuration(ms))).toBe(ms)
      }),
      { numRuns: 1_000 },
    )
  })

  it("formatDuration(parseDuration(s)) is canonical and means the same", () => {
    fc.assert(
      fc.property(writtenDuration, (text) => {
        const ms = parseDuration(text)
        if (ms === undefined) expect.fail(`${text} did not parse`)
        const canonical = formatDuration(ms)
        expectCanonical(canonical)
        expect(parseDuration(canonical)).toBe(ms)
        expect(formatDuration(parseDuration(canonical) as number)).toBe(canonical)
      }),
      { numRuns: 1_000 },
    )
  })

  it("known examples", () => {
    expect(parseDuration("0")).toBe(0)
    expect(parseDuration("0s")).toBe(0)
    expect(parseDuration("250ms")).toBe(250)
    expect(parseDuration("1h30m")).toBe(5_400_000)
    expect(parseDuration("90s")).toBe(90_000)
    expect(formatDuration(90_000)).toBe("1m30s")
    expect(formatDuration(86_400_000)).toBe("1d")
    expect(formatDuration(0)).toBe("0s")
    for (const bad of ["", "1", "1.5s", "-1s", "1m1h", "1s1s", "1 s", "s", "1y", " 1s", "1S"]) {
      expect(parseDuration(bad), bad).toBeUndefined()
    }
  })
})
