import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { freePort, type Governor, ROOT, sleep, startGovernor, tempDir, waitFor } from "../support/governor.js"

/**
 * deploy/configmap-reload.sh, the reload sidecar, run for real: `sh` processes, real targets found
 * by name, real signals.
 *
 * On the host, every target is a small node process whose title is a name made up for the test, so
 * the script can never reach a governor (or anything else) that happens to run on the machine. The
 * test with the real governor runs it as PID 1 of a PID namespace of its own, with the script
 * entered into that namespace, as in a pod with `shareProcessNamespace: true`.
 */

const SCRIPT = path.join(ROOT, "deploy/configmap-reload.sh")
const SH = execFileSync("sh", ["-c", "command -v sh"], { encoding: "utf8" }).trim()
/** Short enough (11 characters) that /proc/PID/comm holds it whole. */
const uniqueName = () => `mgt${randomBytes(4).toString("hex")}`

interface LogLine {
  readonly ts: string
  readonly level: string
  readonly message: string
  readonly fields: Record<string, unknown>
}

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const dir = (): string => {
  const d = tempDir("mg-sidecar-")
  cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }))
  return d
}

const killQuietly = (pid: number | undefined, signal: NodeJS.Signals = "SIGKILL") => {
  if (pid === undefined) return
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// The script

class Sidecar {
  readonly logs: Array<LogLine> = []
  readonly notJson: Array<string> = []
  stderr = ""
  exit: { code: number | null; signal: NodeJS.Signals | null; at: number } | undefined
  private readonly exited: Promise<void>

  constructor(readonly child: ChildProcess) {
    let partial = ""
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      partial += chunk
      const lines = partial.split("\n")
      partial = lines.pop() ?? ""
      for (const l of lines) {
        try {
          this.logs.push(JSON.parse(l) as LogLine)
        } catch {
          this.notJson.push(l)
        }
      }
    })
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk
    })
    this.exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        this.exit = { code, signal, at: Date.now() }
        resolve()
      }),
    )
  }

  get pid(): number {
    return this.child.pid as number
  }

  find(message: string, where: (l: LogLine) => boolean = () => true): Array<LogLine> {
    return this.logs.filter((l) => l.message === message && where(l))
  }

  /** Waits for the `n`th log line with this message (and matching `where`), and returns it. */
  async waitForLog(
    message: string,
    where: (l: LogLine) => boolean = () => true,
    n = 1,
    timeoutMs = 10_000,
  ): Promise<LogLine> {
    return waitFor(
      `log line #${n} "${message}" (seen: ${this.logs.map((l) => l.message).join(" | ")}; stderr: ${this.stderr})`,
      () => this.find(message, where)[n - 1],
      timeoutMs,
    )
  }

  async waitForExit(timeoutMs = 5_000): Promise<{ code: number | null; at: number }> {
    await Promise.race([this.exited, sleep(timeoutMs)])
    if (this.exit === undefined) throw new Error(`the script did not exit within ${timeoutMs} ms`)
    return this.exit
  }

  /** SIGTERM to `pid` (the script; not its wrapper), then SIGKILL if it does not end. */
  async stop(pid = this.pid): Promise<void> {
    if (this.exit !== undefined) return
    killQuietly(pid, "SIGTERM")
    await Promise.race([this.exited, sleep(3_000)])
    if (this.exit === undefined) {
      killQuietly(pid)
      killQuietly(this.pid)
    }
  }
}

interface SidecarOptions {
  readonly env: Readonly<Record<string, string>>
  /** Default: `sh deploy/configmap-reload.sh`. */
  readonly argv?: ReadonlyArray<string>
  readonly uid?: number
  readonly gid?: number
}

/** Starts the script in its own process group, with a clean environment. */
const startSidecar = (options: SidecarOptions): Sidecar => {
  const argv = options.argv ?? [SH, SCRIPT]
  const child = spawn(argv[0] as string, argv.slice(1), {
    env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  })
  const s = new Sidecar(child)
  cleanups.push(() => s.stop())
  return s
}

// ---------------------------------------------------------------------------------------------
// Targets

