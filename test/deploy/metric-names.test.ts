import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort, type Governor, ROOT, startGovernor, tempDir, waitFor } from "../support/governor.js"
import { pushRemoteWrite } from "../support/remote-write.js"

/**
 * Every metric name that the docs, the alert rules and the Helm chart use in a query exists on the
 * /metrics page of a running governor, so no dashboard, alert or documented query silently selects
 * nothing. The files are read when the test runs: new docs and rules are checked as they appear.
 */

// ---------------------------------------------------------------------------------------------
// Where names are used

/** A name as used: exactly (a series name) or as a prefix (`metrics_governor_limit_*`, `grep x`). */
interface Use {
  readonly file: string
  readonly line: number
  readonly name: string
  readonly prefix: boolean
}

/**
 * `metrics_governor_…` names: not part of a longer word, not a recording rule (`a:b:c`); a trailing
 * `*` makes it a prefix.
 */
const NAME = /(?<![A-Za-z0-9_:.-])metrics_governor_[a-z0-9_]*(?:\*|(?![A-Za-z0-9_]|:[A-Za-z_]))/g

const namesIn = (text: string, file: string, firstLine: number, prefix: boolean): Array<Use> =>
  text.split("\n").flatMap((l, i) =>
    [...l.matchAll(NAME)].map((m) => {
      const star = m[0].endsWith("*")
      return { file, line: firstLine + i, name: star ? m[0].slice(0, -1) : m[0], prefix: prefix || star }
    }),
  )

/** Shell blocks use names as `grep` patterns: prefixes. */
const SHELL = new Set(["bash", "sh", "shell", "console", "zsh"])

