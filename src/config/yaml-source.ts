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

/** An anchor (`&name`): documents with anchors and aliases take the full parser. */
const ANCHOR = /(?:^|[\s[{,:-])&\S/m

/**
 * Whether a quoted scalar runs over a line end. The parsers disagree on malformed ones (one reads
 * an unterminated quote as ending on a later line), so such documents take the full parser. A
 * quote starts a scalar only where a scalar can start: at the start of a line's content or after
 * `:`, `-`, `?`, `,`, `[` or `{` (and spaces); `#` after a space starts a comment.
 */
const hasMultilineQuoted = (text: string): boolean => {
  let last = "\n" // the last non-space character outside quotes on this line
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string
    if (c === "\n") {
      last = "\n"
    } else if (c === "#" && (last === "\n" || text[i - 1] === " " || text[i - 1] === "\t")) {
      while (i + 1 < text.length && text[i + 1] !== "\n") i++
    } else if ((c === '"' || c === "'") && "\n:-?,[{".includes(last)) {
      for (i++; ; i++) {
        if (i >= text.length) return true
        const q = text[i] as string
        if (q === "\n") return true
        if (c === '"' && q === "\\") i++
        else if (q === c) {
          if (c === "'" && text[i + 1] === "'") i++
          else break
        }
      }
      last = c
    } else if (c !== " " && c !== "\t" && c !== "\r") {
      last = c
    }
  }
  return false
}

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
  if (ANCHOR.test(text) || hasMultilineQuoted(text)) {
    return undefined
  }
  let value: unknown
  try {
    value = loadYaml(text, { schema: CORE, json: false })
  } catch {
    return undefined
  }
  if (value === null || typeof value !== "object") return undefined
  return plainTree(value, new Set()) ? { value } : undefined
}
