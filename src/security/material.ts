/**
 * Secret material kept in files (a mounted Kubernetes Secret): the receivers' certificate, key and
 * client CA, and their credentials (token, password). Each is read at start (a file that does not
 * load stops the start) and re-read when it changes (`watchSecretFiles`): new material that loads
 * replaces the old at once; new material that does not load (bad PEM, a key not matching its
 * certificate, an empty token) is refused, the previous material stays in force, and the refusal is
 * reported once per content until a later good file recovers.
 *
 * @module
 */

import { createHash, timingSafeEqual, X509Certificate } from "node:crypto"
import * as fs from "node:fs"
import * as tls from "node:tls"
import { Data } from "effect"

/** A secret file that could not be read or does not hold what it should. */
export class SecretFileError extends Data.TaggedError("SecretFileError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.file}: ${this.reason}`
  }
}

const MAX_SECRET_BYTES = 1024 * 1024

/** Reads a regular file of at most 1 MiB (never a FIFO or a device, which could block). */
export const readSecretFile = (file: string): Buffer | SecretFileError => {
  try {
    const s = fs.statSync(file)
    if (!s.isFile()) return new SecretFileError({ file, reason: "not a regular file" })
    if (s.size > MAX_SECRET_BYTES) return new SecretFileError({ file, reason: "larger than 1 MiB" })
    return fs.readFileSync(file)
  } catch (e) {
    return new SecretFileError({ file, reason: e instanceof Error ? e.message : String(e) })
  }
}

/** Something re-read from files on change; `refresh` answers which files were refused, if any. */
export interface Refreshable {
  readonly files: ReadonlyArray<string>
  /** Re-reads the files; new material that loads is taken, else the old is kept and the error given. */
  readonly refresh: () => ReadonlyArray<SecretFileError>
}

const sameBytes = (a: Buffer | undefined, b: Buffer | undefined): boolean =>
  a === undefined ? b === undefined : b !== undefined && a.equals(b)

export interface ServerTlsFiles {
  readonly certFile: string
  readonly keyFile: string
  readonly clientCaFile?: string | undefined
}

export interface ServerTlsPem {
  readonly cert: Buffer
  readonly key: Buffer
  readonly ca: Buffer | undefined
}

/** Loads and checks a certificate, its key and the optional client CA: `tls.createSecureContext` must accept them. */
const loadServerTls = (files: ServerTlsFiles): ServerTlsPem | SecretFileError => {
  const cert = readSecretFile(files.certFile)
  if (cert instanceof SecretFileError) return cert
  const key = readSecretFile(files.keyFile)
  if (key instanceof SecretFileError) return key
  const ca = files.clientCaFile === undefined ? undefined : readSecretFile(files.clientCaFile)
  if (ca instanceof SecretFileError) return ca
  try {
    tls.createSecureContext({ cert, key })
  } catch (e) {
    return new SecretFileError({
      file: `${files.certFile}, ${files.keyFile}`,
      reason: `certificate and key do not load: ${e instanceof Error ? e.message : String(e)}`,
    })
  }
  if (ca !== undefined && files.clientCaFile !== undefined) {
    try {
      if (!ca.toString("latin1").includes("-----BEGIN CERTIFICATE-----"))
        throw new Error("no PEM certificate")
      tls.createSecureContext({ ca })
      // Parses the bundle's first certificate strictly (createSecureContext lets some bad bundles pass).
      new X509Certificate(ca)
    } catch (e) {
      return new SecretFileError({
        file: files.clientCaFile,
        reason: `client CA does not load: ${e instanceof Error ? e.message : String(e)}`,
      })
    }
  }
  return { cert, key, ca }
}

/**
 * The receivers' TLS material: the current certificate, key and client CA, with listeners told when
 * new material has loaded (HTTPS servers call `setSecureContext`, the gRPC server's credentials
 * update their secure context).
 */
export class ServerTls implements Refreshable {
  private listeners: Array<(pem: ServerTlsPem) => void> = []

  private constructor(
    private specNow: ServerTlsFiles,
    private pem: ServerTlsPem,
  ) {}

  static load(spec: ServerTlsFiles): ServerTls | SecretFileError {
    const pem = loadServerTls(spec)
    return pem instanceof SecretFileError ? pem : new ServerTls(spec, pem)
  }

  get spec(): ServerTlsFiles {
    return this.specNow
  }

  /**
   * Other files (a reload changed their paths): loaded and in force for new connections when they
   * load, else the error and nothing changes. Whether a client CA is asked for stays as at start.
   */
  retarget(spec: ServerTlsFiles): SecretFileError | undefined {
    const pem = loadServerTls(spec)
    if (pem instanceof SecretFileError) return pem
    this.specNow = spec
    this.pem = pem
    for (const l of this.listeners) l(pem)
    return undefined
  }

  get files(): ReadonlyArray<string> {
    return [
      this.spec.certFile,
      this.spec.keyFile,
      ...(this.spec.clientCaFile ? [this.spec.clientCaFile] : []),
    ]
  }

  get current(): ServerTlsPem {
    return this.pem
  }

  get mutual(): boolean {
    return this.spec.clientCaFile !== undefined
  }

  /** Options for `https.createServer` / `server.setSecureContext`: TLS 1.2 or later. */
  secureOptions(): tls.SecureContextOptions & tls.TlsOptions {
    return {
      cert: this.pem.cert,
      key: this.pem.key,
      minVersion: "TLSv1.2",
      ...(this.pem.ca === undefined ? {} : { ca: this.pem.ca, requestCert: true, rejectUnauthorized: true }),
    }
  }