/**
 * A stand-in for the governor: a node process titled `name` (so `pidof name` finds it, like the
 * governor's `metrics-governor`), which appends "HUP" to its file on each SIGHUP. With a port it
 * also serves a /metrics page shaped like the governor's, where each SIGHUP counts as a reload
 * that was applied, rejected, or (silent) never happened.
 */
const DUMMY = `
const fs = require("node:fs")
const http = require("node:http")
const [name, file, port, mode] = process.argv.slice(1)
process.title = name
let version = 1
const counts = { applied: 0, unchanged: 0, rejected: 0 }
process.on("SIGHUP", () => {
  fs.appendFileSync(file, "HUP\\n")
  if (mode === "applied") { version++; counts.applied++ }
  if (mode === "rejected") counts.rejected++
})
process.on("SIGTERM", () => process.exit(0))
const ready = () => fs.writeFileSync(file, "pid " + process.pid + "\\n")
if (port) {
  http.createServer((req, res) => {
    const lines = ['metrics_governor_config_reload_attempts_total{trigger="startup",result="applied"} 1']
    for (const r of ["applied", "unchanged", "rejected"])
      lines.push('metrics_governor_config_reload_attempts_total{trigger="sighup",result="' + r + '"} ' + counts[r])
    lines.push("metrics_governor_config_version " + version)
    res.end(lines.join("\\n") + "\\n")
  }).listen(Number(port), "127.0.0.1", ready)
} else ready()
setInterval(() => {}, 1 << 30)
`

class Target {
  constructor(
    readonly pid: number,
    readonly file: string,
  ) {}

  hups(): number {
    return fs
      .readFileSync(this.file, "utf8")
      .split("\n")
      .filter((l) => l === "HUP").length
  }

  async stop(): Promise<void> {
    killQuietly(this.pid, "SIGTERM")
    await waitFor(`target ${this.pid} to end`, () => (alive(this.pid) ? undefined : true))
  }
}

/** Waits for a target's file to say it is ready, and returns it. */
const readyTarget = async (file: string): Promise<Target> => {
  const pid = await waitFor(`the target to write ${file}`, () => {
    const m = /^pid (\d+)\n/.exec(fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "")
    return m === null ? undefined : Number(m[1])
  })
  const t = new Target(pid, file)
  cleanups.push(async () => {
    killQuietly(pid)
    await waitFor(`target ${pid} to end`, () => (alive(pid) ? undefined : true))
  })
  return t
}

/** Starts a target in a process group of its own. */
const startTarget = async (
  name: string,
  d: string,
  options: { port?: number; mode?: "applied" | "rejected" | "silent"; uid?: number; gid?: number } = {},
): Promise<Target> => {
  const file = path.join(d, `target-${randomBytes(3).toString("hex")}`)
  const args = ["-e", DUMMY, name, file]
  if (options.port !== undefined) args.push(String(options.port), options.mode ?? "applied")
  const child = spawn(process.execPath, args, {
    stdio: "ignore",
    detached: true,
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  })
  child.unref()
  return readyTarget(file)
}

/**
 * Replaces `file` with `text` in one step (a new file renamed over it), as a ConfigMap update does:
 * written in place, a poll could read it truncated, half written, and see two changes.
 */
