import { readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { decodeLimits, decodeMainConfig } from "../../src/config/decode.js"
import { ConfigInvalidError, formatIssue } from "../../src/config/errors.js"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const BROKEN_DIR = "test/fixtures/broken"
const EXPECTED_FILE = "expected.json"

const readBytes = (relative: string): Uint8Array => readFileSync(`${ROOT}${relative}`)

const expected: Record<string, ReadonlyArray<string>> = JSON.parse(
  readFileSync(`${ROOT}${BROKEN_DIR}/${EXPECTED_FILE}`, "utf8"),
)

const fixtures = readdirSync(`${ROOT}${BROKEN_DIR}`)
  .filter((name) => name !== EXPECTED_FILE)
  .sort()

/** Decodes a fixture the way `validate` would, by its suffix. */
const decodeFixture = (file: string): Either.Either<unknown, ConfigInvalidError> => {
  const bytes = readBytes(file)
  if (file.endsWith(".limits.yaml")) return decodeLimits(file, bytes)
  if (file.endsWith(".config.yaml")) return decodeMainConfig(file, bytes)
  throw new Error(`${file}: a fixture name must end in .limits.yaml or .config.yaml`)
}

describe("broken fixtures", () => {
  it("every fixture has expected messages and every expectation has a fixture", () => {
    expect(fixtures.length).toBeGreaterThan(0)
    expect(Object.keys(expected).sort()).toEqual(fixtures)
  })

  it("every fixture name says which file it is", () => {
    for (const name of fixtures) expect(name).toMatch(/\.(limits|config)\.yaml$/)
  })

  it.each(fixtures)("%s is rejected with exactly the expected messages", (name) => {
    const file = `${BROKEN_DIR}/${name}`
    const result = decodeFixture(file)
    if (Either.isRight(result)) expect.fail(`${file} decoded, but it is broken`)
    const error = result.left
    expect(error).toBeInstanceOf(ConfigInvalidError)
    expect(error.file).toBe(file)
    for (const issue of error.issues) expect(issue.file).toBe(file)
    expect(error.issues.map(formatIssue)).toEqual(expected[name])
    // The error's own message carries every issue, for logs.
    expect(error.message).toBe(error.issues.map(formatIssue).join("; "))
  })
})

describe("shipped examples", () => {
  it("deploy/examples/limits.yaml decodes and compiles", () => {
    const file = "deploy/examples/limits.yaml"
    const result = decodeLimits(file, readBytes(file))
    if (Either.isLeft(result)) expect.fail(result.left.message)
    const { spec, compiled } = result.right
    expect(compiled.rules.length).toBe(spec.rules?.length)
    expect(compiled.defaults?.name).toBe("default")
  })

  it("deploy/examples/limits.yaml shows every action and both kinds of match", () => {
    const file = "deploy/examples/limits.yaml"
    const result = decodeLimits(file, readBytes(file))
    if (Either.isLeft(result)) expect.fail(result.left.message)
    const rules = result.right.spec.rules ?? []
    const actions = new Set(rules.map((r) => r.action ?? "log"))
    expect([...actions].sort()).toEqual(["adaptive", "drop", "log", "sample", "strip_labels"])
    expect(rules.some((r) => r.match?.metric_name !== undefined)).toBe(true)
    expect(rules.some((r) => Object.keys(r.match?.labels ?? {}).length > 0)).toBe(true)
    expect(rules.some((r) => Object.values(r.match?.labels ?? {}).includes("*"))).toBe(true)
  })

  it("deploy/examples/limits-advanced.yaml decodes and compiles, with every advanced key", () => {
    const file = "deploy/examples/limits-advanced.yaml"
    const result = decodeLimits(file, readBytes(file))
    if (Either.isLeft(result)) expect.fail(result.left.message)
    const { spec, compiled } = result.right
    expect(compiled.rules.length).toBe(spec.rules?.length)
    expect(compiled.deadRuleIntervalMs).toBe(300_000)
    expect(spec.required_labels).toEqual(["team"])
    const first = compiled.rules[0]
    expect(first?.tiers.map((t) => [t.atPercent, t.action])).toEqual([
      [80, "log"],
      [95, "sample"],
      [100, "strip_labels"],
    ])
    expect(first?.labelLimits).toEqual([
      { name: "user_id", max: 1000 },
      { name: "request_id", max: 0 },
    ])
    expect(first?.labelLimitAction).toBe("strip")
    expect(first?.priority?.rank.get("debug")).toBe(3)
    expect(first?.priority?.defaultRank).toBe(0)
    expect(first?.info).toEqual([["team", "payments"]])
    expect(compiled.rules.some((r) => r.labelLimitAction === "drop")).toBe(true)
  })

  it("deploy/examples/config.yaml decodes", () => {
    const file = "deploy/examples/config.yaml"
    const result = decodeMainConfig(file, readBytes(file))
    if (Either.isLeft(result)) expect.fail(result.left.message)
    expect(result.right.spec.limits?.dry_run).toBe(false)
  })

  it("an empty config.yaml means every default", () => {
    const result = decodeMainConfig("config.yaml", new Uint8Array())
    if (Either.isLeft(result)) expect.fail(result.left.message)
    expect(result.right.spec).toEqual({})
  })
})