  onChange(listener: (pem: ServerTlsPem) => void): () => void {
    this.listeners.push(listener)
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener)
    }
  }

  refresh(): ReadonlyArray<SecretFileError> {
    const unchanged = (file: string | undefined, now: Buffer | undefined) => {
      if (file === undefined) return true
      const bytes = readSecretFile(file)
      return !(bytes instanceof SecretFileError) && sameBytes(bytes, now)
    }
    if (
      unchanged(this.spec.certFile, this.pem.cert) &&
      unchanged(this.spec.keyFile, this.pem.key) &&
      unchanged(this.spec.clientCaFile, this.pem.ca)
    )
      return []
    const next = loadServerTls(this.spec)
    if (next instanceof SecretFileError) return [next]
    if (
      sameBytes(next.cert, this.pem.cert) &&
      sameBytes(next.key, this.pem.key) &&
      sameBytes(next.ca, this.pem.ca)
    )
      return []
    this.pem = next
    for (const l of this.listeners) l(next)
    return []
  }
}

const digest = (value: string | Buffer): Buffer => createHash("sha256").update(value).digest()

/** Constant-time equality of two secrets: their SHA-256 digests (equal length) compared with `timingSafeEqual`. */
export const secretEquals = (given: string, expected: Buffer): boolean =>
  timingSafeEqual(digest(given), digest(expected))

export interface AuthFiles {
  readonly bearerTokenFile?: string | undefined
  readonly basicUsername?: string | undefined
  readonly basicPasswordFile?: string | undefined
}

const loadToken = (file: string, what: string): Buffer | SecretFileError => {
  const bytes = readSecretFile(file)
  if (bytes instanceof SecretFileError) return bytes
  const trimmed = Buffer.from(bytes.toString("utf8").trim(), "utf8")
  return trimmed.length === 0 ? new SecretFileError({ file, reason: `${what} file is empty` }) : trimmed
}

/** The credentials a request must carry: a bearer token, HTTP basic authentication, or either. */
export class ReceiverAuth implements Refreshable {
  private constructor(
    readonly spec: AuthFiles,
    private token: Buffer | undefined,
    private password: Buffer | undefined,
  ) {}

  static load(spec: AuthFiles): ReceiverAuth | SecretFileError {
    const basic = spec.basicUsername !== undefined || spec.basicPasswordFile !== undefined
    if (basic && (spec.basicUsername === undefined || spec.basicPasswordFile === undefined)) {
      return new SecretFileError({
        file: spec.basicPasswordFile ?? "receivers.auth",
        reason: "basic authentication needs both basic_username and basic_password_file",
      })
    }
    if (spec.bearerTokenFile === undefined && !basic) {
      return new SecretFileError({
        file: "receivers.auth",
        reason: "needs bearer_token_file, or basic_username and basic_password_file",
      })
    }
    const token = spec.bearerTokenFile === undefined ? undefined : loadToken(spec.bearerTokenFile, "token")
    if (token instanceof SecretFileError) return token
    const password =
      spec.basicPasswordFile === undefined ? undefined : loadToken(spec.basicPasswordFile, "password")
    if (password instanceof SecretFileError) return password
    return new ReceiverAuth(spec, token, password)
  }

  get files(): ReadonlyArray<string> {
    return [spec(this.spec.bearerTokenFile), spec(this.spec.basicPasswordFile)].flat()
  }

  /** `WWW-Authenticate` challenges for a 401: one per accepted scheme. */
  get challenges(): ReadonlyArray<string> {
    return [
      ...(this.token === undefined ? [] : ['Bearer realm="metrics-governor"']),
      ...(this.password === undefined ? [] : ['Basic realm="metrics-governor", charset="UTF-8"']),
    ]
  }

  /** Whether an `Authorization` header value carries valid credentials; constant-time on the secret. */
  check(authorization: string | undefined): boolean {
    if (authorization === undefined) return false
    const space = authorization.indexOf(" ")
    if (space < 0) return false
    const scheme = authorization.slice(0, space).toLowerCase()
    const value = authorization.slice(space + 1).trim()
    if (scheme === "bearer" && this.token !== undefined) return secretEquals(value, this.token)
    if (scheme === "basic" && this.password !== undefined && this.spec.basicUsername !== undefined) {
      const decoded = Buffer.from(value, "base64").toString("utf8")
      const colon = decoded.indexOf(":")
      if (colon < 0) return false
      // Both compared, always: the time taken does not tell which one was wrong.
      const userOk = secretEquals(decoded.slice(0, colon), Buffer.from(this.spec.basicUsername, "utf8"))
      const passOk = secretEquals(decoded.slice(colon + 1), this.password)
      return userOk && passOk
    }
    return false
  }

  refresh(): ReadonlyArray<SecretFileError> {
    const errors: Array<SecretFileError> = []
    if (this.spec.bearerTokenFile !== undefined) {
      const t = loadToken(this.spec.bearerTokenFile, "token")
      if (t instanceof SecretFileError) errors.push(t)
      else this.token = t
    }
    if (this.spec.basicPasswordFile !== undefined) {
      const p = loadToken(this.spec.basicPasswordFile, "password")
      if (p instanceof SecretFileError) errors.push(p)
      else this.password = p
    }
    return errors
  }
}

const spec = (f: string | undefined): Array<string> => (f === undefined ? [] : [f])
