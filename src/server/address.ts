import { Data, Either } from "effect"

/** A listen address as Go writes it: `:9090` (all interfaces), `127.0.0.1:9090`, `[::1]:9090`. */
export interface ListenAddress {
  /** Undefined: all interfaces. */
  readonly host: string | undefined
  readonly port: number
}

export class AddressError extends Data.TaggedError("AddressError")<{
  readonly flag: string
  readonly value: string
}> {
  override get message(): string {
    return `invalid listen address "${this.value}" for -${this.flag} (expected host:port, :port or [ipv6]:port)`
  }
}

export const parseListenAddress = (
  flag: string,
  value: string,
): Either.Either<ListenAddress, AddressError> => {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value)
  const port = m === null ? Number.NaN : Number(m[3])
  if (m === null || port > 65535) return Either.left(new AddressError({ flag, value }))
  const host = m[1] ?? m[2]
  return Either.right({ host: host === "" || host === undefined ? undefined : host, port })
}

/** `host:port` for logs and URLs. */
export const formatAddress = (host: string | undefined, port: number): string =>
  host === undefined ? `:${port}` : host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`
