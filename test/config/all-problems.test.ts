import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeLimits } from "../../src/config/decode.js"
import { formatIssue } from "../../src/config/errors.js"
import { ACTIONS } from "../../src/config/limits-schema.js"

/**
 * One way to break a rule, as the lines of its YAML (the rule named `name`, indented as a list item)
 * and the problem `validate` must report: the line within the rule, the key path below the rule, the
 * message. Schema problems and semantic ones alike.
 */
interface Breakage {
  readonly lines: (name: string) => ReadonlyArray<string>
  readonly line: number
  readonly column: number
  readonly path: string
  readonly message: (name: string) => string
}

const BREAKAGES: Record<string, Breakage> = {
  negativeLimit: {
    lines: (n) => [`  - name: ${n}`, "    max_cardinality: -1"],
    line: 1,
    column: 22,
    path: "max_cardinality",
    message: () => "must be a whole number >= 0 (0 = no limit)",
  },
  brokenRegex: {
    lines: (n) => [`  - name: ${n}`, "    match:", '      metric_name: "a(["'],
    line: 2,
    column: 20,
    path: "match.metric_name",
    message: () => "invalid RE2 regex: error parsing regexp: missing closing ]: `[`",
  },
  unknownAction: {
    lines: (n) => [`  - name: ${n}`, "    action: explode"],
    line: 1,
    column: 13,
    path: "action",
    message: () => `unknown action "explode" (one of ${ACTIONS.join(", ")})`,
  },
  unknownKey: {
    lines: (n) => [`  - name: ${n}`, "    max_cardinalty: 5"],
    line: 1,
    column: 5,
    path: "max_cardinalty",
    message: () => 'unknown key "max_cardinalty" (did you mean "max_cardinality"?)',
  },
  duplicateName: {
    lines: () => ["  - name: first"],
    line: 0,
    column: 11,
    path: "name",
    message: () => 'duplicate rule name "first" (first used by rules[0])',
  },
  sampleWithoutRate: {
    lines: (n) => [`  - name: ${n}`, "    action: sample"],
    line: 1,
    column: 13,
    path: "action",
    message: () => "action sample needs sample_rate (a fraction in (0, 1])",
  },
  rateOutOfRange: {
    lines: (n) => [`  - name: ${n}`, "    action: sample", "    sample_rate: 2"],
    line: 2,
    column: 18,
    path: "sample_rate",
    message: () => "must be a number in (0, 1]",
  },
}

describe("decodeLimits reports every problem at once", () => {
  it("law: n independently broken rules (schema and semantic problems mixed) give n issues, each at its rule", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...Object.keys(BREAKAGES)), { maxLength: 12 }), (kinds) => {
        // A valid first rule, so that a duplicate name has something to duplicate.
        const lines = ["rules:", "  - name: first", "    max_cardinality: 1"]
        const expected: Array<string> = []
        kinds.forEach((kind, i) => {
          const b = BREAKAGES[kind] as Breakage
          const name = `r${i}`
          const at = lines.length + 1 + b.line
          expected.push(`limits.yaml:${at}:${b.column}: rules[${i + 1}].${b.path}: ${b.message(name)}`)
          lines.push(...b.lines(name))
        })
        const result = decodeLimits("limits.yaml", Buffer.from(`${lines.join("\n")}\n`))
        if (kinds.length === 0) {
          expect(Either.isRight(result)).toBe(true)
          return
        }
        if (Either.isRight(result)) expect.fail("a broken file decoded")
        expect(result.left.issues.map(formatIssue)).toEqual(expected)
      }),
      { numRuns: 200 },
    )
  })
})