const replace = (file: string, text: string): void => {
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`
  fs.writeFileSync(tmp, text)
  fs.renameSync(tmp, file)
}

const writeFile = (d: string, name: string, text: string): string => {
  const f = path.join(d, name)
  fs.writeFileSync(f, text)
  return f
}

/** Fields of /proc/PID/stat after the command name: state, ppid, pgrp, ... */
const statFields = (pid: number): Array<string> => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat
    .slice(stat.lastIndexOf(")") + 2)
    .trim()
    .split(" ")
}

const FAST = { WATCH_INTERVAL: "0.2" }

describe("deploy/configmap-reload.sh", () => {
  it("is POSIX sh that dash and busybox accept", () => {
    for (const shell of [SH, "dash", "busybox"]) {
      const argv = shell === "busybox" ? ["sh", "-n", SCRIPT] : ["-n", SCRIPT]
      const r = spawnSync(shell, argv, { encoding: "utf8" })
      if (r.error !== undefined) {
        console.log(`not checking the script with ${shell}: ${r.error.message}`)
        continue
      }
      expect(r.stderr).toBe("")
      expect(r.status).toBe(0)
    }
  })

  it("signals a change only once delivered: a change made while the target is down is signalled once it runs", async () => {
    const d = dir()
    const f = writeFile(d, "limits.yaml", "rules: []\n")
    const name = uniqueName()
    const s = startSidecar({ env: { ...FAST, WATCH_FILES: f, PROCESS_NAME: name } })
    const started = await s.waitForLog("configmap-reload started")
    expect(started).toMatchObject({
      level: "info",
      fields: { watch_files: f, process_name: name, signal: "HUP", interval_seconds: 0.2, pid: s.pid },
    })
    await s.waitForLog("watching file", (l) => l.fields.path === f)

    // Nothing named like the target runs: the change is seen, the signal cannot be delivered.
    replace(f, "rules: []\n# v2\n")
    const changed = await s.waitForLog("watched file changed")
    expect(changed.fields).toMatchObject({ path: f })
    expect(changed.fields.sha256).toMatch(/^[0-9a-f]{64}$/)
    const retry = await s.waitForLog("no process to signal, will retry", () => true, 3)
    expect(retry).toMatchObject({ level: "warn", fields: { process_name: name } })

    // The target starts: the pending change is signalled, once.
    const t = await startTarget(name, d)
    await waitFor("the target to get SIGHUP", () => (t.hups() === 1 ? true : undefined))
    const sent = await s.waitForLog("signal sent")
    expect(sent).toMatchObject({ level: "info", fields: { pid: t.pid, signal: "HUP", process_name: name } })
    const retries = s.find("no process to signal, will retry").length
    await sleep(1_200)
    expect(t.hups()).toBe(1)
    expect(s.find("signal sent")).toHaveLength(1)
    expect(s.find("no process to signal, will retry")).toHaveLength(retries)
    expect(s.find("watched file changed")).toHaveLength(1)

    // The next change is signalled at once.
    replace(f, "rules: []\n# v3\n")
    await waitFor("the second SIGHUP", () => (t.hups() === 2 ? true : undefined))
    await sleep(600)
    expect(t.hups()).toBe(2)

    for (const l of s.logs) {
      expect(l.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
      expect(["info", "warn", "error"]).toContain(l.level)
      expect(typeof l.fields).toBe("object")
    }
    expect(s.notJson).toEqual([])
    expect(s.stderr).toBe("")
  })

  it("never signals itself, even when PROCESS_NAME is its own name", async () => {
    const d = dir()
    const f = writeFile(d, "limits.yaml", "rules: []\n")
    const name = uniqueName()
    // The shell runs under the name `name`: argv[0], comm and pidof all say `name`.
    const shell = path.join(d, name)
    fs.symlinkSync(SH, shell)
    const s = startSidecar({ argv: [shell, SCRIPT], env: { ...FAST, WATCH_FILES: f, PROCESS_NAME: name } })
    await s.waitForLog("watching file")
    expect(execFileSync("pidof", [name], { encoding: "utf8" }).split(/\s+/)).toContain(String(s.pid))

    replace(f, "rules: []\n# v2\n")
    const refused = await s.waitForLog("refusing to signal process", (l) => l.fields.pid === s.pid, 3)
    expect(refused).toMatchObject({ level: "warn", fields: { reason: "this script", process_name: name } })
    await s.waitForLog("no process to signal, will retry", () => true, 3)
    expect(s.find("signal sent")).toEqual([])
    expect(s.exit).toBeUndefined()
    expect(s.notJson).toEqual([])
  })

  it("never signals a process in its own process group, but does one in another", async () => {
    const d = dir()
    const f = writeFile(d, "limits.yaml", "rules: []\n")
    const name = uniqueName()
    const sibling = path.join(d, "sibling")
    // One process group: a target left behind by a subshell (so not the script's child), then the script.
    const s = startSidecar({
      argv: [
        SH,
        "-c",
        '(exec "$NODE" -e "$DUMMY" "$PROCESS_NAME" "$SIBLING" </dev/null >/dev/null 2>&1 &); exec "$SH_PATH" "$SCRIPT"',
      ],
      env: {
        ...FAST,
        WATCH_FILES: f,
        PROCESS_NAME: name,
        NODE: process.execPath,
        DUMMY,
        SIBLING: sibling,
        SH_PATH: SH,
        SCRIPT,
      },
    })
    const groupMate = await readyTarget(sibling)
    await s.waitForLog("watching file")
    expect(statFields(groupMate.pid)[2]).toBe(String(s.pid))
    expect(statFields(groupMate.pid)[1]).not.toBe(String(s.pid))

    replace(f, "rules: []\n# v2\n")
    const refused = await s.waitForLog("refusing to signal process", (l) => l.fields.pid === groupMate.pid, 2)
    expect(refused.fields.reason).toBe("in this script's process group")
    expect(s.find("signal sent")).toEqual([])

    const other = await startTarget(name, d)
    await waitFor("the target in another group to get SIGHUP", () => (other.hups() === 1 ? true : undefined))
    expect((await s.waitForLog("signal sent")).fields.pid).toBe(other.pid)
    await sleep(600)
    expect(groupMate.hups()).toBe(0)
    expect(other.hups()).toBe(1)
  })

  const root = process.getuid?.() === 0
  if (!root) console.log("skipping the kill-failure test: it needs root to run the script as another user")
  it.runIf(root)("logs a failed kill and retries it every interval until it is delivered", async () => {
    const d = dir()
    fs.chmodSync(d, 0o777)
    const script = path.join(d, "configmap-reload.sh")
    fs.copyFileSync(SCRIPT, script)
    fs.chmodSync(script, 0o644)
    const f = writeFile(d, "limits.yaml", "rules: []\n")
    fs.chmodSync(f, 0o644)
    const name = uniqueName()
    const nobody = { uid: 65534, gid: 65534 }

    // The script runs as nobody; the target as root: kill fails with EPERM.
    const rootTarget = await startTarget(name, d)
    const s = startSidecar({
      ...nobody,
      argv: [SH, script],
      env: { ...FAST, WATCH_FILES: f, PROCESS_NAME: name },
    })
    await s.waitForLog("watching file")
    replace(f, "rules: []\n# v2\n")
    const failed = await s.waitForLog("signal failed, will retry", (l) => l.fields.pid === rootTarget.pid, 3)
    expect(failed).toMatchObject({ level: "error", fields: { signal: "HUP", process_name: name } })
    expect(String(failed.fields.error)).toMatch(/not permitted|permission/i)
    expect(rootTarget.hups()).toBe(0)
    expect(s.find("signal sent")).toEqual([])

    // The target is replaced by one the script may signal: the retry delivers it.
    await rootTarget.stop()
    const t = await startTarget(name, d, nobody)
    await waitFor("the retried SIGHUP", () => (t.hups() === 1 ? true : undefined))
    expect((await s.waitForLog("signal sent")).fields.pid).toBe(t.pid)
    const failures = s.find("signal failed, will retry").length
    await sleep(600)
    expect(t.hups()).toBe(1)
    expect(s.find("signal failed, will retry")).toHaveLength(failures)
  })

  it("logs a missing watched file without failing, and does not signal for it", async () => {
    const d = dir()
    const f = writeFile(d, "limits.yaml", "rules: []\n")
    const missing = path.join(d, "config.yaml")
    const name = uniqueName()
    const t = await startTarget(name, d)
    const s = startSidecar({ env: { ...FAST, WATCH_FILES: `${missing} ${f}`, PROCESS_NAME: name } })
    const warn = await s.waitForLog("watched file missing or unreadable")
    expect(warn).toMatchObject({ level: "warn", fields: { path: missing } })
    await s.waitForLog("watching file", (l) => l.fields.path === f)

    replace(f, "rules: []\n# v2\n")
    await waitFor("a SIGHUP for the change", () => (t.hups() === 1 ? true : undefined))

    replace(missing, "limits:\n  dry_run: false\n")
    await s.waitForLog("watched file is readable again", (l) => l.fields.path === missing)
    await waitFor("a SIGHUP for the new file", () => (t.hups() === 2 ? true : undefined))

    fs.rmSync(missing)
    await s.waitForLog("watched file missing or unreadable", (l) => l.fields.path === missing, 2)
    await sleep(600)
    expect(t.hups()).toBe(2)
    expect(s.find("watched file missing or unreadable")).toHaveLength(2)
    expect(s.exit).toBeUndefined()
  })

  it("ends promptly with exit 0 on SIGTERM", async () => {
    const d = dir()
    const f = writeFile(d, "limits.yaml", "rules: []\n")
    const s = startSidecar({ env: { WATCH_INTERVAL: "30", WATCH_FILES: f, PROCESS_NAME: uniqueName() } })
    await s.waitForLog("watching file")
    await sleep(200)
    const sent = Date.now()
    s.child.kill("SIGTERM")
    const exit = await s.waitForExit(5_000)
    expect(exit.code).toBe(0)
    // Well before the 30 s interval is over.
    expect(exit.at - sent).toBeLessThan(2_000)
    expect(s.find("configmap-reload stopping")).toHaveLength(1)
  })

  it("exits 2 with an error line on an invalid setting", async () => {
    for (const env of [
      { WATCH_FILES: "" },
      { WATCH_FILES: "/etc/hostname", WATCH_INTERVAL: "0" },
      { WATCH_FILES: "/etc/hostname", WATCH_INTERVAL: "soon" },
      { WATCH_FILES: "/etc/hostname", SIGNAL: "NOPE" },
      { WATCH_FILES: "/etc/hostname", SIGNAL: "0" },
      { WATCH_FILES: "/etc/hostname", SIGNAL: "00" },
      { WATCH_FILES: "/etc/hostname", CONFIRM_TIMEOUT: "0" },
      { WATCH_FILES: "/etc/hostname", PROCESS_NAME: "/usr/bin/x" },
    ]) {
      const s = startSidecar({ env })
      expect((await s.waitForExit()).code).toBe(2)
      expect(s.logs).toHaveLength(1)
      expect(s.logs[0]?.level).toBe("error")
    }
  })

  it("finds the target through /proc when there is no pidof", async () => {
    const d = dir()
    const bin = path.join(d, "bin")
    fs.mkdirSync(bin)
    for (const tool of ["sha256sum", "date", "sed", "tr", "head", "sleep", "awk", "timeout"]) {
      const where = spawnSync(SH, ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim()
      if (where !== "") fs.symlinkSync(where, path.join(bin, tool))
    }
    const f = writeFile(d, "limits.yaml", "rules: []\n")
    const name = uniqueName()
    const t = await startTarget(name, d)
    const s = startSidecar({ env: { ...FAST, PATH: bin, WATCH_FILES: f, PROCESS_NAME: name } })
    await s.waitForLog("watching file")
    replace(f, "rules: []\n# v2\n")
    await waitFor("the SIGHUP", () => (t.hups() === 1 ? true : undefined))
    expect((await s.waitForLog("signal sent")).fields.pid).toBe(t.pid)
    expect(s.stderr).toBe("")
  })

  describe("with CONFIRM_URL", () => {
    for (const [mode, message, level, fields] of [
      ["applied", "reload confirmed", "info", { result: "applied", version: 2, previous_version: 1 }],
      [
        "rejected",
        "reload rejected by the governor, it keeps its current config",
        "error",
        { result: "rejected", version: 1 },
      ],
      ["silent", "reload not confirmed", "warn", { waited_seconds: 1, version: 1 }],
    ] as const) {
      it(`logs "${message}" when the reload is ${mode}`, async () => {
        const d = dir()
        const f = writeFile(d, "limits.yaml", "rules: []\n")
        const name = uniqueName()
        const port = await freePort()
        const t = await startTarget(name, d, { port, mode })
        const url = `http://127.0.0.1:${port}/metrics`
        const s = startSidecar({
          env: {
            ...FAST,
            WATCH_FILES: f,
            PROCESS_NAME: name,
            CONFIRM_URL: url,
            CONFIRM_TIMEOUT: mode === "silent" ? "1" : "5",
          },
        })
        await s.waitForLog("watching file")
        replace(f, "rules: []\n# v2\n")
        const l = await s.waitForLog(message)
        expect(l).toMatchObject({ level, fields: { url, ...fields } })
        expect(t.hups()).toBe(1)
      })
    }
  })

  const hasBusybox = spawnSync("busybox", ["true"]).status === 0
  if (!hasBusybox) console.log("skipping the busybox test: `busybox` is not installed")
  it.runIf(hasBusybox)(
    "works with busybox sh and busybox's applets only (pidof, wget, sha256sum)",
    async () => {
      const d = dir()
      const bin = path.join(d, "bin")
      fs.mkdirSync(bin)
      execFileSync("busybox", ["--install", "-s", bin])
      const f = writeFile(d, "limits.yaml", "rules: []\n")
      const name = uniqueName()
      const port = await freePort()
      const t = await startTarget(name, d, { port, mode: "applied" })
      const url = `http://127.0.0.1:${port}/metrics`
      const s = startSidecar({
        argv: [path.join(bin, "sh"), SCRIPT],
        env: { ...FAST, PATH: bin, WATCH_FILES: f, PROCESS_NAME: name, CONFIRM_URL: url },
      })
      await s.waitForLog("watching file")
      replace(f, "rules: []\n# v2\n")
      await waitFor("the SIGHUP", () => (t.hups() === 1 ? true : undefined))
      expect((await s.waitForLog("signal sent")).fields.pid).toBe(t.pid)
      expect((await s.waitForLog("reload confirmed")).fields).toMatchObject({ result: "applied", version: 2 })
      s.child.kill("SIGTERM")
      expect((await s.waitForExit(2_000)).code).toBe(0)
      expect(s.notJson).toEqual([])
      expect(s.stderr).toBe("")
    },
  )
})

