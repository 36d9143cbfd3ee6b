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
