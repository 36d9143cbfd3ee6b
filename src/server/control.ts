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
import { assetResponse, renderPage } from "../console/page.js"
import { BadRequest, Console, type ConsoleError, type VersionRef } from "../console/service.js"
import { TokenFile } from "../export/token-file.js"
import { Reloader, type ReloaderService } from "../reload/reloader.js"
import { statusConfig } from "../reload/status.js"
import { logError } from "../telemetry/log.js"
import { scrape } from "../telemetry/metrics.js"
import type { ListenAddress } from "./address.js"
import { drainHttpServer, Shutdown } from "./shutdown.js"

export { statusConfig }

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

/** A console API error as its JSON answer: 400 for bad parameters, 404 for what is not known. */
const consoleError = (e: ConsoleError) =>
  json({ status: "error", error: { type: e._tag, message: e.message } }, e._tag === "BadRequest" ? 400 : 404)

/** An endpoint of the console whose errors are answered as `consoleError` does. */
const answerConsoleErrors = <A, R>(self: Effect.Effect<A, ConsoleError, R>) =>
  Effect.catchTags(self, {
    BadRequest: consoleError,
    VersionNotFound: consoleError,
    ContentUnavailable: consoleError,
  })

const searchOf = (url: string): URLSearchParams => new URL(url, "http://control").searchParams

/** A version number (1, 2, …) from a parameter; `undefined` when absent and optional. */
const versionParam = (value: string | null | undefined, name: string) =>
  value !== null && value !== undefined && /^[1-9][0-9]{0,14}$/.test(value)
    ? Effect.succeed(Number(value))
    : Effect.fail(
        new BadRequest({
          reason: `${name} must be a version number (1, 2, …), got ${value === null || value === undefined ? "nothing" : JSON.stringify(value)}`,
        }),
      )

const optionalRun = (search: URLSearchParams, name: string) => {
  const v = search.get(name)
  return v === null ? Effect.succeed(undefined) : versionParam(v, name)
}

const refOf = (search: URLSearchParams, versionName: string, runName: string) =>
  Effect.gen(function* () {
    const version = yield* versionParam(search.get(versionName), versionName)
    const run = yield* optionalRun(search, runName)
    return { version, run } satisfies VersionRef
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

/**
 * The control server's routes: `/metrics`, `/live`, `/ready`, `/-/reload`, `/-/rollback`,
 * `/api/v1/status/*`, and the console at `/`.
 */
export const routes = (settings: Pick<ControlSettings, "reloadHttp" | "reloadAuthTokenFile">) => {
  const tokenFile =
    settings.reloadAuthTokenFile === undefined ? undefined : new TokenFile(settings.reloadAuthTokenFile)
  /** The guard of `/-/reload` and `/-/rollback`: the flag, then the bearer token. */
  const guard = (what: string) =>
    Effect.gen(function* () {
      if (!settings.reloadHttp) {
        return json(
          { status: "error", error: { message: `${what} over HTTP is disabled (-reload-http)` } },
          403,
        )
      }
      const request = yield* HttpServerRequest.HttpServerRequest
      const auth = checkToken(request.headers.authorization, tokenFile)
      if (auth.ok) return undefined
      if (auth.status === 503) {
        // The path and the system's error are for the operator, not for an unauthenticated client.
        yield* logError(`${what} over HTTP refused`, {
          path: settings.reloadAuthTokenFile ?? null,
          error: auth.detail,
        })
        return json({ status: "error", error: { message: "reload token unavailable" } }, 503)
      }
      return HttpServerResponse.unsafeJson(
        { status: "error", error: { message: "missing or wrong bearer token" } },
        { status: 401, headers: { "www-authenticate": "Bearer" } },
      )
    })
  const attemptStatus = (status: string) => (status === "rejected" ? 422 : status === "error" ? 500 : 200)
  return HttpRouter.empty.pipe(
    HttpRouter.get(
      "/",
      Effect.gen(function* () {
        const html = yield* renderPage({ rollbackEnabled: settings.reloadHttp })
        return HttpServerResponse.text(html, {
          contentType: "text/html; charset=utf-8",
          headers: { "cache-control": "no-store" },
        })
      }),
    ),
    HttpRouter.get(
      "/console/:asset",
      Effect.gen(function* () {
        const params = yield* HttpRouter.params
        return assetResponse(params.asset ?? "")
      }),
    ),
    HttpRouter.get(
      "/api/v1/status/versions",
      Effect.flatMap(Console, (c) => Effect.map(c.versions, (v) => json(v))),
    ),
    HttpRouter.get(
      "/api/v1/status/versions/:n/files",
      Effect.gen(function* () {
        const params = yield* HttpRouter.params
        const request = yield* HttpServerRequest.HttpServerRequest
        const version = yield* versionParam(params.n, "version")
        const run = yield* optionalRun(searchOf(request.url), "run")
        const console = yield* Console
        return json(yield* console.files({ version, run }))
      }).pipe(answerConsoleErrors),
    ),
    HttpRouter.get(
      "/api/v1/status/diff",
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const search = searchOf(request.url)
        const from = yield* refOf(search, "from", "from_run")
        const to = yield* refOf(search, "to", "to_run")
        const console = yield* Console
        return json(yield* console.diff(from, to))
      }).pipe(answerConsoleErrors),
    ),
    HttpRouter.get(
      "/api/v1/status/rules",
      Effect.flatMap(Console, (c) => Effect.map(c.rules, (r) => json(r))),
    ),
    HttpRouter.get(
      "/api/v1/status/traffic",
      Effect.flatMap(Console, (c) => Effect.map(c.traffic, (samples) => json({ samples }))),
    ),
    HttpRouter.post(
      "/-/rollback",
      Effect.gen(function* () {
        const refused = yield* guard("rollback")
        if (refused !== undefined) return refused
        const request = yield* HttpServerRequest.HttpServerRequest
        const ref = yield* refOf(searchOf(request.url), "version", "run")
        const console = yield* Console
        const attempt = yield* console.rollback(ref)
        return json(attempt, attemptStatus(attempt.status))
      }).pipe(answerConsoleErrors),
    ),
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
        const refused = yield* guard("reload")
        if (refused !== undefined) return refused
        const reloader = yield* Reloader
        const attempt = yield* reloader.request("http")
        return json(attempt, attemptStatus(attempt.status))
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
