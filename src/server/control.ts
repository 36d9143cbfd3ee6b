import { createHash, timingSafeEqual } from "node:crypto"
import { type IncomingMessage, Server, type ServerResponse } from "node:http"
// Each module by its own path: the packages' indexes load every module they have, among them
// API-documentation pages that hold tens of megabytes of JavaScript as strings.
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, Layer } from "effect"
import { TokenFile } from "../export/token-file.js"
import { Reloader, type ReloaderService } from "../reload/reloader.js"
import { logError } from "../telemetry/log.js"
import { scrape } from "../telemetry/metrics.js"
import type { ListenAddress } from "./address.js"
import { drainHttpServer, Shutdown } from "./shutdown.js"

export interface ControlSettings {
  readonly address: ListenAddress
  /** `-reload-http`: POST /-/reload is enabled. */
  readonly reloadHttp: boolean
  /**
   * `-reload-auth-token-file`: checked on every request (a stat; read again only when it changed),
   * so a rotated token applies at once.
   */
  readonly reloadAuthTokenFile: string | undefined
}

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })

type AuthResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly status: 401 }
  /** The token file cannot be read or is empty: `detail` (with its path) is for the log only. */
  | { readonly ok: false; readonly status: 503; readonly detail: string }

const sha256 = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest()

/**
 * Constant-time token comparison that does not reveal the expected token's length either: both
 * sides are hashed to fixed-length digests, always, and the digests compared with `timingSafeEqual`.
 */
export const tokensMatch = (given: string, expected: string, digest = sha256): boolean => {
  const a = digest(given)
  const b = digest(expected)
  return timingSafeEqual(a, b)
}

const checkToken = (header: string | undefined, tokenFile: TokenFile | undefined): AuthResult => {
  if (tokenFile === undefined) return { ok: true }
  const expected = tokenFile.read()
  if (expected instanceof Error) return { ok: false, status: 503, detail: expected.message }
  const m = /^Bearer\s+(.+)$/i.exec(header ?? "")
  return tokensMatch(m?.[1]?.trim() ?? "", expected) ? { ok: true } : { ok: false, status: 401 }
}

const statusOf = (v: {
  version: number
  limitsSha256: string
  configSha256: string
  rulesCount: number
  dryRun: boolean
  dryRunSource: string
  loadedAt: number
  trigger: string
}) => ({
  version: v.version,
  limits_sha256: v.limitsSha256,
  config_sha256: v.configSha256,
  rules_count: v.rulesCount,
  dry_run: v.dryRun,
  dry_run_source: v.dryRunSource,
  loaded_at: new Date(v.loadedAt).toISOString(),
  trigger: v.trigger,
})

/** `GET /api/v1/status/config`: the active version, and the keys that wait for a restart. */
export const statusConfig = (reloader: ReloaderService) => ({
  ...statusOf(reloader.current()),
  restart_required: reloader.now().restartRequired,
  limits_path: reloader.settings.paths.limits ?? null,
  config_path: reloader.settings.paths.config ?? null,
})

/**
 * The control server's HTTP server: `GET /api/v1/status/config`, `/live` and `/ready` (what
 * probes, dashboards and reload scripts poll, often back to back) are answered right in the
 * request's event, from the state as it is at that moment; every other request goes to the
 * routes. The answers are the routes' own: the routes serve them too.
 */
class ControlServer extends Server {
  constructor(private readonly reloader: ReloaderService) {
    super()
  }

  // biome-ignore lint/suspicious/noExplicitAny: the signature of EventEmitter.emit
  override emit(event: string, ...args: Array<any>): boolean {
    if (event === "request" && this.answered(args[0] as IncomingMessage, args[1] as ServerResponse))
      return true
    return super.emit(event, ...args)
  }

  private answered(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== "GET") return false
    switch (req.url) {
      case "/api/v1/status/config":
        send(res, "application/json", JSON.stringify(statusConfig(this.reloader)))
        return true
      case "/live":
        send(res, "text/plain", "ok\n")
        return true
      case "/ready":
        send(res, "text/plain", "ready\n")
        return true
      default:
        return false
    }
  }
}

const send = (res: ServerResponse, contentType: string, body: string): void => {
  res.writeHead(200, { "content-type": contentType, "content-length": Buffer.byteLength(body) })
  res.end(body)
}

/** The control server's routes: `/metrics`, `/live`, `/ready`, `/-/reload`, `/api/v1/status/*`. */
export const routes = (settings: Pick<ControlSettings, "reloadHttp" | "reloadAuthTokenFile">) => {
  const tokenFile =
    settings.reloadAuthTokenFile === undefined ? undefined : new TokenFile(settings.reloadAuthTokenFile)
  return HttpRouter.empty.pipe(
    HttpRouter.get(
      "/metrics",
      Effect.map(scrape, ({ body, contentType }) => HttpServerResponse.text(body, { contentType })),
    ),
    HttpRouter.get("/live", Effect.succeed(HttpServerResponse.text("ok\n"))),
    HttpRouter.get("/ready", Effect.succeed(HttpServerResponse.text("ready\n"))),
    HttpRouter.get(
      "/api/v1/status/config",
      Effect.map(Reloader, (reloader) => json(statusConfig(reloader))),
    ),
    HttpRouter.get(
      "/api/v1/status/reloads",
      Effect.gen(function* () {
        const reloader = yield* Reloader
        return json({ reloads: yield* reloader.attempts })
      }),
    ),
    HttpRouter.post(
      "/-/reload",
      Effect.gen(function* () {
        if (!settings.reloadHttp) {
          return json(
            { status: "error", error: { message: "reload over HTTP is disabled (-reload-http)" } },
            403,
          )
        }
        const request = yield* HttpServerRequest.HttpServerRequest
        const auth = checkToken(request.headers.authorization, tokenFile)
        if (!auth.ok) {
          if (auth.status === 503) {
            // The path and the system's error are for the operator, not for an unauthenticated client.
            yield* logError("reload over HTTP refused", {
              path: settings.reloadAuthTokenFile ?? null,
              error: auth.detail,
            })
            return json({ status: "error", error: { message: "reload token unavailable" } }, 503)
          }
          return HttpServerResponse.unsafeJson(
            { status: "error", error: { message: "missing or wrong bearer token" } },
            { status: 401, headers: { "www-authenticate": "Bearer" } },
          )
        }
        const reloader = yield* Reloader
        const attempt = yield* reloader.request("http")
        return json(attempt, attempt.status === "rejected" ? 422 : attempt.status === "error" ? 500 : 200)
      }),
    ),
  )
}

/**
 * The control server, listening on `-stats-addr` for the life of the scope. It stops accepting when
 * shutdown begins, like the receivers; a request still in progress at the end of the shutdown grace
 * (a client trickling its headers or body) has its connection cut, so it cannot hold shutdown open.
 */
export const layer = (settings: ControlSettings) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const shutdown = yield* Shutdown
      const server = new ControlServer(yield* Reloader)
      const drain = drainHttpServer("control server", server, shutdown)
      // Built after the server and its routes, so this bounded close runs before theirs (the
      // platform's own close waits for every connection to end, however long a client takes).
      return Layer.scopedDiscard(Effect.addFinalizer(() => drain)).pipe(
        Layer.provideMerge(HttpServer.serve(routes(settings), (app) => app)),
        Layer.provide(
          NodeHttpServer.layer(() => server, {
            port: settings.address.port,
            ...(settings.address.host === undefined ? {} : { host: settings.address.host }),
          }),
        ),
      )
    }),
  )
