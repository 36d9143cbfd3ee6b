import * as nodeTls from "node:tls"
import { Agent, type Dispatcher } from "undici"
import { readSecretFile, SecretFileError } from "./material.js"

export interface ExporterTlsFiles {
  readonly caFile?: string | undefined
  readonly certFile?: string | undefined
  readonly keyFile?: string | undefined
  readonly serverName?: string | undefined
  readonly insecureSkipVerify?: boolean | undefined
}

/**
 * The connections of an exporter to an https:// endpoint: an undici `Agent` whose TLS connect
 * options carry the CA, the client certificate (mTLS) and the server name. The files are read again
 * when they change (compared before each export request; they are small): a new Agent serves new
 * connections; material that does not load keeps the previous Agent and is reported once.
 */
export class ExporterTls {
  private stamp: string
  private agent: Agent
  private current: ExporterTlsMaterial

  private constructor(
    readonly spec: ExporterTlsFiles,
    built: Built,
  ) {
    this.stamp = built.stamp
    this.agent = built.agent
    this.current = built.material
  }

  static load(spec: ExporterTlsFiles): ExporterTls | SecretFileError {
    const built = build(spec)
    return built instanceof SecretFileError ? built : new ExporterTls(spec, built)
  }

  /** Reads the files again if they changed; material that does not load is reported and not used. */
  private refresh(onError: (e: SecretFileError) => void): void {
    const stamp = stampOf(this.spec)
    if (stamp === this.stamp) return
    const built = build(this.spec)
    this.stamp = stamp
    if (built instanceof SecretFileError) onError(built)
    else {
      const old = this.agent
      this.agent = built.agent
      this.current = built.material
      void old.close().catch(() => undefined)
    }
  }

  /** The dispatcher for the next request; with `onError` told when changed files do not load. */
  dispatcher(onError: (e: SecretFileError) => void): Dispatcher {
    this.refresh(onError)
    return this.agent
  }

  /**
   * The material for the next request of a client that builds its own connections (OTLP/gRPC):
   * a new object whenever the files changed and load, the same one otherwise.
   */
  material(onError: (e: SecretFileError) => void): ExporterTlsMaterial {
    this.refresh(onError)
    return this.current
  }

  close(): Promise<void> {
    return this.agent.close()
  }
}

const filesOf = (spec: ExporterTlsFiles) =>
  [spec.caFile, spec.certFile, spec.keyFile].filter((f): f is string => f !== undefined)

const stampOf = (spec: ExporterTlsFiles): string =>
  filesOf(spec)
    .map((f) => {
      const b = readSecretFile(f)
      return b instanceof SecretFileError ? "missing" : b.toString("base64")
    })
    .join("|")

/** What the files held when they last loaded. */
export interface ExporterTlsMaterial {
  readonly ca: Buffer | undefined
  readonly cert: Buffer | undefined
  readonly key: Buffer | undefined
  readonly serverName: string | undefined
  readonly insecureSkipVerify: boolean
}

interface Built {
  readonly stamp: string
  readonly agent: Agent
  readonly material: ExporterTlsMaterial
}

const build = (spec: ExporterTlsFiles): Built | SecretFileError => {
  if ((spec.certFile === undefined) !== (spec.keyFile === undefined)) {
    return new SecretFileError({
      file: spec.certFile ?? spec.keyFile ?? "tls",
      reason: "cert_file and key_file go together",
    })
  }
  const read = (f: string | undefined) => (f === undefined ? undefined : readSecretFile(f))
  const ca = read(spec.caFile)
  if (ca instanceof SecretFileError) return ca
  const cert = read(spec.certFile)
  if (cert instanceof SecretFileError) return cert
  const key = read(spec.keyFile)
  if (key instanceof SecretFileError) return key
  try {
    // Throws on bad PEM and on a key that does not match its certificate.
    nodeTls.createSecureContext({ ...(ca ? { ca } : {}), ...(cert && key ? { cert, key } : {}) })
  } catch (e) {
    return new SecretFileError({
      file: filesOf(spec).join(", "),
      reason: `does not load: ${e instanceof Error ? e.message : String(e)}`,
    })
  }
  const agent = new Agent({
    connect: {
      minVersion: "TLSv1.2",
      ...(ca === undefined ? {} : { ca }),
      ...(cert === undefined || key === undefined ? {} : { cert, key }),
      ...(spec.serverName === undefined ? {} : { servername: spec.serverName }),
      rejectUnauthorized: spec.insecureSkipVerify !== true,
    },
  })
  return {
    stamp: stampOf(spec),
    agent,
    material: {
      ca,
      cert,
      key,
      serverName: spec.serverName,
      insecureSkipVerify: spec.insecureSkipVerify === true,
    },
  }
}
