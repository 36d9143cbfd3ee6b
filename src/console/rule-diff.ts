/**
 * The rule-level difference of two limits files: rules added, removed, and changed (each changed
 * key with its old and new value), plus the file's other settings (`window`, `defaults.*`). Rules
 * are matched by name; a rename is a removal and an addition. Pure.
 *
 * @module
 */
import type { LimitsSpec } from "../config/limits-schema.js"

/** A value as the YAML gave it, in JSON terms; `null` when the key is absent. */
export type KeyValue = string | number | boolean | ReadonlyArray<unknown> | null

export interface KeyChange {
  /** Dotted path inside the rule (`max_cardinality`, `match.labels.env`) or the file (`defaults.action`). */
  readonly key: string
  readonly old: KeyValue
  readonly new: KeyValue
}

export interface RuleChange {
  readonly rule: string
  readonly changes: ReadonlyArray<KeyChange>
}

export interface RuleDiff {
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  readonly changed: ReadonlyArray<RuleChange>
  /** Keys outside `rules` (`window`, `defaults.*`). */
  readonly settings: ReadonlyArray<KeyChange>
}

export const isEmptyDiff = (d: RuleDiff): boolean =>
  d.added.length === 0 && d.removed.length === 0 && d.changed.length === 0 && d.settings.length === 0

/** Flattens an object into dotted keys; arrays and scalars are leaves. */
const flatten = (value: unknown, prefix: string, out: Map<string, KeyValue>): void => {
  if (value === undefined) return
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      flatten(v, prefix === "" ? k : `${prefix}.${k}`, out)
    }
    return
  }
  out.set(prefix, value as KeyValue)
}

const sameValue = (a: KeyValue, b: KeyValue): boolean => JSON.stringify(a) === JSON.stringify(b)

/** Every key whose value differs, in the order of the old keys then the new ones. */
export const keyChanges = (oldValue: unknown, newValue: unknown, prefix = ""): Array<KeyChange> => {
  const a = new Map<string, KeyValue>()
  const b = new Map<string, KeyValue>()
  flatten(oldValue, prefix, a)
  flatten(newValue, prefix, b)
  const keys = [...a.keys(), ...[...b.keys()].filter((k) => !a.has(k))]
  const out: Array<KeyChange> = []
  for (const key of keys) {
    const o = a.get(key) ?? null
    const n = b.get(key) ?? null
    if (!sameValue(o, n)) out.push({ key, old: o, new: n })
  }
  return out
}

/** The rule-level difference from `oldSpec` to `newSpec` (either may be absent: no limits file). */
export const ruleDiff = (oldSpec: LimitsSpec | undefined, newSpec: LimitsSpec | undefined): RuleDiff => {
  const oldRules = new Map((oldSpec?.rules ?? []).map((r) => [r.name, r]))
  const newRules = new Map((newSpec?.rules ?? []).map((r) => [r.name, r]))
  const added = [...newRules.keys()].filter((n) => !oldRules.has(n))
  const removed = [...oldRules.keys()].filter((n) => !newRules.has(n))
  const changed: Array<RuleChange> = []
  for (const [name, rule] of newRules) {
    const before = oldRules.get(name)
    if (before === undefined) continue
    const { name: _a, ...restOld } = before
    const { name: _b, ...restNew } = rule
    const changes = keyChanges(restOld, restNew)
    if (changes.length > 0) changed.push({ rule: name, changes })
  }
  const settings = keyChanges(
    { window: oldSpec?.window, defaults: oldSpec?.defaults },
    { window: newSpec?.window, defaults: newSpec?.defaults },
  )
  return { added, removed, changed, settings }
}

const show = (v: KeyValue): string => (v === null ? "(unset)" : JSON.stringify(v))

/** The diff as lines of text: `+ rule`, `- rule`, `~ rule: key old -> new`. */
export const formatRuleDiff = (d: RuleDiff): Array<string> => [
  ...d.added.map((r) => `+ rule ${r}`),
  ...d.removed.map((r) => `- rule ${r}`),
  ...d.changed.flatMap((c) =>
    c.changes.map((k) => `~ rule ${c.rule}: ${k.key} ${show(k.old)} -> ${show(k.new)}`),
  ),
  ...d.settings.map((k) => `~ ${k.key} ${show(k.old)} -> ${show(k.new)}`),
]
