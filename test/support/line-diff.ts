/**
 * Applying a unified diff: the tests' check that what the console's diff (`src/console/line-diff.ts`)
 * says turns the old text into the new one.
 *
 * @module
 */
import { splitLines } from "../../src/console/line-diff.js"

/** A unified diff that does not fit the text it is applied to. */
export class PatchError extends Error {
  readonly _tag = "PatchError"
}

/**
 * Applies a unified diff (as `unifiedDiff` writes it) to the lines of the old text: the lines of
 * the new text. Throws `PatchError` when a context or removed line does not match.
 */
export const applyUnifiedDiff = (oldLines: ReadonlyArray<string>, diff: string): Array<string> => {
  const out: Array<string> = []
  let pos = 0
  const lines = splitLines(diff)
  for (let i = 0; i < lines.length; i++) {
    const header = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$/.exec(lines[i] as string)
    if (header === null) continue
    const oldCount = header[2] === undefined ? 1 : Number(header[2])
    const oldStart = oldCount === 0 ? Number(header[1]) : Number(header[1]) - 1
    if (oldStart < pos) throw new PatchError(`hunk at line ${i + 1} overlaps the previous one`)
    while (pos < oldStart) out.push(oldLines[pos++] as string)
    for (i = i + 1; i < lines.length && !(lines[i] as string).startsWith("@@"); i++) {
      const line = lines[i] as string
      const op = line[0]
      const text = line.slice(1)
      if (op === "+") out.push(text)
      else if (op === " " || op === "-") {
        if (oldLines[pos] !== text) throw new PatchError(`line ${pos + 1} does not match the diff`)
        if (op === " ") out.push(text)
        pos++
      } else throw new PatchError(`unexpected diff line ${i + 1}`)
    }
    i--
  }
  while (pos < oldLines.length) out.push(oldLines[pos++] as string)
  return out
}
