import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { ReceiverAuth, SecretFileError, ServerTls, secretEquals } from "../../src/security/material.js"
import { ROOT, tempDir } from "../support/governor.js"

const FIXTURES = path.join(ROOT, "test/fixtures/tls")
const fx = (name: string) => path.join(FIXTURES, name)
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`

describe("secretEquals", () => {
  it("is true only for the same secret, whatever the lengths", () => {
    expect(secretEquals("abc", Buffer.from("abc"))).toBe(true)
    expect(secretEquals("abd", Buffer.from("abc"))).toBe(false)
    expect(secretEquals("ab", Buffer.from("abc"))).toBe(false)
    expect(secretEquals("abc".repeat(1000), Buffer.from("abc"))).toBe(false)
    expect(secretEquals("", Buffer.from("abc"))).toBe(false)
  })
})

describe("ReceiverAuth", () => {
  const files = () => {
    const dir = tempDir()
    fs.writeFileSync(path.join(dir, "token"), "tok\n")
    fs.writeFileSync(path.join(dir, "password"), "pw\n")
    return { dir, token: path.join(dir, "token"), password: path.join(dir, "password") }
  }

  it("accepts the bearer token or the basic credentials, nothing else", () => {
    const f = files()
    const auth = ReceiverAuth.load({
      bearerTokenFile: f.token,
      basicUsername: "u",
      basicPasswordFile: f.password,
    })
    if (auth instanceof SecretFileError) throw auth
    expect(auth.check("Bearer tok")).toBe(true)
    expect(auth.check("bearer tok")).toBe(true)
    expect(auth.check(basic("u", "pw"))).toBe(true)
    for (const bad of [
      undefined,
      "",
      "Bearer",
      "Bearer to",
      "Bearer tok2",
      basic("u", "tok"),
      basic("x", "pw"),
      "Basic !!",
      "Digest tok",
    ])
      expect(auth.check(bad)).toBe(false)
  })

  it("takes a rotated token at once; an empty one is refused and the old one stays", () => {
    const f = files()
    const auth = ReceiverAuth.load({ bearerTokenFile: f.token })
    if (auth instanceof SecretFileError) throw auth
    fs.writeFileSync(f.token, "next")
    expect(auth.refresh()).toEqual([])
    expect(auth.check("Bearer next")).toBe(true)
    expect(auth.check("Bearer tok")).toBe(false)
    fs.writeFileSync(f.token, "  \n")
    expect(auth.refresh().map((e) => e.reason)).toEqual(["token file is empty"])
    expect(auth.check("Bearer next")).toBe(true)
  })

  it("refuses a basic user without a password file, and no scheme at all", () => {
    expect(ReceiverAuth.load({ basicUsername: "u" })).toBeInstanceOf(SecretFileError)
    expect(ReceiverAuth.load({})).toBeInstanceOf(SecretFileError)
  })
})

describe("ServerTls", () => {
  it("refuses bad PEM and a key that does not match, at load and on refresh, keeping the old material", () => {
    expect(ServerTls.load({ certFile: fx("bad.crt"), keyFile: fx("server.key") })).toBeInstanceOf(
      SecretFileError,
    )
    expect(ServerTls.load({ certFile: fx("server.crt"), keyFile: fx("server2.key") })).toBeInstanceOf(
      SecretFileError,
    )
    expect(
      ServerTls.load({ certFile: fx("server.crt"), keyFile: fx("server.key"), clientCaFile: fx("bad.crt") }),
    ).toBeInstanceOf(SecretFileError)
    const dir = tempDir()
    const cert = path.join(dir, "tls.crt")
    const key = path.join(dir, "tls.key")
    fs.copyFileSync(fx("server.crt"), cert)
    fs.copyFileSync(fx("server.key"), key)
    const tls = ServerTls.load({ certFile: cert, keyFile: key })
    if (tls instanceof SecretFileError) throw tls
    const seen: Array<string> = []
    tls.onChange((pem) => seen.push(pem.cert.toString().slice(0, 60)))
    expect(tls.refresh()).toEqual([])
    expect(seen).toHaveLength(0)
    fs.copyFileSync(fx("server2.crt"), cert)
    expect(tls.refresh()).toHaveLength(1) // server2.crt with server.key: mismatch
    expect(tls.current.cert.equals(fs.readFileSync(fx("server.crt")))).toBe(true)
    fs.copyFileSync(fx("server2.key"), key)
    expect(tls.refresh()).toEqual([])
    expect(seen).toHaveLength(1)
    expect(tls.current.cert.equals(fs.readFileSync(fx("server2.crt")))).toBe(true)
    expect(tls.secureOptions().minVersion).toBe("TLSv1.2")
  })
})