// ---------------------------------------------------------------------------------------------
// The real governor as PID 1, the script in its PID namespace

/** Can this machine make a PID namespace (unshare) and enter one (nsenter)? */
const namespaceSupport = (): { ok: true } | { ok: false; reason: string } => {
  const r = spawnSync(
    "sh",
    [
      "-c",
      `command -v unshare >/dev/null || { echo "unshare is not installed"; exit 1; }
       command -v nsenter >/dev/null || { echo "nsenter is not installed"; exit 1; }
       unshare --pid --fork --mount-proc --kill-child sleep 10 >/dev/null 2>&1 &
       u=$!
       inner=
       for _ in 1 2 3 4 5 6 7 8 9 10; do
         inner=$(cat /proc/$u/task/$u/children 2>/dev/null)
         [ -n "$inner" ] && break
         sleep 0.1
       done
       [ -n "$inner" ] || { kill -9 $u 2>/dev/null; echo "unshare --pid --fork --mount-proc did not start a process"; exit 1; }
       out=$(nsenter --target $inner --pid --mount sh -c 'echo $$' 2>&1); rc=$?
       kill -9 $inner $u 2>/dev/null
       [ $rc -eq 0 ] && [ "$out" != "" ] || { echo "nsenter failed: $out"; exit 1; }`,
    ],
    { encoding: "utf8" },
  )
  if (r.error !== undefined) return { ok: false, reason: r.error.message }
  return r.status === 0 ? { ok: true } : { ok: false, reason: `${r.stdout}${r.stderr}`.trim() }
}

