/**
 * The operator console at `/` (docs/console.md): one HTML page rendered on the server, so it reads
 * without JavaScript; `console.js` refreshes it in place while it is open. The stylesheet and the
 * script are plain files shipped in the package (`dist/console/assets`), served by the control
 * server; the page loads nothing from anywhere else.
 *
 * @module
 */
import * as fs from "node:fs"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Either } from "effect"
import { type ReloadAttempt, Reloader, type ReloaderService } from "../reload/reloader.js"
import { statusConfig as statusConfigOf } from "../reload/status.js"
import { Console, type ListedVersion, type RuleRow, type TrafficSample, type VersionDiff } from "./service.js"

// --- assets ----------------------------------------------------------------------------------

const ASSETS: Readonly<Record<string, string>> = {
  "console.css": "text/css; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
}

const assetCache = new Map<string, string | undefined>()
const readAsset = (name: string): string | undefined => {
  if (!assetCache.has(name)) {
    let body: string | undefined
    try {
      body = fs.readFileSync(new URL(`./assets/${name}`, import.meta.url), "utf8")
    } catch {
      body = undefined
    }
    assetCache.set(name, body)
  }
  return assetCache.get(name)
}

/** `GET /console/<name>`: the stylesheet or the script, or 404. */
export const assetResponse = (name: string) => {
  const type = ASSETS[name]
  const body = type === undefined ? undefined : readAsset(name)
  if (type === undefined || body === undefined) return HttpServerResponse.text("not found\n", { status: 404 })
  return HttpServerResponse.text(body, { contentType: type, headers: { "cache-control": "no-cache" } })
}

// --- rendering -------------------------------------------------------------------------------

const ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
}
/** Text for HTML content and attribute values. */
export const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c] as string)

const short = (sha: string): string => (sha === "" ? "—" : sha.length > 12 ? sha.slice(0, 12) : sha)
const num = (n: number): string => n.toLocaleString("en-US")
const time = (iso: string): string => esc(iso.replace("T", " ").replace(/\.\d+Z$/, "Z"))

/** A usage bar: `value` against `limit` (0 = no limit), as a labelled meter. */
const bar = (label: string, value: number, limit: number): string => {
  if (limit <= 0) return `<span class="nolimit">${num(value)} <small>(no limit)</small></span>`
  const pct = Math.round((value / limit) * 100)
  const level = pct >= 100 ? "over" : pct >= 80 ? "high" : "ok"
  return `<div class="bar ${level}" role="img" aria-label="${esc(`${label}: ${value} of ${limit} (${pct}%)`)}"><span class="fill" style="width:${Math.min(100, pct)}%"></span><span class="val">${num(value)} / ${num(limit)} <small>${pct}%</small></span></div>`
}

const errorText = (a: ReloadAttempt): string => {
  if (a.error === undefined) return ""
  const issues = a.error.issues as ReadonlyArray<{
    file?: string
    line?: number
    column?: number
    path?: string
    message?: string
  }>
  if (issues.length === 0) return esc(a.error.message)
  return issues
    .map(
      (i) =>
        `<code>${esc(`${i.file ?? ""}:${i.line ?? 0}:${i.column ?? 0}`)}</code> ${esc(i.path ? `${i.path}: ` : "")}${esc(i.message ?? "")}`,
    )
    .join("<br>")
}

const timeline = (attempts: ReadonlyArray<ReloadAttempt>): string => {
  if (attempts.length === 0) return "<p>No reload attempts yet.</p>"
  const rows = [...attempts]
    .reverse()
    .map(
      (a) =>
        `<tr class="r-${esc(a.status)}"><td class="at" data-label="At">${time(a.at)}</td><td data-label="Trigger">${esc(a.trigger)}</td><td data-label="Result"><span class="badge ${esc(a.status)}">${esc(a.status)}</span></td><td class="n" data-label="Version">${esc(a.version)}</td><td class="n" data-label="Duration">${(a.duration_seconds * 1000).toFixed(1)} ms</td><td class="n" data-label="Coalesced">${esc(a.coalesced)}</td><td class="err" data-label="Error">${errorText(a)}</td></tr>`,
    )
    .join("")
  return `<div class="scroll"><table id="timeline"><caption>Reload attempts, newest first</caption><thead><tr><th scope="col">At</th><th scope="col">Trigger</th><th scope="col">Result</th><th scope="col">Version</th><th scope="col">Duration</th><th scope="col">Coalesced</th><th scope="col">Error</th></tr></thead><tbody>${rows}</tbody></table></div>`
}