/** Fenced code blocks (every language) and inline code spans of a Markdown file. */
const markdownUses = (file: string): Array<Use> => {
  const lines = fs.readFileSync(file, "utf8").split("\n")
  const rel = path.relative(ROOT, file)
  const uses: Array<Use> = []
  let fence: { readonly marker: string; readonly lang: string; readonly start: number } | undefined
  let block: Array<string> = []
  let prose: Array<{ readonly text: string; readonly line: number }> = []
  const flushProse = () => {
    // Inline code spans, also those that span a line break.
    const text = prose.map((p) => p.text).join("\n")
    for (const m of text.matchAll(/(`+)([\s\S]*?[^`])\1(?!`)/g)) {
      const line = (prose[0]?.line ?? 1) + text.slice(0, m.index).split("\n").length - 1
      uses.push(...namesIn(m[2] as string, rel, line, false))
    }
    prose = []
  }
  lines.forEach((text, i) => {
    const open = /^\s*(`{3,}|~{3,})\s*([\w+-]*)/.exec(text)
    if (fence === undefined) {
      if (open !== null) {
        flushProse()
        fence = { marker: open[1] as string, lang: (open[2] ?? "").toLowerCase(), start: i + 2 }
        block = []
      } else prose.push({ text, line: i + 1 })
      return
    }
    const f = fence
    if (text.trim().startsWith(f.marker) && text.trim().replace(/[`~]/g, "") === "") {
      uses.push(...namesIn(block.join("\n"), rel, f.start, SHELL.has(f.lang)))
      fence = undefined
    } else block.push(text)
  })
  flushProse()
  return uses
}

const walk = (dir: string): Array<string> =>
  fs.existsSync(dir)
    ? fs
        .readdirSync(dir, { withFileTypes: true })
        .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]))
    : []

const isYaml = (f: string) => /\.ya?ml$/.test(f)

/**
 * docs/*.md and README.md; deploy/alerts/*.yaml and the chart's templates (and files/); the
 * Grafana dashboards deploy/grafana/*.json and their copies in the chart's files/.
 */
const sources = (): { markdown: Array<string>; yaml: Array<string>; json: Array<string> } => {
  const docs = path.join(ROOT, "docs")
  const markdown = [
    ...(fs.existsSync(docs)
      ? fs
          .readdirSync(docs)
          .filter((f) => f.endsWith(".md"))
          .map((f) => path.join(docs, f))
      : []),
    path.join(ROOT, "README.md"),
  ].filter((f) => fs.existsSync(f))
  const alerts = path.join(ROOT, "deploy/alerts")
  const yaml = [
    ...(fs.existsSync(alerts)
      ? fs
          .readdirSync(alerts)
          .filter(isYaml)
          .map((f) => path.join(alerts, f))
      : []),
    ...walk(path.join(ROOT, "deploy/helm")).filter(
      (f) => isYaml(f) && /[/\\](templates|files)[/\\]/.test(path.relative(ROOT, f)),
    ),
  ]
  const json = [
    ...walk(path.join(ROOT, "deploy/grafana")),
    ...walk(path.join(ROOT, "deploy/helm")).filter((f) => /[/\\]files[/\\]/.test(path.relative(ROOT, f))),
  ].filter((f) => f.endsWith(".json"))
  return { markdown, yaml, json }
}

/** The PromQL of a Grafana dashboard: panel targets (also in rows), annotations, variable queries. */
const dashboardUses = (file: string): Array<Use> => {
  const rel = path.relative(ROOT, file)
  const exprs: Array<string> = []
  const visit = (v: unknown, key: string): void => {
    if (typeof v === "string") {
      if (key === "expr" || key === "query" || key === "definition") exprs.push(v)
    } else if (Array.isArray(v)) for (const x of v) visit(x, key)
    else if (typeof v === "object" && v !== null) for (const [k, x] of Object.entries(v)) visit(x, k)
  }
  visit(JSON.parse(fs.readFileSync(file, "utf8")), "")
  return exprs.flatMap((e, i) => namesIn(e, `${rel} (query ${i + 1})`, 1, false))
}

// ---------------------------------------------------------------------------------------------
// What the governor exposes

interface Exposed {
  /** Every name with a `# TYPE` line, and its type. */
  readonly types: Map<string, string>
  /** Every name with at least one sample. */
  readonly sampled: Set<string>
}

const parseExposition = (text: string): Exposed => {
  const types = new Map<string, string>()
  const sampled = new Set<string>()
  for (const line of text.split("\n")) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line)
    if (t !== null) types.set(t[1] as string, t[2] as string)
    else if (/^[a-zA-Z_:]/.test(line)) sampled.add(line.split(/[{ ]/)[0] as string)
  }
  return { types, sampled }
}

/** Whether a name used in a query selects something the governor exposes. */
const exists = (e: Exposed, use: Use): boolean => {
  const all = [...e.types.keys(), ...e.sampled]
  if (use.prefix) return all.some((n) => n.startsWith(use.name))
  if (e.types.has(use.name) || e.sampled.has(use.name)) return true
  const m = /^(.*)_(bucket|sum|count)$/.exec(use.name)
  const family = m === null ? undefined : e.types.get(m[1] as string)
  return family === "histogram" || family === "summary"
}

// ---------------------------------------------------------------------------------------------
// A governor with every receiver on, both exporters pointed at a loopback sink, and traffic

const LIMITS = `dead_rule_interval: 1m
rules:
  - name: names-check
    labels: {team: names}
    match:
      metric_name: "names_check_.*"
    max_cardinality: 1
    action: drop
    tiers:
      - {at_percent: 50, action: log}
    label_limits: {id: 1}
`

const otlpJson = (metric: string) =>
  JSON.stringify({
    resourceMetrics: [
      {
        resource: { attributes: [{ key: "service.name", value: { stringValue: "names-check" } }] },
        scopeMetrics: [
          {
            scope: { name: "names-check" },
            metrics: [
              {
                name: metric,
                gauge: {
                  dataPoints: ["a", "b"].map((id) => ({
                    attributes: [{ key: "id", value: { stringValue: id } }],
                    timeUnixNano: String(BigInt(Date.now()) * 1_000_000n),
                    asDouble: 1.5,
                  })),
                },
              },
            ],
          },
        ],
      },
    ],
  })

describe("metric names in the docs, alerts and chart", () => {
  let governor: Governor | undefined
  let sink: http.Server | undefined
  let dir = ""
  let exposed: Exposed = { types: new Map(), sampled: new Set() }

  beforeAll(async () => {
    dir = tempDir("mg-names-")
    fs.writeFileSync(path.join(dir, "limits.yaml"), LIMITS)
    // The downstream: takes everything (an empty 200 is a valid OTLP response too).
    const server = http.createServer((req, res) => {
      req.resume()
      req.on("end", () => {
        res.setHeader("content-type", "application/x-protobuf")
        res.end()
      })
    })
    sink = server
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const downstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const [httpPort, grpcPort, prwPort] = [await freePort(), await freePort(), await freePort()]
    governor = await startGovernor({
      args: [
        "-config",
        "deploy/examples/config.yaml",
        "-limits-config",
        path.join(dir, "limits.yaml"),
        "-http-listen",
        `127.0.0.1:${httpPort}`,
        "-grpc-listen",
        `127.0.0.1:${grpcPort}`,
        "-prw-listen",
        `127.0.0.1:${prwPort}`,
        "-exporter-endpoint",
        `${downstream}/v1/metrics`,
        "-prw-exporter-endpoint",
        `${downstream}/api/v1/write`,
        "-stats-labels",
        "id",
      ],
    })
    const g = governor

    const now = Date.now()
    const prw = await pushRemoteWrite(`http://127.0.0.1:${prwPort}/api/v1/write`, [
      { labels: { __name__: "names_check_prw", id: "a" }, samples: [{ value: 1, timestamp: now }] },
      { labels: { __name__: "names_check_prw", id: "b" }, samples: [{ value: 2, timestamp: now }] },
      { labels: { __name__: "other_prw", id: "c" }, samples: [{ value: 3, timestamp: now }] },
    ])
    expect(prw).toBeLessThan(300)
    const otlp = await fetch(`http://127.0.0.1:${httpPort}/v1/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: otlpJson("other_otlp"),
    })
    await otlp.arrayBuffer()
    expect(otlp.status).toBe(200)

    // Received and forwarded on both protocols (the names-check rule drops one remote-write
    // series): the data-path counters have samples.
    exposed = await waitFor(
      "datapoints received and sent on both protocols",
      async () => {
        const text = await g.metrics()
        const sent = ["otlp", "prw"].every((p) =>
          text
            .split("\n")
            .some((l) =>
              new RegExp(`^metrics_governor_datapoints_sent_total\\{[^}]*protocol="${p}"[^}]*\\} [1-9]`).test(
                l,
              ),
            ),
        )
        return sent ? parseExposition(text) : undefined
      },
      10_000,
    )
  }, 60_000)

  afterAll(async () => {
    await governor?.stop()
    await new Promise<void>((resolve) => (sink === undefined ? resolve() : sink.close(() => resolve())))
    if (dir !== "") fs.rmSync(dir, { recursive: true, force: true })
  })

  it("the governor exposes the data-path and reload metrics with samples", () => {
    for (const name of [
      "metrics_governor_datapoints_received_total",
      "metrics_governor_datapoints_sent_total",
      "metrics_governor_config_reload_attempts_total",
      "metrics_governor_config_version",
      "metrics_governor_config_info",
    ])
      expect(exposed.sampled, name).toContain(name)
    expect(exposed.types.get("metrics_governor_config_reload_duration_seconds")).toBe("histogram")
  })

  it("every metric name in a query in docs/*.md and README.md exists on /metrics", () => {
    const { markdown } = sources()
    expect(markdown.map((f) => path.relative(ROOT, f))).toContain("docs/reload.md")
    const uses = markdown.flatMap(markdownUses)
    // The docs do use names (a broken extractor would find none and pass).
    expect(new Set(uses.map((u) => u.name)).size).toBeGreaterThan(10)
    const missing = uses.filter((u) => !exists(exposed, u))
    expect(missing.map((u) => `${u.file}:${u.line}: ${u.name}${u.prefix ? "*" : ""}`)).toEqual([])
  })

  it("every metric name in deploy/alerts/*.yaml and the Helm chart's templates exists on /metrics", () => {
    const { yaml } = sources()
    if (yaml.length === 0) console.log("no deploy/alerts/*.yaml or deploy/helm/**/templates/*.yaml yet")
    const uses = yaml.flatMap((f) => namesIn(fs.readFileSync(f, "utf8"), path.relative(ROOT, f), 1, false))
    const missing = uses.filter((u) => !exists(exposed, u))
    expect(missing.map((u) => `${u.file}:${u.line}: ${u.name}`)).toEqual([])
  })

  it("every metric name in the Grafana dashboard's queries exists on /metrics", () => {
    const { json } = sources()
    expect(json.map((f) => path.relative(ROOT, f))).toContain("deploy/grafana/metrics-governor.json")
    const uses = json.flatMap(dashboardUses)
    // The dashboard does use names (a broken extractor would find none and pass).
    expect(new Set(uses.map((u) => u.name)).size).toBeGreaterThan(15)
    const missing = uses.filter((u) => !exists(exposed, u))
    expect(missing.map((u) => `${u.file}: ${u.name}`)).toEqual([])
  })

  it("the extractor finds names in PromQL, YAML and prose code, and leaves recording rules alone", () => {
    const uses = namesIn(
      [
        "sum by (le) (rate(metrics_governor_config_reload_duration_seconds_bucket[5m]))",
        "expr: count(count by (limits_sha256) (metrics_governor_config_info)) > 1",
        "record: job:metrics_governor_config_reloads:rate5m",
        "- series: 'metrics_governor_limits_dry_run{instance=\"a\"}'",
        "(`metrics_governor_limit_*`)",
      ].join("\n"),
      "x",
      1,
      false,
    )
    expect(uses.map((u) => [u.name, u.prefix])).toEqual([
      ["metrics_governor_config_reload_duration_seconds_bucket", false],
      ["metrics_governor_config_info", false],
      ["metrics_governor_limits_dry_run", false],
      ["metrics_governor_limit_", true],
    ])
    expect(
      exists(exposed, { file: "x", line: 1, name: "metrics_governor_no_such_metric", prefix: false }),
    ).toBe(false)
    expect(
      exists(exposed, { file: "x", line: 1, name: "metrics_governor_config_version_sum", prefix: false }),
    ).toBe(false)
    expect(
      exists(exposed, {
        file: "x",
        line: 1,
        name: "metrics_governor_config_reload_duration_seconds_count",
        prefix: false,
      }),
    ).toBe(true)
  })
})