/** A kubelet-style ConfigMap volume: `..<timestamp>/` directories, a `..data` symlink, and file symlinks. */
class ConfigMapDir {
  private current = ""
  private generation = 0

  constructor(
    readonly dir: string,
    files: Readonly<Record<string, string>>,
  ) {
    this.current = this.writeGeneration(files)
    fs.symlinkSync(this.current, path.join(dir, "..data"))
    for (const name of Object.keys(files)) fs.symlinkSync(`..data/${name}`, path.join(dir, name))
  }

  private writeGeneration(files: Readonly<Record<string, string>>): string {
    this.generation++
    const stamp = `..2026_11_23_14_00_0${this.generation}.00000000${this.generation}`
    fs.mkdirSync(path.join(this.dir, stamp))
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(this.dir, stamp, name), text)
    return stamp
  }

  /** What the kubelet does on an update: a new directory, `..data_tmp`, an atomic rename, clean-up. */
  update(files: Readonly<Record<string, string>>): void {
    const next = this.writeGeneration(files)
    fs.symlinkSync(next, path.join(this.dir, "..data_tmp"))
    fs.renameSync(path.join(this.dir, "..data_tmp"), path.join(this.dir, "..data"))
    fs.rmSync(path.join(this.dir, this.current), { recursive: true })
    this.current = next
  }
}