const diffBlock = (text: string): string =>
  text === ""
    ? '<p class="muted">unchanged</p>'
    : `<pre class="diff">${text
        .split("\n")
        .map((l) => {
          const cls =
            l.startsWith("+++") || l.startsWith("---")
              ? "h"
              : l.startsWith("@@")
                ? "at"
                : l.startsWith("+")
                  ? "add"
                  : l.startsWith("-")
                    ? "del"
                    : ""
          return cls === "" ? esc(l) : `<span class="${cls}">${esc(l)}</span>`
        })
        .join("\n")}</pre>`

const ruleDiffList = (d: VersionDiff): string => {
  if (d.rules === null) return `<p class="muted">rules: ${esc(d.rules_error ?? "not comparable")}</p>`
  const items = [
    ...d.rules.added.map((r) => `<li><span class="add">added</span> ${esc(r)}</li>`),
    ...d.rules.removed.map((r) => `<li><span class="del">removed</span> ${esc(r)}</li>`),
    ...d.rules.changed.map(
      (c) =>
        `<li><span class="chg">changed</span> ${esc(c.rule)}: ${c.changes.map((k) => `<code>${esc(k.key)}</code> ${esc(JSON.stringify(k.old))} → ${esc(JSON.stringify(k.new))}`).join(", ")}</li>`,
    ),
    ...d.rules.settings.map(
      (k) =>
        `<li><span class="chg">setting</span> <code>${esc(k.key)}</code> ${esc(JSON.stringify(k.old))} → ${esc(JSON.stringify(k.new))}</li>`,
    ),
  ]
  return items.length === 0
    ? '<p class="muted">no rule changes</p>'
    : `<ul class="rulediff">${items.join("")}</ul>`
}

/** Versions shown on the page (newest first); the API lists every one. */
const VERSIONS_SHOWN = 20

const versionsSection = (
  listed: ReadonlyArray<ListedVersion>,
  currentRun: number,
  diffs: ReadonlyMap<ListedVersion, Either.Either<VersionDiff, string>>,
  active: { version: number },
  rollbackEnabled: boolean,
): string => {
  if (listed.length === 0) return "<p>No versions.</p>"
  const shown = listed.slice(-VERSIONS_SHOWN).reverse()
  return shown
    .map((v) => {
      const isActive = v.run === currentRun && v.version === active.version
      const name = v.run === currentRun ? `Version ${v.version}` : `Version ${v.version} (run ${v.run})`
      const d = diffs.get(v)
      const body =
        d === undefined
          ? '<p class="muted">first version: nothing to compare with</p>'
          : Either.isLeft(d)
            ? `<p class="muted">${esc(d.left)}</p>`
            : `<p class="muted">against version ${esc(d.right.from.version)}${d.right.from.run === v.run ? "" : ` (run ${esc(d.right.from.run)})`}</p>${ruleDiffList(d.right)}<h4>limits</h4>${diffBlock(d.right.files.limits)}<h4>config</h4>${diffBlock(d.right.files.config)}`
      const rollback =
        rollbackEnabled && !isActive
          ? `<form class="rollback" method="post" action="/-/rollback?version=${esc(v.version)}${v.run === currentRun ? "" : `&amp;run=${esc(v.run)}`}"><button type="submit">Roll back to ${esc(name.toLowerCase())}</button></form>`
          : ""
      return `<details class="version${isActive ? " active" : ""}" data-key="v${esc(v.run)}-${esc(v.version)}"><summary><strong>${esc(name)}</strong>${isActive ? ' <span class="badge applied">active</span>' : ""} · ${esc(v.trigger)}${v.rollback_of === undefined ? "" : ` of v${esc(v.rollback_of)}`} · ${time(v.at)} · ${esc(v.rules_count)} rules${v.dry_run ? " · dry-run" : ""} · <code>${esc(short(v.limits_sha256))}</code></summary>${body}${rollback}</details>`
    })
    .join("")
}

/** A rule's tiers (with its utilisation) and label limits (values admitted of each), when it has any. */
const shapingText = (r: RuleRow): string => {
  const parts: Array<string> = []
  if (r.tiers.length > 0) {
    parts.push(
      `tiers ${r.tiers.map((t) => `${t.at_percent}% ${t.action}`).join(", ")}; at ${r.utilisation_percent}%`,
    )
  }
  for (const l of r.label_limits) parts.push(`${l.label}: ${num(l.values)} of ${num(l.max)} values`)
  return parts.length === 0 ? "" : `<br><small class="shaping">${esc(parts.join(" · "))}</small>`
}

const groupsText = (r: RuleRow): string =>
  r.top_groups.length === 0
    ? '<span class="muted">—</span>'
    : `<ol class="groups">${r.top_groups.map((g) => `<li>${esc(g.group === "" ? "(empty)" : g.group)}: ${num(g.datapoints)} dp, ${num(g.series)} series${g.dropped ? ' <span class="badge rejected">dropped</span>' : ""}</li>`).join("")}</ol>`

