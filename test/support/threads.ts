import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"

/**
 * Decoders with worker threads for one test file: `start` makes one (closed after the file's
 * tests), `dir` is a temporary directory for worker scripts of the file's own (removed after).
 */
export const threadsForFile = <D extends { readonly close: () => Promise<void> }>(
  prefix: string,
  make: (threads: number, url: URL) => D,
  defaultUrl: URL,
): { readonly dir: string; readonly start: (threads: number, url?: URL) => D } => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  const started: Array<D> = []
  afterAll(async () => {
    await Promise.all(started.map((d) => d.close()))
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return {
    dir,
    start: (threads, url = defaultUrl) => {
      const d = make(threads, url)
      started.push(d)
      return d
    },
  }
}
