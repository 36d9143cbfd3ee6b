import * as fs from "node:fs"

/**
 * A bearer token kept in a file (a mounted Secret), re-read whenever the file changes, so a rotated
 * secret applies without a restart. A stat per use; the file is read only when it changed.
 */
export class TokenFile {
  private stamp = ""
  private token: string | undefined

  constructor(readonly file: string) {}

  /** The current token, or an Error describing why it cannot be read. */
  read(): string | Error {
    let s: fs.Stats
    try {
      s = fs.statSync(this.file)
    } catch (e) {
      return new Error(`bearer token file ${this.file}: ${e instanceof Error ? e.message : String(e)}`)
    }
    // Opening a FIFO (or a device) would block the main thread: only regular files are read.
    if (!s.isFile()) return new Error(`bearer token file ${this.file} is not a regular file`)
    const stamp = `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`
    if (stamp !== this.stamp || this.token === undefined) {
      try {
        this.token = fs.readFileSync(this.file, "utf8").trim()
        this.stamp = stamp
      } catch (e) {
        return new Error(`bearer token file ${this.file}: ${e instanceof Error ? e.message : String(e)}`)
      }
    }
    return this.token === "" ? new Error(`bearer token file ${this.file} is empty`) : this.token
  }
}
