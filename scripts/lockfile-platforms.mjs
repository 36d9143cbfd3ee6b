#!/usr/bin/env node
// Completes package-lock.json with the platform-specific optional packages (biome, rollup, …) that
// a registry mirror serving one platform cannot resolve. Without their entries `npm ci` refuses the
// lock file as out of sync. Each entry records only the version and the os/cpu/libc it is for, so
// `npm ci` skips it on every other platform and fetches it by version on its own.
// Run after `npm install`: node scripts/lockfile-platforms.mjs
import { readFileSync, writeFileSync } from "node:fs"

const OS = ["android", "darwin", "linux", "win32", "freebsd", "openbsd", "netbsd", "sunos", "aix", "openharmony"]
const CPU = ["arm64", "x64", "arm", "ia32", "loong64", "ppc64", "riscv64", "s390x", "mips64el"]

const platformOf = (name) => {
  const parts = name.split("/").pop().split("-")
  const os = parts.find((p) => OS.includes(p))
  const cpu = parts.find((p) => CPU.includes(p))
  const libc = parts.some((p) => p.startsWith("musl")) ? "musl" : os === "linux" && parts.some((p) => p.startsWith("gnu")) ? "glibc" : undefined
  return { os, cpu, libc }
}

const file = new URL("../package-lock.json", import.meta.url)
const lock = JSON.parse(readFileSync(file, "utf8"))
const packages = lock.packages
let added = 0
for (const [path, meta] of Object.entries(packages)) {
  for (const [dep, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const base = path === "" ? "node_modules" : `${path}/node_modules`
    if (packages[`${base}/${dep}`] !== undefined || packages[`node_modules/${dep}`] !== undefined) continue
    const { os, cpu, libc } = platformOf(dep)
    if (os === undefined && cpu === undefined) continue
    packages[`node_modules/${dep}`] = {
      version,
      ...(meta.dev ? { dev: true } : {}),
      optional: true,
      ...(os ? { os: [os] } : {}),
      ...(cpu ? { cpu: [cpu] } : {}),
      ...(libc ? { libc: [libc] } : {}),
    }
    added++
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)))
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`)
console.log(`lockfile-platforms: added ${added} platform package entr${added === 1 ? "y" : "ies"}`)
