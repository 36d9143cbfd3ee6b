import * as fs from "node:fs"
import * as https from "node:https"
import * as net from "node:net"
import * as path from "node:path"
import * as tls from "node:tls"
import * as grpc from "@grpc/grpc-js"
import { afterEach, describe, expect, it } from "vitest"
import { encodeOtlpProtobuf } from "../../src/protocols/otlp/protobuf.js"
import { GrpcCode } from "../../src/protocols/otlp/status.js"
import {
  metricValue,
  otlpSeries,
  prwBody,
  prwMany,
  type Running,
  send,
  startWithReceivers,
} from "../support/data-path.js"
import { ROOT, tempDir, waitFor } from "../support/governor.js"
import { RawMetricsClient } from "../support/grpc.js"
import { SecretDir } from "../support/secret-dir.js"

const FIXTURES = path.join(ROOT, "test/fixtures/tls")
const fixture = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES, name))
const CA = fixture("ca.crt")

const serverFiles = (cert = "server", ca = true) => ({
  "tls.crt": fixture(`${cert}.crt`),
  "tls.key": fixture(`${cert}.key`),
  ...(ca ? { "ca.crt": CA } : {}),
  token: "s3cret-token\n",
  password: "pa55word\n",
})

interface HttpsAnswer {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly peerCn: string
}

/** One request over a new TLS connection (no agent, no session reuse). */
const httpsPost = (
  port: number,
  urlPath: string,
  body: Uint8Array,
  headers: Record<string, string>,
  client: { cert?: Buffer; key?: Buffer } = {},
): Promise<HttpsAnswer> =>
  new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: urlPath,
        ca: CA,
        ...client,
        agent: false,
        headers: { ...headers, "content-length": String(body.length) },
        timeout: 10_000,
      },
      (res) => {
        const peer = (res.socket as tls.TLSSocket).getPeerCertificate()
        res.resume()
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, peerCn: String(peer.subject?.CN) }),
        )
      },
    )
    req.on("error", reject)
    req.end(body)
  })

/** The certificate a new TLS connection to `port` is shown (h2 offered, as gRPC clients do). */
const peerCn = (port: number, client: { cert?: Buffer; key?: Buffer } = {}): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca: CA, ALPNProtocols: ["h2"], ...client }, () => {
      const cn = String(socket.getPeerCertificate().subject?.CN)
      socket.destroy()
      resolve(cn)
    })
    socket.on("error", reject)
  })

const grpcExport = (
  port: number,
  credentials: grpc.ChannelCredentials,
  metadata: grpc.Metadata = new grpc.Metadata(),
): Promise<grpc.ServiceError | null> =>
  new Promise((resolve) => {
    const client = new RawMetricsClient(`127.0.0.1:${port}`, credentials)
    const bytes = Buffer.from(encodeOtlpProtobuf(otlpSeries("grpc_tls", 2)))
    client.makeUnaryRequest(
      "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      metadata,
      { deadline: Date.now() + 10_000 },
      (err: grpc.ServiceError | null) => {
        client.close()
        resolve(err)
      },
    )
  })

