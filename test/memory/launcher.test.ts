/**
 * `bin/metrics-governor`: the governor started with its main thread's heap sized for its memory
 * limit, as the container image starts it; without it, the governor says that the heap is not
 * sized.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { type Governor, ROOT, startGovernor } from "../support/governor.js"

const MiB = 1024 * 1024
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mg-launcher-"))
const limits = path.join(dir, "limits.yaml")
fs.writeFileSync(limits, "rules:\n  - name: all\n    max_cardinality: 100\n    action: drop\n")

let gov: Governor | undefined
afterEach(async () => {
  await gov?.stop()
  gov = undefined
})

/** The fields of the `memory limit in force` line, and whether the not-sized warning was logged. */
const heapOf = (g: Governor) => {
  const lines = g.stdout.split("\n").filter((l) => l.startsWith("{"))
  const inForce = lines.map((l) => JSON.parse(l)).find((l) => l.message === "memory limit in force")
  return {
    heapLimit: inForce?.fields.heap_limit_bytes as number | undefined,
    warned: lines.some((l) => l.includes("the heap is not sized for the memory limit")),
  }
}

describe("bin/metrics-governor", () => {
  it("starts the governor with the heap sized from -memory-limit (V8's limit: 128 MiB old generation plus the young one), with two malloc arenas", async () => {
    gov = await startGovernor({ args: ["-limits-config", limits, "-memory-limit", "256MiB"], launcher: true })
    const { heapLimit, warned } = heapOf(gov)
    expect(heapLimit).toBeGreaterThanOrEqual(128 * MiB)
    expect(heapLimit).toBeLessThan(140 * MiB)
    expect(warned).toBe(false)
    const env = fs.readFileSync(`/proc/${gov.pid}/environ`, "utf8").split("\0")
    expect(env).toContain("MALLOC_ARENA_MAX=2")
  })

  it("prints the flags the governor is started with: the old generation's start and a semi-space of 8 MiB without a memory limit, the sizes for it with one", () => {
    const flags = (...args: Array<string>) =>
      execFileSync(process.execPath, [path.join(ROOT, "dist/heap-flags.js"), ...args], {
        encoding: "utf8",
      }).trim()
    expect(flags("-limits-config", limits)).toBe("--initial-old-space-size=128 --max-semi-space-size=8")
    expect(flags("-limits-config", limits, "-memory-limit", "256MiB")).toBe(
      "--max-old-space-size=128 --max-semi-space-size=2",
    )
  })

  it("sizes it from memory.limit_ratio of the container's limit like the governor: here no container limit and no flag, so nothing is sized", async () => {
    const config = path.join(dir, "config.yaml")
    fs.writeFileSync(config, "memory:\n  limit_ratio: 0.5\n")
    gov = await startGovernor({ args: ["-config", config, "-limits-config", limits], launcher: true })
    expect(heapOf(gov).heapLimit).toBeUndefined()
    expect(await gov.metric("metrics_governor_memory_limit_bytes")).toBe(0)
  })

  it("leaves a heap size given in NODE_OPTIONS as it is", async () => {
    gov = await startGovernor({
      args: ["-limits-config", limits, "-memory-limit", "256MiB"],
      launcher: true,
      env: { ...process.env, NODE_OPTIONS: "--max-old-space-size=200" },
    })
    const { heapLimit } = heapOf(gov)
    expect(heapLimit).toBeGreaterThanOrEqual(200 * MiB)
    expect(heapLimit).toBeLessThan(212 * MiB)
  })

  it("started as plain node with a memory limit, the governor warns that its heap is not sized, naming the flags", async () => {
    gov = await startGovernor({ args: ["-limits-config", limits, "-memory-limit", "256MiB"] })
    expect(heapOf(gov).warned).toBe(true)
    expect(gov.stdout).toContain("--max-old-space-size=128 --max-semi-space-size=2")
  })
})
