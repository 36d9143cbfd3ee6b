import { RE2JS } from "re2js"
import {
  DEFAULT_WINDOW_MS,
  type DefaultsSpec,
  type LimitsSpec,
  type RuleSpec,
} from "../config/limits-schema.js"
import { endsStep, runToEnd, type Steps } from "../threads/slices.js"
import {
  type CompiledLimits,
  type CompiledPriority,
  type CompiledRule,
  type CompiledTier,
  DEFAULT_RULE_NAME,
  NO_ADVANCED_KEYS,
} from "./rules.js"

/** A semantic problem, located by its key path (`rules[2].match.metric_name`). */
export interface SpecProblem {
  readonly path: ReadonlyArray<string | number>
  readonly message: string
  /** True when the problem is about the key itself (point at the key, not the value). */
  readonly atKey?: boolean
}

/**
 * Tells the key paths whose value the schema refused and that were left out of the spec (see
 * `decodeLimits`): checks that involve such a field are skipped, since the field's own problem is
 * already reported and its absence would be a false one.
 */
export type Refused = (path: ReadonlyArray<string | number>) => boolean

const NONE_REFUSED: Refused = () => false

export type CompileResult =
  | { readonly _tag: "Compiled"; readonly limits: CompiledLimits }
  | { readonly _tag: "Problems"; readonly problems: ReadonlyArray<SpecProblem> }

const MIN_WINDOW_MS = 1_000
const MAX_WINDOW_MS = 86_400_000

/**
 * Compiled regexes by source, shared by every config version: most reloads change a limit, not a
 * pattern, so a reload compiles only the patterns it has not seen. A compiled `RE2JS` is immutable
 * (matching allocates its own state), so versions may share one. Bounded: emptied when full.
 */
const regexCache = new Map<string, RE2JS>()
const REGEX_CACHE_MAX = 20_000

/** Compiles a Prometheus-style, fully anchored RE2 regex (`.` also matches newlines, as in Prometheus). */
export const compileMetricRegex = (source: string): RE2JS => {
  const hit = regexCache.get(source)
  if (hit !== undefined) return hit
  const compiled = RE2JS.compile(`^(?:${source})$`, RE2JS.DOTALL)
  if (regexCache.size >= REGEX_CACHE_MAX) regexCache.clear()
  regexCache.set(source, compiled)
  return compiled
}

/**
 * A literal every name matched by `rule.metricName` starts with ("" when there is none to be sure
 * of): the leading plain characters of a pattern without alternation, less the last one when a
 * `*`, `?` or `{` follows it. Matching checks it first: it spares the regex for most rules a name cannot match.
 */
export const literalPrefix = (source: string): string => {
  if (source.includes("|")) return ""
  let end = 0
  while (end < source.length && !REGEX_META.includes(source[end] as string)) end++
  const next = source[end]
  if (end > 0 && (next === "*" || next === "?" || next === "{")) end--
  return source.slice(0, end)
}

const REGEX_META = "\\.+*?()|[]{}^$"

