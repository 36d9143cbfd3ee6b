import type { ReceiverAuth, ServerTls } from "../security/material.js"

/**
 * What the receivers ask of their clients, as the last applied config says: TLS (mutual with a
 * client CA) and credentials. `auth` is read at every request, `tls` at every new connection, so a
 * reload may set, change or remove either. New material for the same `ServerTls` (rotated files,
 * other paths) is that object's own business (`onChange`); turning TLS on or off, or asking for a
 * client certificate or no longer, replaces the object (`replaceTls`), and the receivers, told,
 * retire the connections of the mode that ended: idle ones close at once, busy ones after their
 * current request (HTTP) or their calls in flight (gRPC).
 */
export class ReceiverSecurity {
  private tlsNow: ServerTls | undefined
  private readonly listeners = new Set<() => void>()

  constructor(
    tls?: ServerTls,
    public auth?: ReceiverAuth,
  ) {
    this.tlsNow = tls
  }

  /** The TLS new connections get; `undefined`: plaintext. */
  get tls(): ServerTls | undefined {
    return this.tlsNow
  }

  /** TLS turned on or off, or mutual TLS turned on or off: in force for new connections. */
  replaceTls(tls: ServerTls | undefined): void {
    if (tls === this.tlsNow) return
    this.tlsNow = tls
    for (const l of [...this.listeners]) l()
  }

  /** `listener` is told after each `replaceTls`; the function returned stops that. */
  onTlsReplaced(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => void this.listeners.delete(listener)
  }
}
