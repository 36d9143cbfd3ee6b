import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { freePort, sleep, tempDir, waitFor } from "./governor.js"

/** Whether Debian's `prometheus` is installed (CI installs it; see .ci/run). */
export const prometheusAvailable = (): boolean => spawnSync("prometheus", ["--version"]).status === 0

/** A real Prometheus on loopback, with the remote-write receiver on, as the governor's downstream. */
export class Prometheus {
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly dir: string,
    readonly output: { text: string },
  ) {}

  /** Starts it on `port` (default: a free one), e.g. the port a governor already exports to. */
  static async start(options: { readonly port?: number } = {}): Promise<Prometheus> {
    const dir = tempDir("mg-prom-")
    const port = options.port ?? (await freePort())
    fs.writeFileSync(path.join(dir, "prometheus.yml"), "global:\n  scrape_interval: 1h\n")
    const child = spawn(
      "prometheus",
      [
        `--config.file=${path.join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${path.join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--web.enable-remote-write-receiver",
        "--storage.tsdb.retention.time=1h",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    )
    const output = { text: "" }
    child.stdout?.on("data", (c: Buffer) => {
      output.text += c.toString()
    })
    child.stderr?.on("data", (c: Buffer) => {
      output.text += c.toString()
    })
    const p = new Prometheus(child, port, dir, output)
    await waitFor(
      "prometheus to be ready",
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited: ${output.text}`)
        try {
          return (await fetch(`${p.url}/-/ready`)).status === 200 ? true : undefined
        } catch {
          return undefined
        }
      },
      30_000,
      100,
    )
    return p
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get remoteWriteUrl(): string {
    return `${this.url}/api/v1/write`
  }

  /** An instant query; returns the result vector as (labels, value) pairs. */
  async query(
    promql: string,
    time?: number,
  ): Promise<Array<{ metric: Record<string, string>; value: number }>> {
    const params = new URLSearchParams({ query: promql })
    if (time !== undefined) params.set("time", String(time / 1000))
    const res = await fetch(`${this.url}/api/v1/query?${params}`)
    const body = (await res.json()) as {
      status: string
      data: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> }
      error?: string
    }
    if (body.status !== "success") throw new Error(`query ${promql} failed: ${body.error}`)
    return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }))
  }

  /** Every series (label sets) matching a selector, over all time. */
  async series(selector: string): Promise<Array<Record<string, string>>> {
    const params = new URLSearchParams({ "match[]": selector, start: "0" })
    const res = await fetch(`${this.url}/api/v1/series?${params}`)
    const body = (await res.json()) as { status: string; data: Array<Record<string, string>> }
    if (body.status !== "success") throw new Error(`series ${selector} failed`)
    return body.data
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      this.child.kill("SIGTERM")
      for (let i = 0; i < 100 && this.child.exitCode === null; i++) await sleep(50)
      if (this.child.exitCode === null) this.child.kill("SIGKILL")
    }
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}
