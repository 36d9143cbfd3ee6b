/**
 * The text of an OTLP attribute value as a label value, and the flat key-sorted label list of an
 * attribute set: how OTLP attributes become the `labels` of a `SeriesBatch` entry.
 *
 * - string: as is; bool: `true` / `false`; int: decimal (exact, 64-bit);
 * - double: the shortest text that reads back as the same number (`1.5`, `1e+21`), with `NaN`,
 *   `+Inf`, `-Inf` as Prometheus writes them, and `-0` as `0`;
 * - bytes: standard base64;
 * - array / kvlist: compact JSON (`["a",1,true]`, `{"k":"v"}`); inside it doubles that are not
 *   finite are the strings `"NaN"`, `"+Inf"`, `"-Inf"`, bytes are base64 strings, an empty value
 *   is `null`, and kvlist keys are sorted (first occurrence of a repeated key wins), so the same
 *   map always gives the same text;
 * - empty (no value set): the empty string.
 *
 * Keys sort by UTF-16 code unit (JavaScript's `<`). Within one attribute list the first
 * occurrence of a repeated key wins (the spec forbids repeats; this is what the OpenTelemetry
 * Collector's `Map.Get` returns).
 */
import type { AnyValue, KeyValue } from "./types.js"

/** The label text of a double attribute value. */
export const doubleText = (v: number): string => {
  if (Number.isFinite(v)) return String(v) // String(-0) === "0"
  return Number.isNaN(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf"
}

const base64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64")

const json = (v: AnyValue): string => {
  switch (v.type) {
    case "string":
      return JSON.stringify(v.value)
    case "bool":
      return v.value ? "true" : "false"
    case "int":
      return String(v.value)
    case "double":
      return Number.isFinite(v.value) ? String(v.value) : `"${doubleText(v.value)}"`
    case "bytes":
      return `"${base64(v.value)}"`
    case "array":
      return `[${v.values.map(json).join(",")}]`
    case "kvlist": {
      const parts: string[] = []
      for (const kv of uniqueSorted(v.values)) parts.push(`${JSON.stringify(kv.key)}:${json(kv.value)}`)
      return `{${parts.join(",")}}`
    }
    case "empty":
      return "null"
  }
}

/** The label value of an attribute value. */
export const attributeText = (v: AnyValue): string => {
  switch (v.type) {
    case "string":
      return v.value
    case "bool":
      return v.value ? "true" : "false"
    case "int":
      return String(v.value)
    case "double":
      return doubleText(v.value)
    case "bytes":
      return base64(v.value)
    case "array":
    case "kvlist":
      return json(v)
    case "empty":
      return ""
  }
}

/** `kvs` sorted by key (stable), keeping the first of each repeated key. */
const uniqueSorted = (kvs: ReadonlyArray<KeyValue>): KeyValue[] => {
  const out = kvs.slice()
  const n = out.length
  if (n <= 16) {
    // Insertion sort: stable, and the fastest for the usual handful of attributes.
    for (let i = 1; i < n; i++) {
      const cur = out[i] as KeyValue
      let j = i - 1
      while (j >= 0 && (out[j] as KeyValue).key > cur.key) {
        out[j + 1] = out[j] as KeyValue
        j--
      }
      out[j + 1] = cur
    }
  } else {
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)) // Array#sort is stable
  }
  let w = 0
  for (let r = 0; r < n; r++) {
    const kv = out[r] as KeyValue
    if (w > 0 && (out[w - 1] as KeyValue).key === kv.key) continue
    out[w++] = kv
  }
  out.length = w
  return out
}

const NO_LABELS: ReadonlyArray<string> = Object.freeze([])

/** An attribute list as a flat key-sorted `[k0, v0, k1, v1, …]` label list (first of a repeated key wins). */
export const flattenAttributes = (attrs: ReadonlyArray<KeyValue>): ReadonlyArray<string> => {
  const n = attrs.length
  if (n === 0) return NO_LABELS
  if (n === 1) {
    const kv = attrs[0] as KeyValue
    return [kv.key, attributeText(kv.value)]
  }
  const out: string[] = []
  for (const kv of uniqueSorted(attrs)) out.push(kv.key, attributeText(kv.value))
  return out
}

/**
 * Visits the merge of two flat key-sorted label lists in key order; on a key present in both,
 * only `over`'s label is visited. `overLength`: how much of `over` is the list (default: all).
 */
export const forEachMergedLabel = (
  base: ReadonlyArray<string>,
  over: ReadonlyArray<string>,
  visit: (key: string, value: string) => void,
  overLength: number = over.length,
): void => {
  let i = 0
  let j = 0
  while (i < base.length && j < overLength) {
    const kb = base[i] as string
    const ko = over[j] as string
    if (kb < ko) {
      visit(kb, base[i + 1] as string)
      i += 2
    } else {
      visit(ko, over[j + 1] as string)
      if (kb === ko) i += 2
      j += 2
    }
  }
  for (; i < base.length; i += 2) visit(base[i] as string, base[i + 1] as string)
  for (; j < overLength; j += 2) visit(over[j] as string, over[j + 1] as string)
}

/**
 * Merges two flat key-sorted label lists; on a key present in both, `over` wins. Returns one of
 * the inputs unchanged when the other is empty.
 */
export const mergeLabels = (
  base: ReadonlyArray<string>,
  over: ReadonlyArray<string>,
): ReadonlyArray<string> => {
  if (base.length === 0) return over
  if (over.length === 0) return base
  const out: string[] = []
  forEachMergedLabel(base, over, (k, v) => {
    out.push(k, v)
  })
  return out
}
