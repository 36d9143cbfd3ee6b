import { FAILSAFE_SCHEMA, load as loadYaml, Type } from "js-yaml"
import {
  isAlias,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  visit,
} from "yaml"
import { GenerationCache } from "../limits/compile.js"

/** A parsed YAML document that can tell where any key path is written. */
export interface YamlSource {
  /** The document as plain JS values (maps become objects), or undefined for an empty document. */
  readonly value: unknown
  /** 1-based line and column of the node at `path` (the key itself when `atKey`), or of its nearest parent. */
  readonly locate: (path: ReadonlyArray<string | number>, atKey?: boolean) => { line: number; column: number }
}

export type YamlParseOutcome =
  | { readonly _tag: "Parsed"; readonly source: YamlSource }
  | {
      readonly _tag: "SyntaxErrors"
      readonly errors: ReadonlyArray<{ line: number; column: number; message: string }>
    }

const MAX_ALIASES = 100

/** The parser's wording, where it speaks to a programmer rather than to the operator. */
const friendly = (message: string): string =>
  message.startsWith("Source contains multiple documents")
    ? "only one YAML document is allowed (remove the `---` separator)"
    : message

/** Parses one YAML document strictly: duplicate keys, multiple documents and alias bombs are errors. */
export const parseYaml = (text: string): YamlParseOutcome => {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true })
  const pos = (offset: number) => {
    const p = lineCounter.linePos(offset)
    return { line: p.line, column: p.col }
  }
  if (doc.errors.length > 0) {
    return {
      _tag: "SyntaxErrors",
      errors: doc.errors.map((e) => ({
        ...pos(e.pos[0]),
        message: `yaml: ${friendly(e.message.split("\n")[0] ?? "")}`,
      })),
    }
  }
  // A `__proto__` key cannot be kept in a plain object: schema records would silently drop it.
  const protoKeys: Array<{ line: number; column: number; message: string }> = []
  visit(doc, {
    Pair(_, pair) {
      const key = isAlias(pair.key) ? pair.key.resolve(doc) : pair.key
      if (isScalar(key) && key.value === "__proto__") {
        const at = isNode(pair.key) ? (pair.key.range?.[0] ?? 0) : 0
        protoKeys.push({ ...pos(at), message: 'yaml: the key "__proto__" is not allowed' })
      }
    },
  })
  if (protoKeys.length > 0) return { _tag: "SyntaxErrors", errors: protoKeys }
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIASES })
  } catch (e) {
    return {
      _tag: "SyntaxErrors",
      errors: [{ line: 1, column: 1, message: `yaml: ${e instanceof Error ? e.message : String(e)}` }],
    }
  }
  const locate = (path: ReadonlyArray<string | number>, atKey = false) => {
    let node: Node | null = isNode(doc.contents) ? doc.contents : null
    let offset = node?.range?.[0] ?? 0
    for (let i = 0; i < path.length && node !== null; i++) {
      const seg = path[i]
      const last = i === path.length - 1
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
        )
        if (pair === undefined) break
        const key = isNode(pair.key) ? pair.key : null
        const value = isNode(pair.value) ? pair.value : null
        if ((last && atKey) || value === null) {
          offset = key?.range?.[0] ?? offset
          break
        }
        node = value
      } else if (isSeq(node) && typeof seg === "number") {
        const item = node.items[seg]
        if (!isNode(item)) break
        node = item
      } else {
        break
      }
      offset = node.range?.[0] ?? offset
    }
    return pos(offset)
  }
  return { _tag: "Parsed", source: { value, locate } }
}

/**
 * Plain scalars that YAML 1.2's core schema reads as null, bool, int or float. A map key that
 * looks like one is turned into a different string by each parser (`null:` is `""` for one and
 * `"null"` for the other), so the fast path leaves such documents to the full parser.
 */