/** The parser's message for the pattern as the user wrote it (not its anchored wrapping). */
const regexError = (source: string, anchoredError: unknown): string => {
  try {
    RE2JS.compile(source)
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
  return anchoredError instanceof Error ? anchoredError.message : String(anchoredError)
}

const checkLimitFields = (
  spec: DefaultsSpec,
  base: ReadonlyArray<string | number>,
  problems: Array<SpecProblem>,
  refused: Refused,
): void => {
  const known = (field: string) => !refused([...base, field])
  // A refused action is not the default `log`: the checks that depend on the action are skipped.
  if (!known("action")) return
  const action = spec.action ?? "log"
  if (action === "sample" && spec.sample_rate === undefined && known("sample_rate")) {
    problems.push({
      path: [...base, "action"],
      message: "action sample needs sample_rate (a fraction in (0, 1])",
    })
  }
  if (action !== "sample" && spec.sample_rate !== undefined) {
    problems.push({
      path: [...base, "sample_rate"],
      message: `sample_rate applies only to action: sample (action is ${action})`,
      atKey: true,
    })
  }
  if (
    action === "strip_labels" &&
    (spec.strip_labels === undefined || spec.strip_labels.length === 0) &&
    known("strip_labels")
  ) {
    problems.push({
      path: [...base, "action"],
      message: "action strip_labels needs strip_labels (the labels to remove)",
    })
  }
  if (action !== "strip_labels" && spec.strip_labels !== undefined) {
    problems.push({
      path: [...base, "strip_labels"],
      message: `strip_labels applies only to action: strip_labels (action is ${action})`,
      atKey: true,
    })
  }
  if (
    action === "adaptive" &&
    (spec.group_by === undefined || spec.group_by.length === 0) &&
    known("group_by")
  ) {
    problems.push({
      path: [...base, "action"],
      message: "action adaptive needs group_by (the labels whose groups are dropped, largest first)",
    })
  }
}

const checkStripLabels = (
  spec: DefaultsSpec,
  base: ReadonlyArray<string | number>,
  problems: Array<SpecProblem>,
): void => {
  if (spec.strip_labels?.includes("__name__")) {
    const i = spec.strip_labels.indexOf("__name__")
    problems.push({ path: [...base, "strip_labels", i], message: "__name__ cannot be stripped" })
  }
}

const limitsOf = (
  name: string,
  spec: DefaultsSpec,
): Omit<CompiledRule, "metricName" | "metricNameSource" | "metricNamePrefix" | "labels"> => ({
  name,
  maxDatapointsRate: spec.max_datapoints_rate ?? 0,
  maxCardinality: spec.max_cardinality ?? 0,
  action: spec.action ?? "log",
  groupBy: spec.group_by ?? [],
  sampleRate: spec.sample_rate ?? 1,
  stripLabels: spec.strip_labels ?? [],
  ...NO_ADVANCED_KEYS,
})

/** The empty list every rule without a key shares. */
const NONE: ReadonlyArray<never> = Object.freeze([])

/** A name Prometheus accepts as a label name, and not one the info metric uses itself. */
const INFO_LABEL = /^[A-Za-z_][A-Za-z0-9_]*$/

/** The advanced keys of a rule (docs/limits.md, "More of the original's rule language"): checked and compiled. */
const compileAdvanced = (
  spec: RuleSpec,
  base: ReadonlyArray<string | number>,
  problems: Array<SpecProblem>,
  refused: Refused,
): Pick<CompiledRule, "info" | "tiers" | "labelLimits" | "labelLimitAction" | "priority" | "shaped"> => {
  const info: Array<readonly [string, string]> = []
  for (const [key, value] of Object.entries(spec.labels ?? {})) {
    if (!INFO_LABEL.test(key) || key.startsWith("__") || key === "rule") {
      problems.push({
        path: [...base, "labels", key],
        message:
          key === "rule"
            ? 'label "rule" is reserved (the info metric names the rule with it)'
            : "must be a Prometheus label name ([A-Za-z_][A-Za-z0-9_]*, not starting with __)",
        atKey: true,
      })
    }
    info.push(Object.freeze([key, value] as const))
  }
  info.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  const tiers: Array<CompiledTier> = []
  const tierSpecs = spec.tiers ?? []
  let previous = 0
  for (let t = 0; t < tierSpecs.length; t++) {
    const tier = tierSpecs[t] as NonNullable<RuleSpec["tiers"]>[number]
    const at = [...base, "tiers", t]
    if (!refused([...at, "at_percent"])) {
      if (tier.at_percent <= previous) {
        problems.push({
          path: [...at, "at_percent"],
          message: `tiers must be in ascending at_percent (${tier.at_percent} follows ${previous})`,
        })
      }
      previous = Math.max(previous, tier.at_percent)
    }
    if (tier.action === "adaptive") {
      problems.push({
        path: [...at, "action"],
        message:
          "a tier's action is one of log, drop, sample, strip_labels (adaptive applies to a whole rule)",
      })
    }
    checkLimitFields({ ...tier, group_by: ["-"] }, at, problems, refused)
    checkStripLabels(tier, at, problems)
    tiers.push(
      Object.freeze({
        atPercent: tier.at_percent,
        action: tier.action,
        sampleRate: tier.sample_rate ?? 1,
        stripLabels: Object.freeze([...(tier.strip_labels ?? [])]),
      }),
    )
  }
  if (tierSpecs.length > 0 && (spec.max_cardinality ?? 0) === 0 && (spec.max_datapoints_rate ?? 0) === 0) {
    problems.push({
      path: [...base, "tiers"],
      message: "tiers need max_datapoints_rate or max_cardinality (utilisation is a share of them)",
      atKey: true,
    })
  }
  const labelLimits: Array<{ name: string; max: number }> = []
  for (const [name, max] of Object.entries(spec.label_limits ?? {})) {
    if (name === "" || name === "__name__") {
      problems.push({
        path: [...base, "label_limits", name],
        message: name === "" ? "label name must not be empty" : "__name__ cannot be limited",
        atKey: true,
      })
    }
    labelLimits.push(Object.freeze({ name, max }))
  }
  if (
    spec.label_limit_action !== undefined &&
    spec.label_limits === undefined &&
    !refused([...base, "label_limits"])
  ) {
    problems.push({
      path: [...base, "label_limit_action"],
      message: "label_limit_action applies only with label_limits",
      atKey: true,
    })
  }
  let priority: CompiledPriority | undefined
  const p = spec.adaptive_priority
  if (p !== undefined) {
    const at = [...base, "adaptive_priority"]
    const rank = new Map<string, number>()
    if (p.order.length === 0) {
      problems.push({
        path: [...at, "order"],
        message: "must list at least one label value, most important first",
      })
    }
    p.order.forEach((value, i) => {
      if (rank.has(value)) {
        problems.push({ path: [...at, "order", i], message: `duplicate value ${JSON.stringify(value)}` })
      } else rank.set(value, i)
    })
    const defaultRank = p.default_priority ?? p.order.length
    if (defaultRank > p.order.length) {
      problems.push({
        path: [...at, "default_priority"],
        message: `must be from 0 to ${p.order.length} (a position in order; ${p.order.length}: after the last)`,
      })
    }
    if (!refused([...base, "group_by"]) && !(spec.group_by ?? []).includes(p.label)) {
      problems.push({
        path: [...at, "label"],
        message: `must be one of the rule's group_by labels (groups are ranked by it): ${JSON.stringify(p.label)} is not`,
      })
    }
    priority = Object.freeze({ label: p.label, rank, defaultRank })
  }
  return {
    info: info.length === 0 ? NONE : Object.freeze(info),
    tiers: tiers.length === 0 ? NONE : Object.freeze(tiers),
    labelLimits: labelLimits.length === 0 ? NONE : Object.freeze(labelLimits),
    shaped: tiers.length > 0 || labelLimits.length > 0,
    labelLimitAction: spec.label_limit_action ?? "strip",
    priority,
  }
}

/** The checks of a rule's name against the other rules' (empty, reserved, duplicate). */
const checkName = (
  name: string,
  index: number,
  firstIndexByName: Map<string, number>,
  problems: Array<SpecProblem>,
  refused: Refused,
): void => {
  // The path is made only when it is needed (a reload of many unchanged rules makes none).
  if (refused !== NONE_REFUSED && refused(["rules", index, "name"])) {
    // Reported by the schema; a rule without a usable name takes part in no name check.
  } else if (name.trim() === "") {
    problems.push({ path: ["rules", index, "name"], message: "rule name must not be empty" })
  } else if (name === DEFAULT_RULE_NAME) {
    problems.push({
      path: ["rules", index, "name"],
      message: `rule name "${DEFAULT_RULE_NAME}" is reserved for the defaults block`,
    })
  } else {
    const first = firstIndexByName.get(name)
    if (first === undefined) firstIndexByName.set(name, index)
    else
      problems.push({
        path: ["rules", index, "name"],
        message: `duplicate rule name "${name}" (first used by rules[${first}])`,
      })
  }
}

/** What a rule compiles to from its own spec alone (the name checks aside). Frozen: versions share it. */
const compileRuleAlone = (
  spec: RuleSpec,
  index: number,
  problems: Array<SpecProblem>,
  refused: Refused,
): CompiledRule => {
  const base = ["rules", index] as const
  let metricName: CompiledRule["metricName"]
  const source = spec.match?.metric_name
  if (source !== undefined) {
    if (source === "") {
      problems.push({
        path: [...base, "match", "metric_name"],
        message: "must not be empty (omit metric_name to match every metric)",
      })
    } else {
      try {
        metricName = compileMetricRegex(source)
      } catch (e) {
        problems.push({
          path: [...base, "match", "metric_name"],
          message: `invalid RE2 regex: ${regexError(source, e)}`,
        })
      }
    }
  }
  const labels: Array<{ name: string; value: string | undefined }> = []
  for (const [name, value] of Object.entries(spec.match?.labels ?? {})) {
    if (name === "") {
      problems.push({
        path: [...base, "match", "labels", name],
        message: "label name must not be empty",
        atKey: true,
      })
    }
    labels.push(Object.freeze({ name, value: value === "*" ? undefined : value }))
  }
  checkLimitFields(spec, base, problems, refused)
  checkStripLabels(spec, base, problems)
  const fields = limitsOf(spec.name, spec)
  return Object.freeze(
    ruleOf({
      ...fields,
      ...compileAdvanced(spec, base, problems, refused),
      groupBy: Object.freeze([...fields.groupBy]),
      stripLabels: Object.freeze([...fields.stripLabels]),
      metricName,
      metricNameSource: source,
      metricNamePrefix: source === undefined ? "" : literalPrefix(source),
      labels: Object.freeze(labels),
    }),
  )
}

/**
 * A rule as one object literal with its keys in one order: every rule then has the same hidden
 * class, so the data path's reads of a rule's fields stay monomorphic. (Rules built by spreading
 * parts get a hidden class per allocation pattern, and with a thousand rules those reads went
 * through V8's megamorphic cache.)
 */
export const ruleOf = (r: CompiledRule): CompiledRule => ({
  name: r.name,
  metricName: r.metricName,
  metricNameSource: r.metricNameSource,
  metricNamePrefix: r.metricNamePrefix,
  labels: r.labels,
  maxDatapointsRate: r.maxDatapointsRate,
  maxCardinality: r.maxCardinality,
  action: r.action,
  groupBy: r.groupBy,
  sampleRate: r.sampleRate,
  stripLabels: r.stripLabels,
  info: r.info,
  tiers: r.tiers,
  labelLimits: r.labelLimits,
  labelLimitAction: r.labelLimitAction,
  priority: r.priority,
  shaped: r.shaped,
})

/**
 * A bounded cache in two generations of at most `max` entries each: an entry found in the older
 * one moves to the newer one, and when the newer one is full it becomes the older one (the older
 * one is dropped). So the entries of the last few uses stay, and a working set larger than `max`
 * still works (partly uncached).
 */
export class GenerationCache<V> {
  private current = new Map<string, V>()
  private older = new Map<string, V>()

  constructor(readonly max: number) {}

  get size(): number {
    return this.current.size + this.older.size
  }

  get(key: string): V | undefined {
    const hit = this.current.get(key)
    if (hit !== undefined) return hit
    const old = this.older.get(key)
    if (old !== undefined) this.set(key, old)
    return old
  }

  set(key: string, value: V): void {
    if (this.current.size >= this.max) {
      this.older = this.current
      this.current = new Map()
    }
    this.current.set(key, value)
  }

  clear(): void {
    this.current.clear()
    this.older.clear()
  }
}

/**
 * Compiled rules by the JSON of their spec, shared by every config version: most reloads change a
 * rule or two, so a reload compiles only the rules whose text it has not seen. Sharing is safe: a
 * compiled rule is frozen (its regex is immutable, see `regexCache`), stats are kept by rule name
 * and the match cache by position, and one valid version cannot hold two rules of the same JSON
 * (they would have the same name). Two specs of the same JSON compile alike: the JSON keeps the
 * order of the label conditions, and a spec holds nothing JSON leaves out that compiling reads
 * (its numbers are finite; a limit of -0 and one of 0 share an entry and act alike). Only rules
 * that compile without a problem are kept.
 */
export class RuleCache extends GenerationCache<CompiledRule> {
  /**
   * The same by the spec object itself: a reload that reuses a rule's decode (see
   * `decodeLimitsSpecReusing`) hands over the very object, found here without writing its JSON.
   * Weak: an entry lives as long as its spec. Specs are never modified once decoded.
   */
  readonly bySpec = new WeakMap<RuleSpec, CompiledRule>()
}

/** Rules per generation of the shared cache: two versions of a 16,000-rule file are all kept. */
export const RULE_CACHE_MAX = 32_768

/** The cache every config version's compilation shares (see `RuleCache`). */
export const ruleCache = new RuleCache(RULE_CACHE_MAX)

const compileRule = (
  spec: RuleSpec,
  index: number,
  firstIndexByName: Map<string, number>,
  problems: Array<SpecProblem>,
  cache: RuleCache | null,
  refused: Refused,
): CompiledRule => {
  checkName(spec.name, index, firstIndexByName, problems, refused)
  // A file the schema refused parts of is reported, never kept: no cache for it.
  if (cache === null || refused !== NONE_REFUSED) return compileRuleAlone(spec, index, problems, refused)
  const same = cache.bySpec.get(spec)
  if (same !== undefined) return same
  const key = JSON.stringify(spec)
  const hit = cache.get(key)
  if (hit !== undefined) {
    cache.bySpec.set(spec, hit)
    return hit
  }
  const before = problems.length
  const rule = compileRuleAlone(spec, index, problems, refused)
  if (problems.length === before) {
    cache.set(key, rule)
    cache.bySpec.set(spec, rule)
  }
  return rule
}

/**
 * The compilation of a spec, one rule per step (see `threads/slices.ts`): a caller that must not
 * hold the thread for long (a reload beside the data path) runs it in slices. Rules already
 * compiled by an earlier version come from `cache` (default: the shared `ruleCache`); the result
 * is the same as without it (`freshCompileSteps`). `refused` names the fields the schema refused.
 */
export function* compileSteps(
  spec: LimitsSpec,
  cache: RuleCache | null = ruleCache,
  refused: Refused = NONE_REFUSED,
): Steps<CompileResult> {
  const problems: Array<SpecProblem> = []
  const windowMs = spec.window ?? DEFAULT_WINDOW_MS
  if (spec.window !== undefined && (windowMs < MIN_WINDOW_MS || windowMs > MAX_WINDOW_MS)) {
    problems.push({ path: ["window"], message: "must be between 1s and 24h" })
  }
  const deadRuleIntervalMs = spec.dead_rule_interval ?? 0
  if (spec.dead_rule_interval !== undefined && deadRuleIntervalMs < MIN_WINDOW_MS) {
    problems.push({ path: ["dead_rule_interval"], message: "must be at least 1s" })
  }
  const required = spec.required_labels ?? []
  const firstIndexByName = new Map<string, number>()
  const specs = spec.rules ?? []
  const rules: Array<CompiledRule> = new Array(specs.length)
  for (let i = 0; i < specs.length; i++) {
    const ruleSpec = specs[i] as RuleSpec
    rules[i] = compileRule(ruleSpec, i, firstIndexByName, problems, cache, refused)
    if (required.length > 0 && !refused(["rules", i, "labels"])) {
      const missing = required.filter((k) => (ruleSpec.labels?.[k] ?? "") === "")
      if (missing.length > 0) {
        problems.push({
          path: ruleSpec.labels === undefined ? ["rules", i, "name"] : ["rules", i, "labels"],
          message: `labels must hold ${missing.map((k) => JSON.stringify(k)).join(", ")} (required_labels)`,
        })
      }
    }
    if (endsStep(i)) yield
  }
  let defaults: CompiledRule | undefined
  if (spec.defaults !== undefined) {
    checkLimitFields(spec.defaults, ["defaults"], problems, refused)
    checkStripLabels(spec.defaults, ["defaults"], problems)
    const fields = limitsOf(DEFAULT_RULE_NAME, spec.defaults)
    if (fields.maxCardinality > 0 || fields.maxDatapointsRate > 0) {
      defaults = Object.freeze(
        ruleOf({
          ...fields,
          metricName: undefined,
          metricNameSource: undefined,
          metricNamePrefix: "",
          labels: [],
        }),
      )
    }
  }
  if (problems.length > 0) return { _tag: "Problems", problems }
  return { _tag: "Compiled", limits: { windowMs, rules, defaults, deadRuleIntervalMs } }
}

/** `compileSteps` without any cache: every rule compiled afresh (regexes still from `regexCache`). */
export const freshCompileSteps = (spec: LimitsSpec): Steps<CompileResult> => compileSteps(spec, null)

/**
 * Turns a decoded `limits.yaml` into the immutable, compiled rules of one config version, or lists
 * every semantic problem (duplicate or empty names, invalid regexes, fields an action needs).
 * Pure: the same spec always gives the same result.
 */
export const compileLimits = (spec: LimitsSpec, refused: Refused = NONE_REFUSED): CompileResult =>
  runToEnd(compileSteps(spec, ruleCache, refused))
