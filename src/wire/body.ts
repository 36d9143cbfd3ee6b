import type { IncomingMessage } from "node:http"

export type BodyResult =
  | { readonly _tag: "Body"; readonly bytes: Uint8Array }
  | { readonly _tag: "TooLarge"; readonly limit: number }
  | { readonly _tag: "Aborted"; readonly reason: string }

/**
 * Reads a request body of at most `limit` bytes (as sent, before decompression). A declared
 * Content-Length over the limit is refused before reading; a body that grows past it is cut off.
 */
export const readBody = (req: IncomingMessage, limit: number): Promise<BodyResult> =>
  new Promise((resolve) => {
    const declared = Number(req.headers["content-length"] ?? Number.NaN)
    if (Number.isFinite(declared) && declared > limit) {
      req.resume()
      resolve({ _tag: "TooLarge", limit })
      return
    }
    const chunks: Array<Buffer> = []
    let size = 0
    let done = false
    req.on("data", (chunk: Buffer) => {
      if (done) return
      size += chunk.length
      if (size > limit) {
        done = true
        chunks.length = 0
        req.resume()
        resolve({ _tag: "TooLarge", limit })
        return
      }
      chunks.push(chunk)
    })
    req.on("end", () => {
      if (done) return
      done = true
      resolve({
        _tag: "Body",
        bytes: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size),
      })
    })
    req.on("error", (e) => {
      if (done) return
      done = true
      resolve({ _tag: "Aborted", reason: e.message })
    })
    req.on("aborted", () => {
      if (done) return
      done = true
      resolve({ _tag: "Aborted", reason: "client aborted" })
    })
  })
