import type { SeriesBatch } from "./batch.js"
import { type MatchCache, NOT_CACHED, OWNER_DEFAULTS, OWNER_NONE } from "./match-cache.js"
import type { CompiledLimits, CompiledRule } from "./rules.js"

/**
 * Separator of the parts of a series key and of a group key. Label names and values that contain
 * it could make two label sets share a key; it does not occur in Prometheus label names.
 */
export const KEY_SEPARATOR = "\u0000"

/** The match cache of a config version is emptied when it would grow past this many series. */
export const MATCH_CACHE_MAX = 100_000

/**
 * The key of one series: the metric name and every label (`labels` is the batch's flat, key-sorted
 * `[k0, v0, k1, v1, …]` list), joined by {@link KEY_SEPARATOR}. A label with an empty value is left
 * out, as Prometheus does: `{env=""}` is the same series as no `env` label.
 */
export const seriesKey = (name: string, labels: ReadonlyArray<string>): string => {
  const n = labels.length
  if (n === 0) return name
  for (let j = 1; j < n; j += 2) if (labels[j] === "") return keyWithoutEmpty(name, labels)
  return name + KEY_SEPARATOR + labels.join(KEY_SEPARATOR)
}

const keyWithoutEmpty = (name: string, labels: ReadonlyArray<string>): string => {
  let key = name
  for (let j = 0; j + 1 < labels.length; j += 2) {
    const v = labels[j + 1] as string
    if (v !== "") key += KEY_SEPARATOR + (labels[j] as string) + KEY_SEPARATOR + v
  }
  return key
}

/**
 * The value of `label` on a series, `undefined` when absent. `__name__` is the metric name, so
 * rules may also match and group on it.
 */
export const labelValue = (
  name: string,
  labels: ReadonlyArray<string>,
  label: string,
): string | undefined => {
  if (label === "__name__") return name
  for (let j = 0; j < labels.length; j += 2) if (labels[j] === label) return labels[j + 1]
  return undefined
}

/**
 * Whether `rule` matches the series: every label condition holds and the anchored `metric_name`
 * regex matches. A condition `"*"` needs the label present with a non-empty value; `""` needs it
 * absent (or empty); any other value needs exactly that value. Label conditions are checked first,
 * as they are cheaper than the regex.
 */
export const ruleMatches = (rule: CompiledRule, name: string, labels: ReadonlyArray<string>): boolean => {
  if (!name.startsWith(rule.metricNamePrefix)) return false
  const conditions = rule.labels
  for (let c = 0; c < conditions.length; c++) {
    const cond = conditions[c] as CompiledRule["labels"][number]
    const v = labelValue(name, labels, cond.name)
    if (cond.value === undefined) {
      if (v === undefined || v === "") return false
    } else if (cond.value === "") {
      if (v !== undefined && v !== "") return false
    } else if (v !== cond.value) return false
  }
  return rule.metricName === undefined || rule.metricName.testExact(name)
}

/** The rule that owns the series: the first matching rule in file order, else `defaults` (if set). */
export const matchRule = (
  limits: CompiledLimits,
  name: string,
  labels: ReadonlyArray<string>,
): CompiledRule | undefined => {
  const rules = limits.rules
  for (let r = 0; r < rules.length; r++) {
    const rule = rules[r] as CompiledRule
    if (ruleMatches(rule, name, labels)) return rule
  }
  return limits.defaults
}

/** The owner code of `owner` (see `MatchCache`): its index in the rules, or a special code. */
export const ownerCode = (limits: CompiledLimits, owner: CompiledRule | undefined): number =>
  owner === undefined ? OWNER_NONE : owner === limits.defaults ? OWNER_DEFAULTS : limits.rules.indexOf(owner)

/** The owner an owner code stands for under `limits`; `null`: untracked. */
export const ownerOfCode = (limits: CompiledLimits, code: number): CompiledRule | null =>
  code >= 0 ? (limits.rules[code] ?? null) : code === OWNER_DEFAULTS ? (limits.defaults ?? null) : null

/**
 * The owner code of entry `i` of `batch`, whose fingerprint is `(hi, lo)`, through the match
 * cache: matched against the rules (its name and labels decoded) only when not cached yet. Each
 * series is matched once, until the cache passes {@link MATCH_CACHE_MAX} entries and starts over.
 */
export const ownerOf = (
  limits: CompiledLimits,
  cache: MatchCache,
  hi: number,
  lo: number,
  batch: SeriesBatch,
  i: number,
): number => {
  let code = cache.get(hi, lo)
  if (code === NOT_CACHED) {
    code = ownerCode(limits, matchRule(limits, batch.nameOf(i), batch.labelsOf(i)))
    cache.set(hi, lo, code)
  }
  return code
}

/**
 * The group of a series under `groupBy`: the values of those labels joined by
 * {@link KEY_SEPARATOR}, a missing label counting as empty. One label: its value, unjoined.
 */
export const groupKey = (
  groupBy: ReadonlyArray<string>,
  name: string,
  labels: ReadonlyArray<string>,
): string => {
  if (groupBy.length === 1) return labelValue(name, labels, groupBy[0] as string) ?? ""
  let key = ""
  for (let g = 0; g < groupBy.length; g++) {
    if (g > 0) key += KEY_SEPARATOR
    key += labelValue(name, labels, groupBy[g] as string) ?? ""
  }
  return key
}