const rulesTable = (rows: ReadonlyArray<RuleRow>, windowSeconds: number): string => {
  if (rows.length === 0) return "<p>No rules in the active limits.</p>"
  const body = rows
    .map(
      (r) =>
        `<tr><th scope="row"><span class="name">${esc(r.name)}</span><br><small>${esc(r.action)}${r.group_by.length > 0 ? ` by ${esc(r.group_by.join(", "))}` : ""}</small>${shapingText(r)}</th><td data-label="Cardinality">${bar(`${r.name} cardinality`, r.cardinality, r.max_cardinality)}</td><td data-label="Datapoints">${bar(`${r.name} datapoints`, r.datapoints, r.max_datapoints_rate)}</td><td class="n" data-label="Dropped">${num(r.dropped)}</td><td class="n" data-label="Would drop">${num(r.would_drop)}</td><td data-label="Top groups">${groupsText(r)}</td></tr>`,
    )
    .join("")
  return `<div class="scroll"><table id="rules"><caption>Usage in the current ${esc(windowSeconds)} s window against each limit</caption><thead><tr><th scope="col">Rule</th><th scope="col">Cardinality</th><th scope="col">Datapoints</th><th scope="col">Dropped</th><th scope="col">Would drop</th><th scope="col">Top groups</th></tr></thead><tbody>${body}</tbody></table></div>`
}

/** Per-second rates between consecutive samples of the named totals. */
const ratesOf = (
  samples: ReadonlyArray<TrafficSample>,
  key: "received" | "sent" | "dropped" | "would_drop",
) => {
  const out: Array<{ t: number; v: number }> = []
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1] as TrafficSample
    const b = samples[i] as TrafficSample
    const dt = (Date.parse(b.at) - Date.parse(a.at)) / 1000
    if (dt > 0) out.push({ t: Date.parse(b.at), v: Math.max(0, (b[key] - a[key]) / dt) })
  }
  return out
}

/** A small line chart of per-second rates (hand-written SVG), with a text summary for screen readers. */
export const chart = (
  title: string,
  samples: ReadonlyArray<TrafficSample>,
  series: ReadonlyArray<{ key: "received" | "sent" | "dropped" | "would_drop"; label: string; cls: string }>,
): string => {
  const w = 320
  const h = 96
  const lines = series.map((s) => ({ ...s, points: ratesOf(samples, s.key) }))
  const all = lines.flatMap((l) => l.points)
  const last = lines
    .map((l) => `${l.label} ${num(Math.round(l.points[l.points.length - 1]?.v ?? 0))}/s`)
    .join(", ")
  if (all.length === 0)
    return `<figure class="chart"><figcaption>${esc(title)}</figcaption><p class="muted">collecting samples…</p></figure>`
  const t0 = Math.min(...all.map((p) => p.t))
  const t1 = Math.max(...all.map((p) => p.t))
  const max = Math.max(1, ...all.map((p) => p.v))
  const x = (t: number) => (t1 === t0 ? w : ((t - t0) / (t1 - t0)) * w).toFixed(1)
  const y = (v: number) => (h - 4 - (v / max) * (h - 8)).toFixed(1)
  // One rate so far: a flat line at its level, so the chart is never blank.
  const pointsOf = (ps: ReadonlyArray<{ t: number; v: number }>): string => {
    const only = ps.length === 1 ? (ps[0] as { v: number }).v : undefined
    return only !== undefined
      ? `0,${y(only)} ${w},${y(only)}`
      : ps.map((p) => `${x(p.t)},${y(p.v)}`).join(" ")
  }
  const paths = lines.map((l) => `<polyline class="${l.cls}" points="${pointsOf(l.points)}"/>`).join("")
  const legend = lines.map((l) => `<span class="key ${l.cls}">${esc(l.label)}</span>`).join(" ")
  return `<figure class="chart"><figcaption>${esc(title)} <small>(per second, last ${Math.round((t1 - t0) / 60000) || "<1"} min; max ${num(Math.round(max))}/s)</small></figcaption><svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" role="img" aria-label="${esc(`${title}: ${last}`)}">${paths}</svg><p class="legend">${legend} <span class="muted">now: ${esc(last)}</span></p></figure>`
}

const diffCache = new Map<string, VersionDiff>()
const DIFF_CACHE_MAX = 200

