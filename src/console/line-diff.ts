/**
 * A line diff (Myers' O(ND) algorithm) and its unified text form, for the console's version diffs.
 * Pure: no I/O, no clock. `patch(old, diff(old, new))` gives `new` back, whatever the inputs.
 *
 * @module
 */

/** One line of an edit script: kept (`=`), removed from the old text (`-`), added by the new (`+`). */
export interface Edit {
  readonly op: "=" | "-" | "+"
  readonly line: string
}

/** Splits text into lines; a final newline ends the last line rather than starting an empty one. */
export const splitLines = (text: string): Array<string> => {
  if (text === "") return []
  const lines = text.split("\n")
  if (lines[lines.length - 1] === "") lines.pop()
  return lines
}

/**
 * How much work (diagonal steps of the search, and frontier entries kept for the walk back) a diff
 * may take before it settles for a longer script: a few tens of milliseconds and at most 4 MB.
 * Past it, the differing middle is written as removed then added, which is still a correct diff,
 * only not a shortest one.
 */
export const MAX_DIFF_WORK = 1_000_000

/**
 * The shortest edit script from `a` to `b` (Myers 1986): the kept lines are a longest common
 * subsequence. The common head and tail are taken off first; the search costs O((N+M)·D) time and
 * O(D²) memory, where D is the number of lines added and removed, and stops at `maxWork` (see
 * `MAX_DIFF_WORK`).
 */
export const diffLines = (
  a: ReadonlyArray<string>,
  b: ReadonlyArray<string>,
  maxWork: number = MAX_DIFF_WORK,
): Array<Edit> => {
  let head = 0
  while (head < a.length && head < b.length && a[head] === b[head]) head++
  let tail = 0
  while (
    tail < a.length - head &&
    tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  )
    tail++
  const keep = (lines: ReadonlyArray<string>): Array<Edit> => lines.map((line) => ({ op: "=", line }))
  const middle = middleEdits(a.slice(head, a.length - tail), b.slice(head, b.length - tail), maxWork)
  return [...keep(a.slice(0, head)), ...middle, ...keep(a.slice(a.length - tail))]
}

/** Myers' search over the differing middle; the whole middle replaced when it costs too much. */
const middleEdits = (a: ReadonlyArray<string>, b: ReadonlyArray<string>, maxWork: number): Array<Edit> => {
  const n = a.length
  const m = b.length
  const replaced = (): Array<Edit> => [
    ...a.map((line): Edit => ({ op: "-", line })),
    ...b.map((line): Edit => ({ op: "+", line })),
  ]
  if (n === 0 || m === 0) return replaced()
  const max = n + m
  const offset = max + 1
  const v = new Int32Array(2 * max + 3)
  /** `trace[d]`: the frontier before step d, for diagonals -d..d (index k + d). */
  const trace: Array<Int32Array> = []
  let work = 0
  let found = false
  for (let d = 0; d <= max && !found; d++) {
    trace.push(v.slice(offset - d, offset + d + 1))
    // The saved frontier counts as work too: memory stays within the bound as well.
    work += 2 * d + 1
    for (let k = -d; k <= d; k += 2) {
      let x: number
      if (k === -d || (k !== d && (v[offset + k - 1] as number) < (v[offset + k + 1] as number))) {
        x = v[offset + k + 1] as number
      } else {
        x = (v[offset + k - 1] as number) + 1
      }
      let y = x - k
      while (x < n && y < m && a[x] === b[y]) {
        x++
        y++
        work++
      }
      work++
      v[offset + k] = x
      if (x >= n && y >= m) {
        found = true
        break
      }
    }
    if (work > maxWork) return replaced()
  }
  // Walk back through the saved frontiers to recover the path.
  const edits: Array<Edit> = []
  let x = n
  let y = m
  for (let d = trace.length - 1; d >= 0; d--) {
    const vd = trace[d] as Int32Array
    const at = (k: number): number => vd[k + d] as number
    const k = x - y
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1
    const prevX = d === 0 ? 0 : at(prevK)
    const prevY = d === 0 ? 0 : prevX - prevK
    while (x > prevX && y > prevY) {
      edits.push({ op: "=", line: a[x - 1] as string })
      x--
      y--
    }
    if (d > 0) {
      if (x === prevX) edits.push({ op: "+", line: b[y - 1] as string })
      else edits.push({ op: "-", line: a[x - 1] as string })
    }
    x = prevX
    y = prevY
  }
  return edits.reverse()
}

/** One hunk of a unified diff: where it starts (1-based) and how many lines it spans on each side. */
export interface Hunk {
  readonly oldStart: number
  readonly oldLines: number
  readonly newStart: number
  readonly newLines: number
  readonly edits: ReadonlyArray<Edit>
}

/** Groups an edit script into hunks with `context` kept lines around each change. */
export const hunksOf = (edits: ReadonlyArray<Edit>, context = 3): Array<Hunk> => {
  const hunks: Array<Hunk> = []
  const changed: Array<number> = []
  edits.forEach((e, i) => {
    if (e.op !== "=") changed.push(i)
  })
  if (changed.length === 0) return hunks
  // Positions (0-based) in the old and new texts before each edit.
  const oldPos: Array<number> = []
  const newPos: Array<number> = []
  let o = 0
  let nn = 0
  for (const e of edits) {
    oldPos.push(o)
    newPos.push(nn)
    if (e.op !== "+") o++
    if (e.op !== "-") nn++
  }
  let i = 0
  while (i < changed.length) {
    const start = Math.max(0, (changed[i] as number) - context)
    let end = Math.min(edits.length, (changed[i] as number) + context + 1)
    i++
    while (i < changed.length && (changed[i] as number) - context <= end) {
      end = Math.min(edits.length, (changed[i] as number) + context + 1)
      i++
    }
    const slice = edits.slice(start, end)
    const oldLines = slice.filter((e) => e.op !== "+").length
    const newLines = slice.filter((e) => e.op !== "-").length
    hunks.push({
      oldStart: oldLines === 0 ? (oldPos[start] as number) : (oldPos[start] as number) + 1,
      oldLines,
      newStart: newLines === 0 ? (newPos[start] as number) : (newPos[start] as number) + 1,
      newLines,
      edits: slice,
    })
  }
  return hunks
}

const range = (start: number, lines: number): string => (lines === 1 ? `${start}` : `${start},${lines}`)

/**
 * The unified diff (as `diff -u` writes it) of two texts, "" when they are equal. The headers name
 * the two sides. Lines are compared without their newline; a missing final newline is not marked.
 */
export const unifiedDiff = (
  oldText: string,
  newText: string,
  oldName = "old",
  newName = "new",
  context = 3,
): string => {
  const hunks = hunksOf(diffLines(splitLines(oldText), splitLines(newText)), context)
  if (hunks.length === 0) return ""
  const out = [`--- ${oldName}`, `+++ ${newName}`]
  for (const h of hunks) {
    out.push(`@@ -${range(h.oldStart, h.oldLines)} +${range(h.newStart, h.newLines)} @@`)
    for (const e of h.edits) out.push(`${e.op === "=" ? " " : e.op}${e.line}`)
  }
  return `${out.join("\n")}\n`
}