const CORE_NON_STRING =
  /^(?:|~|[Nn]ull|NULL|[Tt]rue|TRUE|[Ff]alse|FALSE|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/

/** One plain-scalar type of the core schema, resolved exactly as the full parser resolves it. */
const coreScalar = (name: string, test: RegExp, construct: (s: string) => unknown): Type =>
  // Distinct tags: js-yaml keeps one type per tag. (Explicit tags never reach this parser.)
  new Type(`tag:metrics-governor,core:${name}`, {
    kind: "scalar",
    resolve: (s: string) => test.test(s),
    construct,
  })

/** The core schema of YAML 1.2, with the full parser's own patterns and conversions. */
const CORE = FAILSAFE_SCHEMA.extend({
  implicit: [
    coreScalar("null", /^(?:~|[Nn]ull|NULL)?$/, () => null),
    coreScalar("bool", /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/, (s) => s[0] === "t" || s[0] === "T"),
    coreScalar("int-oct", /^0o[0-7]+$/, (s) => Number.parseInt(s.substring(2), 8)),
    coreScalar("int", /^[-+]?[0-9]+$/, (s) => Number.parseInt(s, 10)),
    coreScalar("int-hex", /^0x[0-9a-fA-F]+$/, (s) => Number.parseInt(s.substring(2), 16)),
    coreScalar("float-special", /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/, (s) =>
      s.slice(-3).toLowerCase() === "nan"
        ? Number.NaN
        : s[0] === "-"
          ? Number.NEGATIVE_INFINITY
          : Number.POSITIVE_INFINITY,
    ),
    coreScalar("float-exp", /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/, Number.parseFloat),
    coreScalar("float", /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/, Number.parseFloat),
  ],
})

/** A `?` key indicator, or a flow collection used as a key: keys the two parsers turn into different strings. */
const COMPLEX_KEY = /(?:^|[\s[{,])\?(?:\s|$)|[\]}]\s*:/m

/** A quote followed by `#` with no space between: one parser reads a comment there, the other an error. */
const QUOTE_THEN_HASH = /["']#/

/** An anchor (`&name`): documents with anchors and aliases take the full parser. */
const ANCHOR = /(?:^|[\s[{,:-])&\S/m

/**
 * Whether a quoted scalar runs over a line end. The parsers disagree on malformed ones (one reads
 * an unterminated quote as ending on a later line), so such documents take the full parser. A
 * quote starts a scalar only where a scalar can start: at the start of a line's content or after
 * `:`, `-`, `?`, `,`, `[` or `{` (and spaces); `#` after a space starts a comment.
 */
const hasMultilineQuoted = (text: string): boolean => {
  // Lines without a quote cannot start one: only the lines from the first quote on are scanned.
  let from = firstQuote(text, 0)
  while (from >= 0) {
    const start = text.lastIndexOf("\n", from) + 1
    const end = quotedLineEnd(text, start)
    if (end < 0) return true
    from = firstQuote(text, end)
  }
  return false
}

const firstQuote = (text: string, from: number): number => {
  const d = text.indexOf('"', from)
  const q = text.indexOf("'", from)
  return d < 0 ? q : q < 0 ? d : Math.min(d, q)
}

/**
 * Scans one line from `start` (see `hasMultilineQuoted`): the offset of its end (or of the text's
 * end), or -1 when a quoted scalar started on it runs over its end.
 */
const quotedLineEnd = (text: string, start: number): number => {
  let last = 10 // the last non-space character outside quotes on this line (a line break: none yet)
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 10 /* \n */) {
      return i
    } else if (
      c === 35 /* # */ &&
      (last === 10 || text.charCodeAt(i - 1) === 32 || text.charCodeAt(i - 1) === 9)
    ) {
      const eol = text.indexOf("\n", i)
      return eol < 0 ? text.length : eol
    } else if ((c === 34 || c === 39) /* " ' */ && QUOTE_MAY_FOLLOW.has(last)) {
      for (i++; ; i++) {
        if (i >= text.length) return -1
        const q = text.charCodeAt(i)
        if (q === 10) return -1
        if (c === 34 && q === 92 /* \\ */) i++
        else if (q === c) {
          if (c === 39 && text.charCodeAt(i + 1) === 39) i++
          else break
        }
      }
      last = c
    } else if (c !== 32 && c !== 9 && c !== 13) {
      last = c
    }
  }
  return text.length
}

/** What a quoted scalar may start after: a line's start, `:`, `-`, `?`, `,`, `[` or `{`. */
const QUOTE_MAY_FOLLOW = new Set([10, 58, 45, 63, 44, 91, 123])

/** Whether `value` is a tree (no node reached twice) whose keys cannot be taken for another scalar. */
const plainTree = (value: unknown, seen: Set<object>): boolean => {
  if (value === null || typeof value !== "object") return true
  if (seen.has(value)) return false
  seen.add(value)
  if (Array.isArray(value)) {
    for (const item of value) if (!plainTree(item, seen)) return false
    return true
  }
  for (const key of Object.keys(value)) {
    if (CORE_NON_STRING.test(key)) return false
    if (!plainTree((value as Record<string, unknown>)[key], seen)) return false
  }
  return true
}

/**
 * The value of a plain YAML document, parsed by `js-yaml` (several times faster than `yaml`, but
 * without positions), or `undefined` when the document must go through `parseYaml`: a syntax
 * error, tags (`!`), merge keys, `__proto__`, complex keys, a quoted scalar over several lines, anchors, an empty document, or a
 * string that could be read as another scalar. Where it returns a value, `parseYaml` returns the
 * same value (a property test holds the two to it); errors always come from `parseYaml`, with
 * their line and column.
 */
export const fastYamlValue = (text: string): { readonly value: unknown } | undefined => {
  if (text.includes("!") || text.includes("<<") || text.includes("__proto__") || COMPLEX_KEY.test(text)) {
    return undefined
  }
  if (ANCHOR.test(text) || QUOTE_THEN_HASH.test(text)) return undefined
  // The last check looks at one line at a time: the list's items are checked one by one (and
  // only when their text is new), the rest of the document as a whole.
  const listed = byItems(text)
  if (listed !== undefined) return listed
  if (hasMultilineQuoted(text)) return undefined
  let value: unknown
  try {
    value = loadYaml(text, { schema: CORE, json: false })
  } catch {
    return undefined
  }
  if (value === null || typeof value !== "object") return undefined
  return plainTree(value, new Set()) ? { value } : undefined
}

/** The top-level key whose block list `byItems` parses item by item. */
const LISTED_KEY = /^rules[ ]*:/
const LISTED_LINE = /^rules[ ]*:[ ]*(?:#.*)?\r?$/

/**
 * Parsed items of the list, by the item's text (its lines, the list's indentation removed), shared
 * by every reload: an edit of one rule parses one item. Values are frozen; they are never changed.
 */
const itemCache = new GenerationCache<Item>(32_768)

/** A list item's text (as written, indentation included) and its parsed, frozen value. */
interface Item {
  readonly raw: string
  readonly value: unknown
}

/** The items of the last list parsed, in order. */
let lastItems: ReadonlyArray<Item> = []
/** The document around the list (the list written `[]`), as last parsed. */
let lastOuter: { readonly text: string; readonly value: Record<string, unknown> } | undefined

const deepFreeze = (value: unknown): unknown => {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

const parsePlain = (text: string): { readonly value: unknown } | undefined => {
  let value: unknown
  try {
    value = loadYaml(text, { schema: CORE, json: false })
  } catch {
    return undefined
  }
  return plainTree(value, new Set()) ? { value } : undefined
}

/**
 * The document's value with its `rules:` block list parsed one item at a time, each item through
 * `itemCache`: the same value as parsing the whole text (a property test holds the two to it),
 * and the same verdict on quoted strings over several lines (checked line by line, so part by part),
 * where a reload that edits one rule of a thousand parses one rule. `undefined` when the document
 * is not laid out so (no `rules:` key at the top, its value not a block list, an indentation this
 * does not follow, tabs): the whole text is then parsed at once. Called only on a text that passed
 * `fastYamlValue`'s checks (no anchors, tags, complex keys or quoted strings over several lines),
 * so an item's lines are exactly the lines between two dashes at the list's indentation.
 */
export const byItems = (text: string): { readonly value: unknown } | undefined => {
  if (text.includes("\t")) return undefined
  // The `rules:` line: its offset, and where the list after it starts.
  const keyAt = listedKeyAt(text)
  if (keyAt < 0) return undefined
  const keyEnd = lineEnd(text, keyAt)
  if (!LISTED_LINE.test(text.slice(keyAt, keyEnd))) return undefined
  let at = keyEnd + 1
  while (at < text.length && blankOrComment(text, at)) at = lineEnd(text, at) + 1
  if (at >= text.length) return undefined
  const indent = leadOf(text, at)
  if (!isItemAt(text, at, indent)) return undefined
  const items: Array<unknown> = []
  const kept: Array<Item> = []
  let start = at
  let end = lineEnd(text, at) + 1
  // Each line after an item's first: more indented (the item goes on), blank or a comment (the
  // same), a dash at the list's indentation (the next item), at the left margin (the list ends),
  // or anything else (a layout this does not follow).
  for (;;) {
    if (end < text.length && !blankOrComment(text, end)) {
      const lead = leadOf(text, end)
      if (lead > indent) {
        end = lineEnd(text, end) + 1
        continue
      }
      if (lead > 0 && !isItemAt(text, end, indent)) return undefined
    } else if (end < text.length) {
      end = lineEnd(text, end) + 1
      continue
    }
    const raw = text.slice(start, Math.min(end, text.length))
    // Most items are the very text of the same item last time (compared, not hashed).
    const before = lastItems[items.length]
    const item = before !== undefined && before.raw === raw ? before : parseItem(raw, indent)
    if (item === undefined) return undefined
    items.push(item.value)
    kept.push(item)
    if (end >= text.length || !isItemAt(text, end, indent)) break
    start = end
    end = lineEnd(text, end) + 1
  }
  const outerText = detached(`${text.slice(0, keyAt)}rules: []\n${text.slice(Math.min(end, text.length))}`)
  let outer = lastOuter?.text === outerText ? lastOuter.value : undefined
  if (outer === undefined) {
    if (hasMultilineQuoted(outerText)) return undefined
    const parsed = parsePlain(outerText)
    const value = parsed?.value
    if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined
    outer = deepFreeze(value) as Record<string, unknown>
    lastOuter = { text: outerText, value: outer }
  }
  lastItems = kept
  return { value: { ...outer, rules: items } }
}

/** The offset of the one `rules:` line at the left margin; -1 when there is none or more than one. */
const listedKeyAt = (text: string): number => {
  let found = -1
  for (let at = text.startsWith("rules") ? 0 : -1; ; ) {
    if (at < 0) {
      const i = text.indexOf("\nrules", 0)
      if (i < 0) return found
      at = i + 1
    }
    if (LISTED_KEY.test(text.slice(at, lineEnd(text, at)))) {
      if (found >= 0) return -1 // a duplicate key: the whole parse reports it
      found = at
    }
    const next = text.indexOf("\nrules", at)
    if (next < 0) return found
    at = next + 1
  }
}

/** The offset of the line break that ends the line at `at` (or the text's length). */
const lineEnd = (text: string, at: number): number => {
  const i = text.indexOf("\n", at)
  return i < 0 ? text.length : i
}

/** The number of spaces that start the line at `at`. */
const leadOf = (text: string, at: number): number => {
  let i = at
  while (text.charCodeAt(i) === 32) i++
  return i - at
}

/** Whether the line at `at` has nothing to parse: blank, or a comment. */
const blankOrComment = (text: string, at: number): boolean => {
  const c = text.charCodeAt(at + leadOf(text, at))
  return Number.isNaN(c) || c === 10 || c === 13 || c === 35 /* # */
}

/** Whether the line at `at` starts an item of a list at `indent`: that many spaces, a dash, then a space or its end. */
const isItemAt = (text: string, at: number, indent: number): boolean => {
  if (leadOf(text, at) !== indent || text.charCodeAt(at + indent) !== 45 /* - */) return false
  const next = text.charCodeAt(at + indent + 1)
  return Number.isNaN(next) || next === 32 || next === 10 || next === 13
}

/**
 * One list item, its text `raw` parsed alone through `itemCache`: its lines with the list's
 * indentation taken off (a line less indented, blank or a comment, loses its spaces).
 */
const parseItem = (raw: string, indent: number): Item | undefined => {
  const key = indent === 0 ? raw : `${indent}:${raw}`
  const hit = itemCache.get(key)
  if (hit !== undefined) return hit.raw === raw ? hit : { raw, value: hit.value }
  // What is kept must not hold on to the whole document: `raw` is a slice of it (and so would be
  // every string parsed out of it), which would keep every reload's text alive through the cache.
  const own = detached(raw)
  if (hasMultilineQuoted(own)) return undefined
  const parsed = parsePlain(indent === 0 ? own : dedent(own, indent))
  if (parsed === undefined || !Array.isArray(parsed.value) || parsed.value.length !== 1) return undefined
  const item = { raw: own, value: deepFreeze(parsed.value[0]) }
  itemCache.set(indent === 0 ? own : `${indent}:${own}`, item)
  return item
}

/** A copy of `text` that shares no memory with the string it was sliced from. */
const detached = (text: string): string => JSON.parse(JSON.stringify(text)) as string

const dedent = (raw: string, indent: number): string =>
  raw
    .split("\n")
    .map((line) => (leadOf(line, 0) >= indent ? line.slice(indent) : line.trimStart()))
    .join("\n")
