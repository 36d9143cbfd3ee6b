/**
 * The decoding threads stay light: every module a decoding thread loads imports effect's modules
 * by their own paths (`effect/Either`, `effect/Data`), never effect's index, which loads all of its
 * 2,700 modules and adds about 12 MB to each thread's heap (27 MB of RSS per thread measured).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { ROOT } from "../support/governor.js"

/** The `src/` modules `entry` loads, following its relative imports (type-only ones left out). */
const graphOf = (entry: string): Array<string> => {
  const seen = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    const text = fs.readFileSync(file, "utf8")
    for (const m of text.matchAll(/^import (?!type )[^;]*? from "(\.[^"]+)"/gms)) {
      visit(path.resolve(path.dirname(file), (m[1] as string).replace(/\.js$/, ".ts")))
    }
  }
  visit(path.join(ROOT, entry))
  return [...seen]
}

describe("decoding threads", () => {
  for (const entry of ["src/protocols/prw/decode-worker.ts", "src/protocols/otlp/decode-worker.ts"]) {
    it(`${entry} loads no module that imports effect's index`, () => {
      const files = graphOf(entry)
      expect(files.length).toBeGreaterThan(5)
      const offenders = files.filter((f) => /^import [^;]*? from "effect"/ms.test(fs.readFileSync(f, "utf8")))
      expect(offenders.map((f) => path.relative(ROOT, f))).toEqual([])
    })
  }
})
