/**
 * Run with `node --allow-natives-syntax --import tsx`: compiles the limits file named by argv[2]
 * and prints how many of its rules share the first rule's hidden class, as `same/total`.
 */
import * as fs from "node:fs"
import { Either } from "effect"
import { decodeLimits } from "../../src/config/decode.js"
import { nextVersion } from "../../src/reload/version.js"

const decoded = decodeLimits("limits.yaml", fs.readFileSync(process.argv[2] as string))
if (Either.isLeft(decoded)) throw new Error(decoded.left.message)
const version = nextVersion(undefined, {
  limits: decoded.right,
  main: undefined,
  dryRunFlag: false,
  trigger: "startup",
  now: 0,
})
const rules = [
  ...version.limits.rules,
  ...(version.limits.defaults === undefined ? [] : [version.limits.defaults]),
]
const sameMap = new Function("a", "b", "return %HaveSameMap(a, b)") as (a: unknown, b: unknown) => boolean
let same = 0
for (const r of rules) if (sameMap(rules[0], r)) same++
process.stdout.write(`${same}/${rules.length}\n`)