const bearer = (token: string) => {
  const md = new grpc.Metadata()
  md.set("authorization", `Bearer ${token}`)
  return md
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`

const OTLP_HEADERS = { "content-type": "application/x-protobuf" }
const PRW_HEADERS = { "content-type": "application/x-protobuf", "content-encoding": "snappy" }

/** Every `metrics_governor_tls_reload_failures_total` sample, summed. */
const reloadFailures = async (r: Running): Promise<number> =>
  (await r.governor.metrics())
    .split("\n")
    .filter((l) => l.startsWith("metrics_governor_tls_reload_failures_total{"))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0)

let running: Running | undefined
afterEach(async () => {
  await running?.governor.stop()
  running = undefined
})

const start = async (secret: SecretDir, opts: { mutual?: boolean; auth?: boolean } = {}) => {
  const config = [
    "receivers:",
    "  tls:",
    `    cert_file: ${secret.file("tls.crt")}`,
    `    key_file: ${secret.file("tls.key")}`,
    ...(opts.mutual ? [`    client_ca_file: ${secret.file("ca.crt")}`] : []),
    ...(opts.auth
      ? [
          "  auth:",
          `    bearer_token_file: ${secret.file("token")}`,
          "    basic_username: ingest",
          `    basic_password_file: ${secret.file("password")}`,
        ]
      : []),
    "",
  ].join("\n")
  running = await startWithReceivers(tempDir(), config)
  return running
}

describe("receivers.tls", () => {
  it("serves TLS on OTLP/HTTP, remote write and OTLP/gRPC; plain HTTP fails the handshake", async () => {
    const secret = new SecretDir(tempDir("mg-secret-"))
    secret.swap(serverFiles())
    const r = await start(secret)
    const otlp = await httpsPost(
      r.httpPort,
      "/v1/metrics",
      encodeOtlpProtobuf(otlpSeries("tls_http", 3)),
      OTLP_HEADERS,
    )
    expect(otlp).toMatchObject({ status: 200, peerCn: "server" })
    const prw = await httpsPost(r.prwPort, "/api/v1/write", prwBody(prwMany("tls_prw", 4)), PRW_HEADERS)
    expect(prw).toMatchObject({ status: 204, peerCn: "server" })
    expect(await grpcExport(r.grpcPort, grpc.credentials.createSsl(CA))).toBeNull()
    expect(await peerCn(r.grpcPort)).toBe("server")
    // A plain-HTTP request to the TLS port: no HTTP answer at all.
    await expect(
      send(r.httpPort, { path: "/v1/metrics", headers: OTLP_HEADERS, body: "x", timeoutMs: 3_000 }),
    ).rejects.toThrow()
    await expect(
      send(r.prwPort, { path: "/api/v1/write", headers: PRW_HEADERS, body: "x", timeoutMs: 3_000 }),
    ).rejects.toThrow()
    // A plaintext gRPC client does not get through either.
    expect((await grpcExport(r.grpcPort, grpc.credentials.createInsecure()))?.code).toBe(GrpcCode.UNAVAILABLE)
    expect(
      await metricValue(r.governor, "metrics_governor_datapoints_received_total", { protocol: "otlp" }),
    ).toBe(5)
    expect(
      await metricValue(r.governor, "metrics_governor_datapoints_received_total", { protocol: "prw" }),
    ).toBe(4)
  }, 30_000)

  it("with client_ca_file refuses a client without a certificate and serves one with it", async () => {
    const secret = new SecretDir(tempDir("mg-secret-"))
    secret.swap(serverFiles())
    const r = await start(secret, { mutual: true })
    const body = encodeOtlpProtobuf(otlpSeries("mtls", 1))
    await expect(httpsPost(r.httpPort, "/v1/metrics", body, OTLP_HEADERS)).rejects.toThrow()
    await expect(
      httpsPost(r.prwPort, "/api/v1/write", prwBody(prwMany("mtls", 1)), PRW_HEADERS),
    ).rejects.toThrow()
    const client = { cert: fixture("client.crt"), key: fixture("client.key") }
    expect((await httpsPost(r.httpPort, "/v1/metrics", body, OTLP_HEADERS, client)).status).toBe(200)
    expect(
      (await httpsPost(r.prwPort, "/api/v1/write", prwBody(prwMany("mtls", 1)), PRW_HEADERS, client)).status,
    ).toBe(204)
    expect((await grpcExport(r.grpcPort, grpc.credentials.createSsl(CA)))?.code).toBe(GrpcCode.UNAVAILABLE)
    expect(await grpcExport(r.grpcPort, grpc.credentials.createSsl(CA, client.key, client.cert))).toBeNull()
  }, 30_000)
})

describe("receivers.auth", () => {
  it("answers 401 / UNAUTHENTICATED without or with wrong credentials, counted nowhere else", async () => {
    const secret = new SecretDir(tempDir("mg-secret-"))
    secret.swap(serverFiles())
    const r = await start(secret, { auth: true })
    const body = encodeOtlpProtobuf(otlpSeries("auth", 2))
    const none = await httpsPost(r.httpPort, "/v1/metrics", body, OTLP_HEADERS)
    expect(none.status).toBe(401)
    // Two challenges (Node's client joins the two header lines with ", ").
    expect(none.headers["www-authenticate"]).toBe(
      'Bearer realm="metrics-governor", Basic realm="metrics-governor", charset="UTF-8"',
    )
    const wrong = { ...OTLP_HEADERS, authorization: "Bearer s3cret-tokeN" }
    expect((await httpsPost(r.httpPort, "/v1/metrics", body, wrong)).status).toBe(401)
    const wrongBasic = { ...PRW_HEADERS, authorization: basic("ingest", "nope") }
    expect(
      (await httpsPost(r.prwPort, "/api/v1/write", prwBody(prwMany("auth", 3)), wrongBasic)).status,
    ).toBe(401)
    const creds = grpc.credentials.createSsl(CA)
    expect((await grpcExport(r.grpcPort, creds))?.code).toBe(GrpcCode.UNAUTHENTICATED)
    expect((await grpcExport(r.grpcPort, creds, bearer("wrong")))?.code).toBe(GrpcCode.UNAUTHENTICATED)

    const g = r.governor
    expect(await metricValue(g, "metrics_governor_receiver_auth_failures_total", { protocol: "otlp" })).toBe(
      4,
    )
    expect(await metricValue(g, "metrics_governor_receiver_auth_failures_total", { protocol: "prw" })).toBe(1)
    expect(
      await metricValue(g, "metrics_governor_receiver_requests_total", { protocol: "otlp", code: "401" }),
    ).toBe(2)
    expect(
      await metricValue(g, "metrics_governor_receiver_requests_total", {
        protocol: "otlp",
        code: "grpc_unauthenticated",
      }),
    ).toBe(2)
    const text = await g.metrics()
    expect(text).not.toMatch(/^metrics_governor_datapoints_received_total\{[^}]*\} [1-9]/m)
    expect(text).not.toMatch(/^metrics_governor_receiver_refused_total\{[^}]*\} [1-9]/m)

    // Right credentials: bearer, basic, gRPC metadata.
    expect(
      (
        await httpsPost(r.httpPort, "/v1/metrics", body, {
          ...OTLP_HEADERS,
          authorization: "Bearer s3cret-token",
        })
      ).status,
    ).toBe(200)
    const goodBasic = { ...PRW_HEADERS, authorization: basic("ingest", "pa55word") }
    expect((await httpsPost(r.prwPort, "/api/v1/write", prwBody(prwMany("auth", 3)), goodBasic)).status).toBe(
      204,
    )
    expect(await grpcExport(r.grpcPort, creds, bearer("s3cret-token"))).toBeNull()
    expect(await metricValue(g, "metrics_governor_datapoints_received_total", { protocol: "otlp" })).toBe(4)

    // A rotated token counts at once; the old one stops counting.
    secret.swap({ ...serverFiles(), token: "next-token\n" })
    await waitFor(
      "the rotated token",
      async () =>
        (
          await httpsPost(r.httpPort, "/v1/metrics", body, {
            ...OTLP_HEADERS,
            authorization: "Bearer next-token",
          })
        ).status === 200
          ? true
          : undefined,
      10_000,
      100,
    )
    expect(
      (
        await httpsPost(r.httpPort, "/v1/metrics", body, {
          ...OTLP_HEADERS,
          authorization: "Bearer s3cret-token",
        })
      ).status,
    ).toBe(401)
    expect((await grpcExport(r.grpcPort, creds, bearer("s3cret-token")))?.code).toBe(GrpcCode.UNAUTHENTICATED)
    expect(await grpcExport(r.grpcPort, creds, bearer("next-token"))).toBeNull()
  }, 40_000)
})

describe("rotation", () => {
  it("a ..data swap gives new connections the new certificate; a bad file keeps the old one and counts", async () => {
    const secret = new SecretDir(tempDir("mg-secret-"))
    secret.swap(serverFiles("server", false))
    const r = await start(secret)
    const pid = r.governor.pid
    const body = encodeOtlpProtobuf(otlpSeries("rot", 1))
    expect((await httpsPost(r.httpPort, "/v1/metrics", body, OTLP_HEADERS)).peerCn).toBe("server")

    secret.swap(serverFiles("server2", false))
    await waitFor(
      "the rotated certificate on OTLP/HTTP",
      async () =>
        (await httpsPost(r.httpPort, "/v1/metrics", body, OTLP_HEADERS)).peerCn === "server2"
          ? true
          : undefined,
      10_000,
      100,
    )
    expect(
      (await httpsPost(r.prwPort, "/api/v1/write", prwBody(prwMany("rot", 1)), PRW_HEADERS)).peerCn,
    ).toBe("server2")
    expect(await peerCn(r.grpcPort)).toBe("server2")
    expect(await grpcExport(r.grpcPort, grpc.credentials.createSsl(CA))).toBeNull()

    // Not PEM: refused, counted, the previous certificate stays.
    secret.swap({ ...serverFiles("server", false), "tls.crt": fixture("bad.crt") })
    await waitFor(
      "the reload failure to be counted",
      async () => ((await reloadFailures(r)) === 1 ? true : undefined),
      10_000,
      100,
    )
    expect(r.governor.logs.some((l) => l.level === "error" && l.message.includes("does not load"))).toBe(true)
    expect((await httpsPost(r.httpPort, "/v1/metrics", body, OTLP_HEADERS)).peerCn).toBe("server2")
    expect(await peerCn(r.grpcPort)).toBe("server2")

    // A key that does not match its certificate: refused too.
    secret.swap({ ...serverFiles("server", false), "tls.key": fixture("server2.key") })
    await waitFor(
      "the second reload failure",
      async () => ((await reloadFailures(r)) >= 2 ? true : undefined),
      10_000,
      100,
    )
    expect(await peerCn(r.grpcPort)).toBe("server2")

    // A later good file recovers.
    secret.swap(serverFiles("server", false))
    await waitFor(
      "the recovered certificate",
      async () =>
        (await httpsPost(r.httpPort, "/v1/metrics", body, OTLP_HEADERS)).peerCn === "server"
          ? true
          : undefined,
      10_000,
      100,
    )
    expect(await peerCn(r.grpcPort)).toBe("server")
    expect(r.governor.exit).toBeUndefined()
    expect(r.governor.pid).toBe(pid)
  }, 60_000)
})

describe("reload of the receivers' TLS and credential settings", () => {
  it("other certificate and token files, and auth removed, apply on SIGHUP without a restart", async () => {
    const a = new SecretDir(tempDir("mg-secret-"))
    a.swap(serverFiles("server", false))
    const b = new SecretDir(tempDir("mg-secret-"))
    b.swap({ ...serverFiles("server2", false), token: "other-token\n" })
    const configDir = tempDir()
    const config = (dir: SecretDir, auth: boolean) =>
      [
        "receivers:",
        "  tls:",
        `    cert_file: ${dir.file("tls.crt")}`,
        `    key_file: ${dir.file("tls.key")}`,
        ...(auth ? ["  auth:", `    bearer_token_file: ${dir.file("token")}`] : []),
        "",
      ].join("\n")
    running = await startWithReceivers(configDir, config(a, true))
    const r = running
    const pid = r.governor.pid
    const body = encodeOtlpProtobuf(otlpSeries("tls_reload", 1))
    const post = (token?: string) =>
      httpsPost(r.httpPort, "/v1/metrics", body, {
        ...OTLP_HEADERS,
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      })
    expect(await post("s3cret-token")).toMatchObject({ status: 200, peerCn: "server" })

    fs.writeFileSync(path.join(configDir, "config.yaml"), config(b, true))
    r.governor.signal("SIGHUP")
    await r.governor.waitForVersion(2)
    await waitFor("the new files in force", async () =>
      (await post("other-token")).status === 200 ? true : undefined,
    )
    expect(await post("other-token")).toMatchObject({ status: 200, peerCn: "server2" })
    expect((await post("s3cret-token")).status).toBe(401)
    expect(await peerCn(r.grpcPort)).toBe("server2")
    expect((await grpcExport(r.grpcPort, grpc.credentials.createSsl(CA), bearer("s3cret-token")))?.code).toBe(
      GrpcCode.UNAUTHENTICATED,
    )
    expect(await grpcExport(r.grpcPort, grpc.credentials.createSsl(CA), bearer("other-token"))).toBeNull()
    const status = (await (await r.governor.get("/api/v1/status/config")).json()) as {
      restart_required: Array<string>
    }
    expect(status.restart_required).toEqual([])

    // Credentials removed: requests without them are served again.
    fs.writeFileSync(path.join(configDir, "config.yaml"), config(b, false))
    r.governor.signal("SIGHUP")
    await r.governor.waitForVersion(3)
    await waitFor("no credentials asked", async () => ((await post()).status === 200 ? true : undefined))
    expect(await grpcExport(r.grpcPort, grpc.credentials.createSsl(CA))).toBeNull()
    expect(r.governor.pid).toBe(pid)
  }, 60_000)
})

/** An HTTP/1.1 connection driven by hand: a request can be left half-sent across a reload. */
class RawConnection {
  private readonly socket: net.Socket
  private received = ""

  constructor(port: number) {
    this.socket = net.connect({ host: "127.0.0.1", port })
    this.socket.setEncoding("latin1")
    this.socket.on("data", (c: string) => {
      this.received += c
    })
    this.socket.on("error", () => {})
  }

  write(data: string | Uint8Array): void {
    this.socket.write(typeof data === "string" ? Buffer.from(data, "latin1") : data)
  }

  /** The answers received so far (status line and headers of each). */
  get text(): string {
    return this.received
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.socket.readyState === "closed"
  }

  destroy(): void {
    this.socket.destroy()
  }
}

const head = (path: string, length: number, headers: Record<string, string>) =>
  `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("")}content-length: ${length}\r\n\r\n`

describe("reload of the receivers' TLS mode", () => {
  it("TLS on, mutual TLS on, mutual TLS off, TLS off: on SIGHUP, on all three receivers, without a restart or a request cut", async () => {
    const secret = new SecretDir(tempDir("mg-secret-"))
    secret.swap(serverFiles())
    const configDir = tempDir()
    const config = (tls: "off" | "on" | "mutual") =>
      [
        "shutdown_timeout: 5s",
        ...(tls === "off"
          ? []
          : [
              "receivers:",
              "  tls:",
              `    cert_file: ${secret.file("tls.crt")}`,
              `    key_file: ${secret.file("tls.key")}`,
              ...(tls === "mutual" ? [`    client_ca_file: ${secret.file("ca.crt")}`] : []),
            ]),
        "",
      ].join("\n")
    running = await startWithReceivers(configDir, config("off"))
    const r = running
    const pid = r.governor.pid
    const otlpBody = encodeOtlpProtobuf(otlpSeries("tls_mode", 1))
    const prwBytes = prwBody(prwMany("tls_mode", 1))
    const client = { cert: fixture("client.crt"), key: fixture("client.key") }
    const plainOtlp = () => send(r.httpPort, { path: "/v1/metrics", headers: OTLP_HEADERS, body: otlpBody })
    const plainPrw = () => send(r.prwPort, { path: "/api/v1/write", headers: PRW_HEADERS, body: prwBytes })
    const tlsOtlp = (c = {}) => httpsPost(r.httpPort, "/v1/metrics", otlpBody, OTLP_HEADERS, c)
    const tlsPrw = (c = {}) => httpsPost(r.prwPort, "/api/v1/write", prwBytes, PRW_HEADERS, c)
    const reload = async (to: "off" | "on" | "mutual", version: number) => {
      fs.writeFileSync(path.join(configDir, "config.yaml"), config(to))
      r.governor.signal("SIGHUP")
      await r.governor.waitForVersion(version)
    }
    const restartRequired = async () =>
      ((await (await r.governor.get("/api/v1/status/config")).json()) as { restart_required: Array<string> })
        .restart_required

    // Plaintext, as started.
    expect((await plainOtlp()).status).toBe(200)
    expect((await plainPrw()).status).toBe(204)
    expect(await grpcExport(r.grpcPort, grpc.credentials.createInsecure())).toBeNull()
    // Open across the switch: an idle keep-alive connection, one with a request half-sent, and a
    // gRPC channel with its connection up.
    const idle = new RawConnection(r.httpPort)
    idle.write(head("/v1/metrics", otlpBody.length, OTLP_HEADERS))
    idle.write(otlpBody)
    await waitFor("the idle connection's answer", async () =>
      idle.text.includes("\r\n\r\n") ? true : undefined,
    )
    expect(idle.text).toMatch(/^HTTP\/1\.1 200/)
    const busy = new RawConnection(r.prwPort)
    busy.write(head("/api/v1/write", prwBytes.length, PRW_HEADERS))
    busy.write(prwBytes.subarray(0, 5))
    const channel = new RawMetricsClient(`127.0.0.1:${r.grpcPort}`, grpc.credentials.createInsecure())
    const onChannel = () =>
      new Promise<grpc.ServiceError | null>((resolve) =>
        channel.makeUnaryRequest(
          "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from(otlpBody),
          new grpc.Metadata(),
          { deadline: Date.now() + 5_000 },
          (err: grpc.ServiceError | null) => resolve(err),
        ),
      )
    expect(await onChannel()).toBeNull()

    // TLS on.
    await reload("on", 2)
    await waitFor("the idle plaintext connection closed", async () => (idle.isClosed ? true : undefined))
    expect(busy.isClosed).toBe(false)
    busy.write(prwBytes.subarray(5))
    await waitFor("the busy connection closed after its answer", async () =>
      busy.isClosed ? true : undefined,
    )
    // The request in progress was answered, and its connection closed after the answer.
    expect(busy.text).toMatch(/^HTTP\/1\.1 204/)
    expect(busy.text.toLowerCase()).toContain("connection: close")
    expect(await tlsOtlp()).toMatchObject({ status: 200, peerCn: "server" })
    expect(await tlsPrw()).toMatchObject({ status: 204, peerCn: "server" })
    expect(await grpcExport(r.grpcPort, grpc.credentials.createSsl(CA))).toBeNull()
    await expect(plainOtlp()).rejects.toThrow()
    await expect(plainPrw()).rejects.toThrow()
    expect((await grpcExport(r.grpcPort, grpc.credentials.createInsecure()))?.code).toBe(GrpcCode.UNAVAILABLE)
    // The plaintext gRPC connection was drained: the channel cannot go on in plaintext.
    expect((await onChannel())?.code).toBe(GrpcCode.UNAVAILABLE)
    channel.close()
    expect(await restartRequired()).toEqual([])

    // Client certificates asked for.
    await reload("mutual", 3)
    await expect(tlsOtlp()).rejects.toThrow()
    await expect(tlsPrw()).rejects.toThrow()
    expect((await tlsOtlp(client)).status).toBe(200)
    expect((await tlsPrw(client)).status).toBe(204)
    expect((await grpcExport(r.grpcPort, grpc.credentials.createSsl(CA)))?.code).toBe(GrpcCode.UNAVAILABLE)
    expect(await grpcExport(r.grpcPort, grpc.credentials.createSsl(CA, client.key, client.cert))).toBeNull()

    // No longer asked for.
    await reload("on", 4)
    expect((await tlsOtlp()).status).toBe(200)
    expect((await tlsPrw()).status).toBe(204)
    expect(await grpcExport(r.grpcPort, grpc.credentials.createSsl(CA))).toBeNull()

    // TLS off.
    await reload("off", 5)
    expect((await plainOtlp()).status).toBe(200)
    expect((await plainPrw()).status).toBe(204)
    expect(await grpcExport(r.grpcPort, grpc.credentials.createInsecure())).toBeNull()
    await expect(tlsOtlp()).rejects.toThrow()
    expect(await restartRequired()).toEqual([])
    expect(r.governor.pid).toBe(pid)
    const said = r.governor.logs.map((l) => l.message)
    expect(said).toContain(
      "receivers serve TLS from this reload on: plaintext connections still open close after their current request",
    )
    expect(said).toContain(
      "receivers serve plaintext from this reload on (receivers.tls removed): TLS connections still open close after their current request",
    )
    // 1 + 1 + 1 (plaintext) + 1 + 1 + 1 (TLS) + 1 + 1 (mutual) + 1 + 1 (TLS) + 1 + 1 (plaintext) +
    // the busy request's one datapoint on remote write, all received.
    expect(
      await metricValue(r.governor, "metrics_governor_datapoints_received_total", { protocol: "prw" }),
    ).toBe(6)
    idle.destroy()
  }, 60_000)
})

describe("reload of the receivers' TLS mode, files that do not load", () => {
  it("TLS turned on with a missing key keeps the receivers plaintext, logged and counted; fixed files then switch", async () => {
    const secret = new SecretDir(tempDir("mg-secret-"))
    secret.swap(serverFiles())
    const configDir = tempDir()
    const config = (keyFile: string) =>
      [
        "receivers:",
        "  tls:",
        `    cert_file: ${secret.file("tls.crt")}`,
        `    key_file: ${keyFile}`,
        "",
      ].join("\n")
    running = await startWithReceivers(configDir, "shutdown_timeout: 5s\n")
    const r = running
    const body = encodeOtlpProtobuf(otlpSeries("tls_bad", 1))
    const plain = () => send(r.httpPort, { path: "/v1/metrics", headers: OTLP_HEADERS, body })
    fs.writeFileSync(path.join(configDir, "config.yaml"), config(path.join(secret.dir, "missing.key")))
    r.governor.signal("SIGHUP")
    await r.governor.waitForVersion(2)
    expect((await plain()).status).toBe(200)
    expect(await grpcExport(r.grpcPort, grpc.credentials.createInsecure())).toBeNull()
    expect(await reloadFailures(r)).toBe(1)
    expect(r.governor.logs.map((l) => [l.level, l.message])).toContainEqual([
      "error",
      "receivers' TLS from the reload does not load; the receivers stay plaintext",
    ])
    fs.writeFileSync(path.join(configDir, "config.yaml"), config(secret.file("tls.key")))
    r.governor.signal("SIGHUP")
    await r.governor.waitForVersion(3)
    expect(await httpsPost(r.httpPort, "/v1/metrics", body, OTLP_HEADERS)).toMatchObject({
      status: 200,
      peerCn: "server",
    })
    await expect(plain()).rejects.toThrow()
  }, 30_000)
})