/** Everything the page shows, rendered. Reads the reloader and the console service. */
export const renderPage = (options: { readonly rollbackEnabled: boolean }) =>
  Effect.gen(function* () {
    const reloader: ReloaderService = yield* Reloader
    const console = yield* Console
    const status = statusConfigOf(reloader)
    const attempts = yield* reloader.attempts
    const { current_run, versions } = yield* console.versions
    const rules = yield* console.rules
    const samples = [...(yield* console.traffic), { at: rules.at, ...rules.totals }]
    const shown = versions.slice(-VERSIONS_SHOWN - 1)
    const diffs = new Map<ListedVersion, Either.Either<VersionDiff, string>>()
    for (let i = 1; i < shown.length; i++) {
      const a = shown[i - 1] as ListedVersion
      const b = shown[i] as ListedVersion
      const key = `${a.limits_sha256}:${a.config_sha256}>${b.limits_sha256}:${b.config_sha256}:${a.run}.${a.version}:${b.run}.${b.version}`
      const cached = diffCache.get(key)
      if (cached !== undefined) {
        diffs.set(b, Either.right(cached))
        continue
      }
      const d = yield* Effect.either(
        console.diff({ run: a.run, version: a.version }, { run: b.run, version: b.version }),
      )
      if (Either.isRight(d)) {
        if (diffCache.size >= DIFF_CACHE_MAX) diffCache.delete(diffCache.keys().next().value as string)
        diffCache.set(key, d.right)
        diffs.set(b, Either.right(d.right))
      } else diffs.set(b, Either.left(d.left.message))
    }
    const rollbackEnabled = options.rollbackEnabled
    const drift = status.files_differ
      ? `<p class="drift" role="status"><strong>Files on disk differ from the active content</strong> (disk limits <code>${esc(short(status.disk_limits_sha256))}</code>, config <code>${esc(short(status.disk_config_sha256))}</code>). The next file change or SIGHUP applies the files.</p>`
      : '<p class="insync">Files on disk match the active content.</p>'
    return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>metrics-governor · version ${esc(status.version)}</title>
<link rel="stylesheet" href="/console/console.css">
<noscript><meta http-equiv="refresh" content="15"></noscript>
<script src="/console/console.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
<h1>metrics-governor</h1>
<div class="controls" role="group" aria-label="Refresh">
<button type="button" id="refresh">Refresh now</button>
<label><input type="checkbox" id="auto" checked> Refresh every 5 s</label>
<span id="updated" aria-live="polite">rendered ${time(rules.at)}</span>
</div>
</header>
<main id="main">
<section aria-labelledby="h-active" id="active">
<h2 id="h-active">Active version ${esc(status.version)}</h2>
<dl class="facts">
<dt>Trigger</dt><dd>${esc(status.trigger)}</dd>
<dt>Loaded</dt><dd>${time(status.loaded_at)}</dd>
<dt>Rules</dt><dd>${esc(status.rules_count)}</dd>
<dt>Dry-run</dt><dd>${status.dry_run ? `on (${esc(status.dry_run_source)})` : "off"}</dd>
<dt>limits sha256</dt><dd><code class="hash">${esc(status.limits_sha256 || "—")}</code></dd>
<dt>config sha256</dt><dd><code class="hash">${esc(status.config_sha256 || "—")}</code></dd>
${status.restart_required.length > 0 ? `<dt>Restart required</dt><dd>${esc(status.restart_required.join(", "))}</dd>` : ""}
</dl>
${drift}
<p id="action-result" role="status" aria-live="polite"></p>
</section>
<section aria-labelledby="h-traffic" id="traffic">
<h2 id="h-traffic">Traffic</h2>
<div class="charts">
${chart("Datapoints in and out", samples, [
  { key: "received", label: "in", cls: "s-in" },
  { key: "sent", label: "out", cls: "s-out" },
])}
${chart("Drops", samples, [
  { key: "dropped", label: "dropped", cls: "s-drop" },
  { key: "would_drop", label: "would drop", cls: "s-would" },
])}
</div>
</section>
<section aria-labelledby="h-rules" id="rules-section">
<h2 id="h-rules">Rules</h2>
${rulesTable(rules.rules, rules.window_seconds)}
</section>
<section aria-labelledby="h-timeline" id="timeline-section">
<h2 id="h-timeline">Reload timeline</h2>
${timeline(attempts)}
</section>
<section aria-labelledby="h-versions" id="versions">
<h2 id="h-versions">Versions</h2>
${rollbackEnabled ? `<p class="token"><label for="token">Bearer token for rollback (if one is configured)</label> <input type="password" id="token" autocomplete="off"></p>` : '<p class="muted">Rollback over HTTP is off (start with -reload-http to enable it).</p>'}
${versionsSection(versions, current_run, diffs, status, rollbackEnabled)}
</section>
</main>
</body>
</html>
`
  })
