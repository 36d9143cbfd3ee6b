/**
 * A body as bytes to send: one buffer, or parts sent one after the other (never joined unless
 * a transport needs one buffer: gzip, gRPC).
 *
 * @module
 */

export type WireBody = Uint8Array | ReadonlyArray<Uint8Array>

/** The length of a body, in bytes. */
export const bodyLength = (body: WireBody): number => {
  if (body instanceof Uint8Array) return body.length
  let n = 0
  for (const part of body) n += part.length
  return n
}

/** The parts in one buffer (the part itself when there is only one). */
export const joinBytes = (parts: WireBody): Uint8Array => {
  if (parts instanceof Uint8Array) return parts
  if (parts.length === 1) return parts[0] as Uint8Array
  const out = new Uint8Array(bodyLength(parts))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}
