import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { diffLines, splitLines, unifiedDiff } from "../../src/console/line-diff.js"
import { applyUnifiedDiff } from "../support/line-diff.js"

/** Lines from a small alphabet, so that texts share lines and the diff has work to do. */
const lines = fc.array(fc.constantFrom("a", "b", "c", "d", "", "  - name: x", "@@", "-x", "+y", " z"), {
  maxLength: 40,
})
const text = lines.map((ls) => (ls.length === 0 ? "" : `${ls.join("\n")}\n`))

describe("line diff", () => {
  it("patch(old, diff(old, new)) == new", () => {
    fc.assert(
      fc.property(text, text, fc.integer({ min: 0, max: 4 }), (a, b, context) => {
        const diff = unifiedDiff(a, b, "a", "b", context)
        expect(applyUnifiedDiff(splitLines(a), diff)).toEqual(splitLines(b))
      }),
      { numRuns: 500 },
    )
  })

  it("the edit script is a shortest one: kept lines form a longest common subsequence", () => {
    const lcs = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): number => {
      const t = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0))
      for (let i = 1; i <= a.length; i++)
        for (let j = 1; j <= b.length; j++)
          (t[i] as Array<number>)[j] =
            a[i - 1] === b[j - 1]
              ? ((t[i - 1] as Array<number>)[j - 1] as number) + 1
              : Math.max((t[i - 1] as Array<number>)[j] as number, (t[i] as Array<number>)[j - 1] as number)
      return (t[a.length] as Array<number>)[b.length] as number
    }
    fc.assert(
      fc.property(lines, lines, (a, b) => {
        const edits = diffLines(a, b)
        expect(edits.filter((e) => e.op !== "+").map((e) => e.line)).toEqual(a)
        expect(edits.filter((e) => e.op !== "-").map((e) => e.line)).toEqual(b)
        expect(edits.filter((e) => e.op === "=").length).toBe(lcs(a, b))
      }),
      { numRuns: 300 },
    )
  })

  it("past the work bound the middle is replaced: still a diff that patches old into new", () => {
    fc.assert(
      fc.property(lines, lines, fc.integer({ min: 0, max: 20 }), (a, b, maxWork) => {
        const edits = diffLines(a, b, maxWork)
        expect(edits.filter((e) => e.op !== "+").map((e) => e.line)).toEqual(a)
        expect(edits.filter((e) => e.op !== "-").map((e) => e.line)).toEqual(b)
      }),
      { numRuns: 300 },
    )
  })

  it("large files: a small change is found exactly, an unrelated file stays within the bound", () => {
    const big = Array.from({ length: 60_000 }, (_, i) => `  - name: rule-${i}`)
    const changed = [...big]
    changed[30_000] = "  - name: changed"
    const edits = diffLines(big, changed)
    expect(edits.filter((e) => e.op !== "=")).toEqual([
      { op: "-", line: "  - name: rule-30000" },
      { op: "+", line: "  - name: changed" },
    ])
    const other = big.map((l) => `${l}x`)
    const replaced = diffLines(big, other)
    expect(replaced.length).toBe(120_000)
  })

  it("equal texts have an empty diff", () => {
    fc.assert(fc.property(text, (a) => unifiedDiff(a, a) === ""))
  })

  it("writes hunks as diff -u does", () => {
    const old = "a\nb\nc\nd\ne\nf\ng\nh\n"
    const neu = "a\nb\nc\nD\ne\nf\ng\nh\ni\n"
    expect(unifiedDiff(old, neu, "v1/limits.yaml", "v2/limits.yaml", 1)).toBe(
      [
        "--- v1/limits.yaml",
        "+++ v2/limits.yaml",
        "@@ -3,3 +3,3 @@",
        " c",
        "-d",
        "+D",
        " e",
        "@@ -8 +8,2 @@",
        " h",
        "+i",
        "",
      ].join("\n"),
    )
    expect(unifiedDiff("", "x\n")).toBe("--- old\n+++ new\n@@ -0,0 +1 @@\n+x\n")
    expect(unifiedDiff("x\n", "")).toBe("--- old\n+++ new\n@@ -1 +0,0 @@\n-x\n")
  })
})
