import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  budgetOf,
  cgroupMemoryLimit,
  DEFAULT_LIMIT_RATIO,
  givenNodeFlags,
  heapFlagsOf,
  resolveMemoryLimit,
} from "../../src/memory/limit.js"

const MiB = 1024 * 1024

/** A fake `/proc/self/cgroup` and cgroup mount with the given files. */
const fakeCgroup = (procCgroup: string, files: Readonly<Record<string, string>>) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mg-cgroup-"))
  const root = path.join(dir, "sys/fs/cgroup")
  fs.mkdirSync(root, { recursive: true })
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true })
    fs.writeFileSync(path.join(root, rel), content)
  }
  const proc = path.join(dir, "cgroup")
  fs.writeFileSync(proc, procCgroup)
  return { procCgroup: proc, root }
}

describe("cgroupMemoryLimit", () => {
  it("reads cgroup v2 memory.max of the process's cgroup", () => {
    const paths = fakeCgroup("0::/kubepods/pod1/c1\n", { "kubepods/pod1/c1/memory.max": "536870912\n" })
    expect(cgroupMemoryLimit(paths)).toBe(512 * MiB)
  })

  it("falls back to the mount's root (a private cgroup namespace shows the container's cgroup as /)", () => {
    const paths = fakeCgroup("0::/\n", { "memory.max": "268435456\n" })
    expect(cgroupMemoryLimit(paths)).toBe(256 * MiB)
  })

  it('reads "max" as no limit', () => {
    const paths = fakeCgroup("0::/\n", { "memory.max": "max\n" })
    expect(cgroupMemoryLimit(paths)).toBeUndefined()
  })

  it("reads cgroup v1 memory.limit_in_bytes, and its near-2^63 value as no limit", () => {
    const v1 = fakeCgroup("4:memory:/docker/abc\n1:cpu:/\n", {
      "memory/docker/abc/memory.limit_in_bytes": "1073741824\n",
    })
    expect(cgroupMemoryLimit(v1)).toBe(1024 * MiB)
    const unlimited = fakeCgroup("4:memory:/\n", { "memory/memory.limit_in_bytes": "9223372036854771712\n" })
    expect(cgroupMemoryLimit(unlimited)).toBeUndefined()
  })

  it("is undefined where there is no cgroup filesystem at all", () => {
    expect(cgroupMemoryLimit({ procCgroup: "/nonexistent/cgroup", root: "/nonexistent/sys" })).toBeUndefined()
  })
})

describe("resolveMemoryLimit", () => {
  it("the flag wins over the ratio and the cgroup", () => {
    expect(resolveMemoryLimit(300 * MiB, 0.5, 1024 * MiB)).toEqual({
      bytes: 300 * MiB,
      source: "flag",
      cgroupBytes: 1024 * MiB,
    })
  })

  it("else the ratio of the cgroup limit, 0.9 when not configured", () => {
    expect(resolveMemoryLimit(undefined, 0.5, 1024 * MiB).bytes).toBe(512 * MiB)
    expect(resolveMemoryLimit(undefined, undefined, 1000 * MiB).bytes).toBe(
      Math.floor(1000 * MiB * DEFAULT_LIMIT_RATIO),
    )
  })

  it("else no limit", () => {
    expect(resolveMemoryLimit(undefined, 0.5, undefined)).toEqual({
      bytes: undefined,
      source: "none",
      cgroupBytes: undefined,
    })
  })
})

describe("budgetOf", () => {
  it("law: what it sizes fits in the limit, and the marks are ordered collect < resume < refuse < limit", () => {
    fc.assert(
      fc.property(fc.integer({ min: 64 * MiB, max: 64 * 1024 * MiB }), (limit) => {
        const b = budgetOf(limit)
        expect(b.bufferBytes * 2 + b.inFlightBytes).toBeLessThan(limit / 2)
        expect(b.collectAtBytes).toBeLessThan(b.resumeAtBytes)
        expect(b.resumeAtBytes).toBeLessThan(b.refuseAtBytes)
        expect(b.refuseAtBytes).toBeLessThan(limit)
        expect(b.threadOldGenerationMb).toBeGreaterThanOrEqual(32)
      }),
    )
  })
})

describe("heapFlagsOf", () => {
  it("law: the main thread's heap (old generation and three semi-spaces) takes at most 60% of the limit from 256 MiB on, and the semi-space is a power of two from 1 to 16 MiB", () => {
    fc.assert(
      fc.property(fc.integer({ min: 256 * MiB, max: 64 * 1024 * MiB }), (limit) => {
        const b = budgetOf(limit)
        expect((b.heapOldSpaceMb + 3 * b.heapSemiSpaceMb) * MiB).toBeLessThanOrEqual(0.6 * limit)
        expect([1, 2, 4, 8, 16]).toContain(b.heapSemiSpaceMb)
        expect(heapFlagsOf(b)).toEqual([
          `--max-old-space-size=${b.heapOldSpaceMb}`,
          `--max-semi-space-size=${b.heapSemiSpaceMb}`,
        ])
      }),
    )
  })

  it("sizes 256 MiB as old generation 128 MiB and semi-space 2 MiB, 1 GiB as 512 and 8; without a limit the old generation's start, 128 MiB, and a semi-space of 8 MiB", () => {
    expect(heapFlagsOf(budgetOf(256 * MiB))).toEqual(["--max-old-space-size=128", "--max-semi-space-size=2"])
    expect(heapFlagsOf(budgetOf(1024 * MiB))).toEqual(["--max-old-space-size=512", "--max-semi-space-size=8"])
    expect(heapFlagsOf(undefined)).toEqual(["--initial-old-space-size=128", "--max-semi-space-size=8"])
  })

  it("leaves a heap flag the operator gave (NODE_OPTIONS or node's own flags) as it is", () => {
    const b = budgetOf(256 * MiB)
    expect(heapFlagsOf(b, givenNodeFlags([], "--max-old-space-size=99 --enable-source-maps"))).toEqual([
      "--max-semi-space-size=2",
    ])
    expect(heapFlagsOf(b, givenNodeFlags(["--max-semi-space-size=4"], undefined))).toEqual([
      "--max-old-space-size=128",
    ])
    expect(heapFlagsOf(undefined, givenNodeFlags(["--initial-old-space-size=32"], undefined))).toEqual([
      "--max-semi-space-size=8",
    ])
    expect(
      heapFlagsOf(undefined, givenNodeFlags([], "--initial-old-space-size=32 --max-semi-space-size=16")),
    ).toEqual([])
    expect(
      heapFlagsOf(
        b,
        givenNodeFlags(
          ["--initial-old-space-size=32"],
          "  --max-old-space-size=99   --max-semi-space-size=1 ",
        ),
      ),
    ).toEqual([])
  })
})
