import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { freePort } from "./ports.js"

export { freePort }

export const ROOT = path.resolve(import.meta.dirname, "../..")
export const MAIN = path.join(ROOT, "dist/main.js")
/** The launcher that sizes the heap for the memory limit, then runs `dist/main.js`. */
export const LAUNCHER = path.join(ROOT, "bin/metrics-governor")

export interface LogLine {
  readonly ts: string
  readonly level: string
  readonly message: string
  readonly fields: Record<string, unknown>
}

/** A fresh temporary directory, removed by `cleanup`. */
export const tempDir = (prefix = "mg-"): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix))

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export const waitFor = async <A>(
  what: string,
  check: () => A | undefined | Promise<A | undefined>,
  timeoutMs = 5_000,
  everyMs = 20,
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

/** A governor running as a real child process, with its stdout parsed as JSON log lines. */
export class Governor {
  readonly logs: Array<LogLine> = []
  stdout = ""
  stderr = ""
  exit: { code: number | null; signal: NodeJS.Signals | null; at: number } | undefined
  private readonly exited: Promise<void>

  constructor(
    readonly child: ChildProcess,
    readonly statsPort: number,
  ) {
    let partial = ""
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stdout += chunk
      partial += chunk
      const lines = partial.split("\n")
      partial = lines.pop() ?? ""
      for (const l of lines) if (l.trim() !== "") this.logs.push(JSON.parse(l) as LogLine)
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

  get url(): string {
    return `http://127.0.0.1:${this.statsPort}`
  }

  get pid(): number {
    return this.child.pid as number
  }

  async get(p: string): Promise<Response> {
    return fetch(`${this.url}${p}`)
  }

  async status(): Promise<{
    version: number
    limits_sha256: string
    config_sha256: string
    rules_count: number
  }> {
    return (await (await this.get("/api/v1/status/config")).json()) as {
      version: number
      limits_sha256: string
      config_sha256: string
      rules_count: number
    }
  }

  async metrics(): Promise<string> {
    return (await this.get("/metrics")).text()
  }

  /** The value of one sample on /metrics (`name{labels}` exactly as exposed), or undefined. */
  async metric(series: string): Promise<number | undefined> {
    const text = await this.metrics()
    for (const line of text.split("\n")) {
      if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1))
    }
    return undefined
  }

  async waitForVersion(version: number, timeoutMs = 5_000): Promise<void> {
    await waitFor(
      `config version ${version}`,
      async () => ((await this.status()).version >= version ? true : undefined),
      timeoutMs,
    )
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig)
  }

  /** Waits for the process to end; returns its exit code and how long it took after `since`. */
  async waitForExit(
    timeoutMs = 5_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }> {
    await Promise.race([this.exited, sleep(timeoutMs)])
    if (this.exit === undefined) throw new Error(`process ${this.pid} did not exit within ${timeoutMs} ms`)
    return this.exit
  }

  async stop(): Promise<void> {
    if (this.exit === undefined) {
      this.child.kill("SIGTERM")
      await Promise.race([this.exited, sleep(3_000)])
      if (this.exit === undefined) this.child.kill("SIGKILL")
    }
  }
}

export interface StartOptions {
  readonly args: ReadonlyArray<string>
  readonly cwd?: string
  /** Wait until /ready answers 200 (default true). */
  readonly waitReady?: boolean
  /** Wrap the command, e.g. ["unshare", "--pid", "--fork", "--mount-proc"]. */
  readonly wrapper?: ReadonlyArray<string>
  /** Start through `bin/metrics-governor` (heap sized for the memory limit), as the image does. */
  readonly launcher?: boolean
  /** Environment of the process (default: this process's). */
  readonly env?: NodeJS.ProcessEnv
}

/** Starts `node dist/main.js` with a free `-stats-addr` on loopback (unless given) and the data receivers off. */
export const startGovernor = async (options: StartOptions): Promise<Governor> => {
  const statsPort = await freePort()
  const args = [
    "-stats-addr",
    `127.0.0.1:${statsPort}`,
    "-grpc-listen",
    "",
    "-prw-listen",
    "",
    "-http-listen",
    `127.0.0.1:${await freePort()}`,
    ...options.args,
  ]
  const command = options.launcher === true ? [LAUNCHER] : [process.execPath, MAIN]
  const argv = [...(options.wrapper ?? []), ...command, ...args]
  const child = spawn(argv[0] as string, argv.slice(1), {
    cwd: options.cwd ?? ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    ...(options.env === undefined ? {} : { env: options.env }),
  })
  const gov = new Governor(child, statsPort)
  if (options.waitReady ?? true) {
    await waitFor(
      "the governor to be ready",
      async () => {
        if (gov.exit !== undefined) {
          throw new Error(`governor exited early (${gov.exit.code}): ${gov.stderr}${gov.stdout}`)
        }
        try {
          return (await gov.get("/ready")).status === 200 ? true : undefined
        } catch {
          return undefined
        }
      },
      10_000,
    )
  }
  return gov
}

/** Runs the CLI to completion (validate, replay) and returns its output and exit code. */
export const runCli = (
  args: ReadonlyArray<string>,
  cwd = ROOT,
): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c
    })
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c
    })
    child.on("exit", (code) => resolve({ code, stdout, stderr }))
  })
