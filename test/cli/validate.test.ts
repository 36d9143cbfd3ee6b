import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { runCli, tempDir } from "../support/governor.js"

const LIMITS = "test/fixtures/broken/several-kinds.limits.yaml"
const CONFIG = "test/fixtures/broken/wrong-types.config.yaml"

describe("validate reports every problem in one run", () => {
  it("schema problems, ranges, regexes, choices and duplicate names of both files, each with file:line:col", async () => {
    const r = await runCli(["validate", "-config", CONFIG, "-limits-config", LIMITS])
    expect(r.code).toBe(1)
    expect(r.stdout).toBe("")
    expect(r.stderr.trimEnd().split("\n")).toEqual([
      `${CONFIG}:2:12: limits.dry_run: must be true or false`,
      `${CONFIG}:4:9: buffer.size: must be a whole number > 0`,
      `${CONFIG}:5:3: buffer.flush_intervall: unknown key "flush_intervall" (did you mean "flush_interval"?)`,
      `${LIMITS}:3:22: rules[0].max_cardinality: must be a whole number >= 0 (0 = no limit)`,
      `${LIMITS}:7:20: rules[1].match.metric_name: invalid RE2 regex: error parsing regexp: missing closing ): \`http_(.*\``,
      `${LIMITS}:8:13: rules[1].action: unknown action "explode" (one of log, drop, adaptive, sample, strip_labels)`,
      `${LIMITS}:9:11: rules[2].name: duplicate rule name "a" (first used by rules[0])`,
      `${LIMITS}:10:5: rules[2].colour: unknown key "colour" (known keys: name, labels, match, max_datapoints_rate, max_cardinality, action, group_by, sample_rate, strip_labels, tiers, label_limits, label_limit_action, adaptive_priority)`,
      `${LIMITS}:12:13: rules[3].action: action sample needs sample_rate (a fraction in (0, 1])`,
      `${LIMITS}:13:5: rules[4]: must be a mapping of keys`,
      `${LIMITS}:16:20: rules[5].strip_labels[0]: __name__ cannot be stripped`,
      `${LIMITS}:17:26: rules[5].max_datapoints_rate: must be a whole number >= 0 (0 = no limit)`,
      "invalid: 12 problems",
    ])
  })

  it("memory.limit_ratio is a fraction above 0 and at most 1", async () => {
    const dir = tempDir("mg-validate-")
    const config = path.join(dir, "config.yaml")
    fs.writeFileSync(config, "memory:\n  limit_ratio: 1.5\n")
    const bad = await runCli(["validate", "-config", config])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain(`${config}:2:16: memory.limit_ratio: must be a number above 0 and at most 1`)
    fs.writeFileSync(config, "memory:\n  limit_ratio: 0.75\n")
    expect((await runCli(["validate", "-config", config])).code).toBe(0)
  })
})
