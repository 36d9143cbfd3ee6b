/**
 * `POST /-/reload` authentication tells an unauthenticated client nothing: an unreadable or empty
 * token file is a 503 without its path or the system's error text (those go to the log), and the
 * token comparison is over fixed-length digests, so neither the token nor its length shows in timing.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as fc from "fast-check"
import { afterEach, describe, expect, it } from "vitest"
import { tokensMatch } from "../../src/server/control.js"
import { type Governor, startGovernor, tempDir, waitFor } from "../support/governor.js"

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const dir = (): string => {
  const d = tempDir("mg-reload-auth-")
  cleanup.push(() => fs.rmSync(d, { recursive: true, force: true }))
  return d
}

const start = async (tokenFile: string): Promise<Governor> => {
  const g = await startGovernor({ args: ["-reload-http", "-reload-auth-token-file", tokenFile] })
  cleanup.push(() => g.stop())
  return g
}

const reload = async (g: Governor, token?: string) => {
  const res = await fetch(`${g.url}/-/reload`, {
    method: "POST",
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  })
  return { status: res.status, text: await res.text() }
}

describe("POST /-/reload: what an unauthenticated client learns", () => {
  it("an unreadable token file is 503 'reload token unavailable', without its path or errno; the log has both", async () => {
    const secret = path.join(dir(), "secret-dir-name", "reload-token")
    const g = await start(secret)
    const r = await reload(g, "anything")
    expect(r.status).toBe(503)
    expect(JSON.parse(r.text)).toEqual({ status: "error", error: { message: "reload token unavailable" } })
    expect(r.text).not.toContain("secret-dir-name")
    expect(r.text).not.toContain("ENOENT")
    const logged = await waitFor("the refusal in the log", () =>
      g.logs.find((l) => l.message === "reload over HTTP refused"),
    )
    expect(logged.level).toBe("error")
    expect(logged.fields.path).toBe(secret)
    expect(String(logged.fields.error)).toContain("ENOENT")
  })

  it("an empty token file is the same 503, and a token written later is in force at once", async () => {
    const file = path.join(dir(), "token")
    fs.writeFileSync(file, "\n")
    const g = await start(file)
    const r = await reload(g, "")
    expect(r.status).toBe(503)
    expect(JSON.parse(r.text).error.message).toBe("reload token unavailable")
    expect(r.text).not.toContain(file)
    fs.writeFileSync(file, "now-set\n")
    expect((await reload(g, "now-set")).status).toBe(200)
    expect((await reload(g, "now-sex")).status).toBe(401)
    expect((await reload(g)).status).toBe(401)
  })
  it("a FIFO in place of the token file is the same 503 at once; the control server keeps answering", async () => {
    const file = path.join(dir(), "token")
    execFileSync("mkfifo", [file])
    const g = await start(file)
    // Opening a FIFO for reading blocks until a writer comes: the main thread must never try.
    const r = await reload(g, "anything")
    expect(r.status).toBe(503)
    expect(JSON.parse(r.text).error.message).toBe("reload token unavailable")
    const logged = await waitFor("the refusal in the log", () =>
      g.logs.find((l) => l.message === "reload over HTTP refused"),
    )
    expect(String(logged.fields.error)).toContain("not a regular file")
    expect((await fetch(`${g.url}/live`)).status).toBe(200)
  }, 15_000)
})

describe("tokensMatch", () => {
  const token = fc.string({ minLength: 1, maxLength: 64 })

  it("accepts the same token", () => {
    fc.assert(fc.property(token, (t) => tokensMatch(t, t)))
  })

  it("refuses any different token, of the same length or not", () => {
    fc.assert(fc.property(token, token, (a, b) => a === b || !tokensMatch(a, b)))
    fc.assert(
      fc.property(token, fc.string({ minLength: 1, maxLength: 8 }), (a, more) => !tokensMatch(a + more, a)),
    )
    fc.assert(fc.property(token, (a) => !tokensMatch(a.slice(0, -1), a)))
  })

  it("compares digests of both sides: the same work whatever the lengths", () => {
    fc.assert(
      fc.property(token, token, (given, expected) => {
        const hashed: Array<string> = []
        const digest = (s: string) => {
          hashed.push(s)
          return createHash("sha256").update(s).digest()
        }
        const result = tokensMatch(given, expected, digest)
        // Both sides hashed, every time, before any comparison: the inputs' lengths decide nothing.
        expect(hashed).toEqual([given, expected])
        return result === (given === expected)
      }),
    )
  })
})