const limitsYaml = (...names: ReadonlyArray<string>): string =>
  `rules:\n${names.map((n) => `  - name: ${n}\n    max_cardinality: 10\n    action: drop\n`).join("")}`

/** The only child of `pid` (host PID), once it exists. */
const childOf = (pid: number): Promise<number> =>
  waitFor(`a child of ${pid}`, () => {
    const text = fs.existsSync(`/proc/${pid}/task/${pid}/children`)
      ? fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim()
      : ""
    return text === "" ? undefined : Number(text.split(/\s+/)[0])
  })

const ns = namespaceSupport()
if (!ns.ok) console.log(`skipping the shared PID namespace test: ${ns.reason}`)

describe.runIf(ns.ok)("the sidecar and the governor (PID 1) in one PID namespace", () => {
  it("reloads the governor, with -reload-watch=false, after a ConfigMap ..data swap, by SIGHUP only", async () => {
    const d = dir()
    const cm = new ConfigMapDir(d, { "limits.yaml": limitsYaml("a") })
    const limits = path.join(d, "limits.yaml")

    const g: Governor = await startGovernor({
      args: ["-limits-config", limits, "-reload-watch=false", "-reload-debounce", "0"],
      wrapper: ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"],
    })
    const governorPid = await childOf(g.pid)
    cleanups.push(async () => {
      killQuietly(governorPid, "SIGTERM")
      await g.waitForExit(5_000).catch(() => undefined)
      await g.stop()
    })
    expect(
      fs
        .readFileSync(`/proc/${governorPid}/status`, "utf8")
        .match(/^NSpid:\s+(.*)$/m)?.[1]
        ?.trim()
        .split(/\s+/)
        .pop(),
    ).toBe("1")
    expect((await g.status()).version).toBe(1)

    const url = `${g.url}/metrics`
    const nsenter = startSidecar({
      argv: ["nsenter", "--target", String(governorPid), "--pid", "--mount", SH, SCRIPT],
      env: { WATCH_FILES: limits, WATCH_INTERVAL: "0.5", CONFIRM_URL: url },
    })
    const scriptPid = await childOf(nsenter.pid)
    cleanups.push(() => nsenter.stop(scriptPid))
    const started = await nsenter.waitForLog("configmap-reload started")
    expect(started.fields).toMatchObject({
      process_name: "metrics-governor",
      signal: "HUP",
      confirm_url: url,
    })
    // Inside the namespace the script is not PID 1 and sees the governor as PID 1.
    expect(started.fields.pid).not.toBe(1)
    await nsenter.waitForLog("watching file", (l) => l.fields.path === limits)

    // Nothing reloads on its own: the governor does not watch the files.
    cm.update({ "limits.yaml": limitsYaml("a", "b") })
    const sent = await nsenter.waitForLog("signal sent")
    expect(sent.fields).toMatchObject({ pid: 1, signal: "HUP", process_name: "metrics-governor" })
    await g.waitForVersion(2, 10_000)
    const status = (await (await g.get("/api/v1/status/config")).json()) as Record<string, unknown>
    expect(status).toMatchObject({ version: 2, trigger: "sighup", rules_count: 2 })
    const confirmed = await nsenter.waitForLog("reload confirmed")
    expect(confirmed.fields).toMatchObject({ result: "applied", version: 2, previous_version: 1 })
    expect(g.logs.some((l) => l.message === "received SIGHUP, reloading limits config")).toBe(true)
    expect(
      await g.metric('metrics_governor_config_reload_attempts_total{trigger="sighup",result="applied"}'),
    ).toBe(1)

    // One signal per change: the next intervals send nothing more.
    await sleep(1_500)
    expect(nsenter.find("signal sent")).toHaveLength(1)
    expect((await g.status()).version).toBe(2)

    // A bad update: signalled, rejected by the governor, reported by the script; version 2 stays.
    cm.update({ "limits.yaml": "rules:\n  - name: a\n    max_cardinalty: 10\n" })
    const rejected = await nsenter.waitForLog("reload rejected by the governor, it keeps its current config")
    expect(rejected.fields).toMatchObject({ result: "rejected", version: 2 })
    expect((await g.status()).version).toBe(2)

    await nsenter.stop(scriptPid)
    expect(nsenter.exit?.code).toBe(0)
    expect(nsenter.find("configmap-reload stopping")).toHaveLength(1)
    expect(nsenter.notJson).toEqual([])
    expect(g.exit).toBeUndefined()
  })
})
