import { createHash } from "node:crypto"
import { Either, ParseResult, Schema } from "effect"
import { compileLimits, GenerationCache, type SpecProblem } from "../limits/compile.js"
import type { CompiledLimits } from "../limits/rules.js"
import { ConfigInvalidError, type ConfigIssue } from "./errors.js"
import { LimitsSpec, RuleSpec } from "./limits-schema.js"
import { MainConfigSpec, mainProblems } from "./main-schema.js"
import { fastYamlValue, parseYaml, type YamlSource } from "./yaml-source.js"

/** A decoded `limits.yaml`: the spec as written, its compiled rules and the SHA-256 of its bytes. */
export interface DecodedLimits {
  readonly file: string
  readonly sha256: string
  readonly spec: LimitsSpec
  readonly compiled: CompiledLimits
}

/** A decoded `config.yaml` and the SHA-256 of its bytes. */
export interface DecodedMainConfig {
  readonly file: string
  readonly sha256: string
  readonly spec: MainConfigSpec
}

export const sha256Hex = (bytes: Uint8Array | string): string =>
  createHash("sha256").update(bytes).digest("hex")

/** `rules[2].match.metric_name` */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`
    else {
      const s = String(seg)
      // Keys that are not plain identifiers (label names with dots, empty keys) are quoted.
      if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(s)) out += `[${JSON.stringify(s)}]`
      else out += out === "" ? s : `.${s}`
    }
  }
  return out
}

const KNOWN_KEYS_RE = /expected: (.*)$/

const editDistance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] as number
      row[j] = Math.min(
        (row[j] as number) + 1,
        (row[j - 1] as number) + 1,
        prev + (a[i - 1] === b[j - 1] ? 0 : 1),
      )
      prev = tmp
    }
  }
  return row[b.length] as number
}

const unknownKeyMessage = (key: string, schemaMessage: string): string => {
  const known = (KNOWN_KEYS_RE.exec(schemaMessage)?.[1] ?? "")
    .split(" | ")
    .map((k) => k.replace(/^"|"$/g, ""))
    .filter((k) => k !== "")
  let best: string | undefined
  let bestDistance = 3
  for (const k of known) {
    const d = editDistance(key, k)
    if (d < bestDistance) {
      best = k
      bestDistance = d
    }
  }
  const hint =
    best !== undefined
      ? ` (did you mean "${best}"?)`
      : known.length > 0
        ? ` (known keys: ${known.join(", ")})`
        : ""
  return `unknown key "${key}"${hint}`
}

const issueFromSchema = (
  file: string,
  source: YamlSource,
  issue: ParseResult.ArrayFormatterIssue,
): ConfigIssue => {
  const path = issue.path
  const key = path[path.length - 1]
  const at = (atKey: boolean) => source.locate(path as ReadonlyArray<string | number>, atKey)
  switch (issue._tag) {
    case "Unexpected":
      return {
        file,
        ...at(true),
        path: formatPath(path),
        message: unknownKeyMessage(String(key), issue.message),
      }
    case "Missing":
      return {
        file,
        ...source.locate(path.slice(0, -1) as ReadonlyArray<string | number>),
        path: formatPath(path),
        message: "is required",
      }
    default: {
      const message =
        issue.message.startsWith("Expected {") || issue.message.startsWith("Expected { readonly")
          ? "must be a mapping of keys"
          : issue.message.startsWith("Expected ReadonlyArray") ||
              issue.message.startsWith("Expected readonly")
            ? "must be a list"
            : issue.message
      return { file, ...at(false), path: formatPath(path), message }
    }
  }
}

const byPosition = (a: ConfigIssue, b: ConfigIssue) => a.line - b.line || a.column - b.column

type Parsed = { readonly text: string; readonly source: YamlSource }

const utf8 = (file: string, bytes: Uint8Array): Either.Either<string, ConfigInvalidError> => {
  try {
    return Either.right(new TextDecoder("utf-8", { fatal: true }).decode(bytes))
  } catch {
    return Either.left(
      new ConfigInvalidError({
        file,
        issues: [{ file, line: 0, column: 0, path: "", message: "is not valid UTF-8" }],
      }),
    )
  }
}

const readText = (file: string, text: string): Either.Either<Parsed, ConfigInvalidError> => {
  const parsed = parseYaml(text)
  if (parsed._tag === "SyntaxErrors") {
    return Either.left(
      new ConfigInvalidError({ file, issues: parsed.errors.map((e) => ({ file, ...e, path: "" })) }),
    )
  }
  return Either.right({ text, source: parsed.source })
}

/**
 * Decodes `text` with `decode`: first from the fast parser's value (most files: valid and plain),
 * and when that is not possible or finds any problem, from the full parser, whose positions every
 * reported problem needs. Both parsers give the same value where the fast one gives any, so the
 * outcome is the same either way.
 */
const withYaml = <A>(
  file: string,
  bytes: Uint8Array,
  decode: (source: YamlSource) => Either.Either<A, ConfigInvalidError>,
): Either.Either<A, ConfigInvalidError> =>
  Either.flatMap(utf8(file, bytes), (text) => {
    const fast = fastYamlValue(text)
    if (fast !== undefined) {
      const result = decode({ value: fast.value, locate: () => ({ line: 0, column: 0 }) })
      if (Either.isRight(result)) return result
    }
    return Either.flatMap(readText(file, text), ({ source }) => decode(source))
  })

const DECODE_OPTIONS = { errors: "all", onExcessProperty: "error" } as const

const decodeSchema = <A, I>(
  schema: Schema.Schema<A, I>,
  value: unknown,
): Either.Either<A, ReadonlyArray<ParseResult.ArrayFormatterIssue>> =>
  Either.mapLeft(Schema.decodeUnknownEither(schema, DECODE_OPTIONS)(value), (e) =>
    ParseResult.ArrayFormatter.formatErrorSync(e),
  )

const decodeLimitsSpec = Schema.decodeUnknownEither(LimitsSpec, DECODE_OPTIONS)
const decodeRuleSpec = Schema.decodeUnknownEither(RuleSpec, DECODE_OPTIONS)

/**
 * Decoded rules by the JSON of the rule as written, shared by every reload: a reload decodes only
 * the rules whose text it has not seen. The decode of a rule is a function of its JSON: YAML gives
 * strings, numbers, booleans, null, lists and mappings; the numbers JSON cannot write (NaN,
 * infinities) become `null`, and no rule with either decodes, so none is ever kept or found (-0
 * is written as 0, which decodes alike). Only rules that decode are kept. Bounded (see
 * `GenerationCache`).
 */
export const ruleSpecCache = new GenerationCache<RuleSpec>(32_768)

/** A decoded rule, frozen throughout: versions share it, and compiled rules are found by it. */
const freezeRule = (rule: RuleSpec): RuleSpec => deepFreeze(rule)

const deepFreeze = <A>(value: A): A => {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

/**
 * The decoded `limits.yaml` spec of a document's value, the rules through `cache`, when every part
 * decodes; `undefined` otherwise (the whole document is then decoded at once, which reports every
 * problem in document order). Gives exactly what the schema gives for the whole document: a rule
 * decodes alone as it does in the list, and the rest is decoded with the list empty.
 */
export const decodeLimitsSpecReusing = (
  value: unknown,
  cache: GenerationCache<RuleSpec> = ruleSpecCache,
): LimitsSpec | undefined => {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined
  const raw = value as Record<string, unknown>
  const list = raw.rules
  if (!Array.isArray(list)) return undefined
  const rules: Array<RuleSpec> = new Array(list.length)
  for (let i = 0; i < list.length; i++) {
    const item: unknown = list[i]
    // An item the fast YAML path reused (unchanged text) is the very object of the last reload.
    const frozen = item !== null && typeof item === "object" && Object.isFrozen(item)
    let rule = frozen ? specByItem.get(item) : undefined
    if (rule === undefined) {
      const key = JSON.stringify(item)
      rule = key === undefined ? undefined : cache.get(key)
      if (rule === undefined) {
        const decoded = decodeRuleSpec(item)
        if (Either.isLeft(decoded)) return undefined
        rule = freezeRule(decoded.right)
        if (key !== undefined) cache.set(key, rule)
      }
      if (frozen) specByItem.set(item, rule)
    }
    rules[i] = rule
  }
  const rest = decodeLimitsSpec({ ...raw, rules: [] })
  if (Either.isLeft(rest)) return undefined
  return { ...rest.right, rules }
}

/**
 * Decoded rules by the item object the fast YAML path gave (frozen, reused while its text is
 * unchanged): found without writing the item's JSON. Weak: an entry lives as long as its item.
 */
const specByItem = new WeakMap<object, RuleSpec>()

const decodeWith = <A, I>(
  schema: Schema.Schema<A, I>,
  file: string,
  source: YamlSource,
): Either.Either<A, ConfigInvalidError> =>
  Either.mapLeft(
    decodeSchema(schema, source.value ?? {}),
    (issues) =>
      new ConfigInvalidError({
        file,
        issues: issues.map((i) => issueFromSchema(file, source, i)).sort(byPosition),
      }),
  )

type Path = ReadonlyArray<string | number>
const pathKey = (path: Path): string => JSON.stringify(path)

/**
 * The field of `limits.yaml` that a schema problem at `path` makes unusable: a top-level key, a key
 * of `defaults`, a whole rule when it is not a mapping, a key of a rule, a key of its `match`, or one
 * label condition.
 */
const refusedField = (path: Path): Path => {
  if (path[0] === "rules") {
    if (path.length <= 3 || path[2] !== "match") return path.slice(0, 3)
    return path.slice(0, path[3] === "labels" ? 5 : 4)
  }
  return path.slice(0, path[0] === "defaults" ? 2 : 1)
}

/** A plain mapping as YAML gives it (not a list, not `!!binary` bytes, not a date). */
const isMapping = (v: unknown): v is Record<string, unknown> => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

/** The container that holds the last key of `path` in `root`, when there is one. */
const parentOf = (root: unknown, path: Path): Record<string | number, unknown> | undefined => {
  let at: unknown = root
  for (const key of path.slice(0, -1)) {
    if (!isMapping(at) && !Array.isArray(at)) return undefined
    at = (at as Record<string | number, unknown>)[key]
  }
  return isMapping(at) || Array.isArray(at) ? (at as Record<string | number, unknown>) : undefined
}

/**
 * What the semantic checks can still look at in a `limits.yaml` the schema refused: a copy of the
 * document without its unknown keys and without every field the schema refused (a rule that is not
 * a mapping stays in place, as a rule without a usable name, so every other rule keeps its index),
 * and the set of refused fields. Undefined when nothing can be salvaged (the root is not a mapping).
 */
const salvageLimits = (
  value: unknown,
  issues: ReadonlyArray<ParseResult.ArrayFormatterIssue>,
): { readonly spec: LimitsSpec; readonly refused: ReadonlySet<string> } | undefined => {
  if (!isMapping(value)) return undefined
  const copy: unknown = structuredClone(value)
  const refused = new Set<string>()
  for (const issue of issues) {
    const path = issue.path as Path
    if (issue._tag === "Unexpected") {
      const parent = parentOf(copy, path)
      if (isMapping(parent)) delete parent[path[path.length - 1] as string]
      continue
    }
    const field = refusedField(path)
    if (field.length === 0) return undefined
    refused.add(pathKey(field))
    const parent = parentOf(copy, field)
    const key = field[field.length - 1] as string | number
    if (parent === undefined) continue
    if (field[0] === "rules" && field.length === 2) {
      if (Array.isArray(parent)) parent[key as number] = { name: "" }
      refused.add(pathKey([...field, "name"]))
    } else if (field[0] === "rules" && field.length === 3 && key === "name") parent[key] = ""
    else delete parent[key]
  }
  return Either.match(decodeSchema(LimitsSpec, copy), {
    onLeft: () => undefined,
    onRight: (spec) => ({ spec, refused }),
  })
}

const issueFromProblem = (file: string, source: YamlSource, p: SpecProblem): ConfigIssue => ({
  file,
  ...source.locate(p.path, p.atKey ?? false),
  path: formatPath(p.path),
  message: p.message,
})

/**
 * The semantic problems of what the schema accepted in a `limits.yaml` it refused parts of. Best
 * effort: the schema's own issues are the report; these are added when the rest can be checked.
 */
const semanticProblems = (
  file: string,
  source: YamlSource,
  issues: ReadonlyArray<ParseResult.ArrayFormatterIssue>,
): ReadonlyArray<ConfigIssue> => {
  try {
    const salvaged = salvageLimits(source.value, issues)
    if (salvaged === undefined) return []
    const compiled = compileLimits(salvaged.spec, (path) => salvaged.refused.has(pathKey(path)))
    return compiled._tag === "Problems" ? compiled.problems.map((p) => issueFromProblem(file, source, p)) : []
  } catch {
    return []
  }
}

/**
 * Decodes and compiles `limits.yaml` from its bytes. Pure and total: every failure is a
 * `ConfigInvalidError` listing each problem with file, line, column and key path.
 */
export const decodeLimits = (
  file: string,
  bytes: Uint8Array,
): Either.Either<DecodedLimits, ConfigInvalidError> =>
  withYaml(file, bytes, (source) =>
    Either.gen(function* () {
      if (source.value === undefined || source.value === null) {
        return yield* Either.left(
          new ConfigInvalidError({
            file,
            issues: [
              { file, line: 0, column: 0, path: "", message: "is empty (write `rules: []` for no rules)" },
            ],
          }),
        )
      }
      // Rules seen before are not decoded again; anything unusual takes the whole-document path.
      const reused = decodeLimitsSpecReusing(source.value)
      const decoded = reused !== undefined ? Either.right(reused) : decodeSchema(LimitsSpec, source.value)
      if (Either.isLeft(decoded)) {
        // Every problem at once: the schema's, and the semantic ones of what the schema accepted.
        const schemaIssues = decoded.left.map((i) => issueFromSchema(file, source, i))
        const semantic = semanticProblems(file, source, decoded.left)
        return yield* Either.left(
          new ConfigInvalidError({ file, issues: [...schemaIssues, ...semantic].sort(byPosition) }),
        )
      }
      const spec = decoded.right
      const compiled = compileLimits(spec)
      if (compiled._tag === "Problems") {
        const issues = compiled.problems.map((p) => issueFromProblem(file, source, p))
        return yield* Either.left(new ConfigInvalidError({ file, issues: issues.sort(byPosition) }))
      }
      return { file, sha256: sha256Hex(bytes), spec, compiled: compiled.limits }
    }),
  )

/** Decodes `config.yaml` from its bytes. An empty file means every default. */
export const decodeMainConfig = (
  file: string,
  bytes: Uint8Array,
): Either.Either<DecodedMainConfig, ConfigInvalidError> =>
  withYaml(file, bytes, (source) =>
    Either.flatMap(decodeWith(MainConfigSpec, file, source), (spec) => {
      const problems = mainProblems(spec)
      if (problems.length > 0) {
        const issues = problems.map((p) => ({
          file,
          ...source.locate(p.path, false),
          path: formatPath(p.path),
          message: p.message,
        }))
        return Either.left(new ConfigInvalidError({ file, issues: issues.sort(byPosition) }))
      }
      return Either.right({ file, sha256: sha256Hex(bytes), spec })
    }),
  )
