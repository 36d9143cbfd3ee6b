/**
 * The floor of the SIGHUP measurement in `bench/reload.ts`: a Node.js process that does nothing but
 * count SIGHUPs and answer `GET /api/v1/status/config` with `{"version":N}` (N = 1 + SIGHUPs so
 * far), polled the same way as the governor. What it measures is the signal's delivery, the event
 * loop's turn and the poll's round trip on this machine, with no reload at all.
 *
 * `node bench/sighup-floor.mjs PORT`
 */
import * as http from "node:http"

let version = 1
process.on("SIGHUP", () => {
  version++
})
process.on("SIGTERM", () => process.exit(0))
http
  .createServer((_req, res) => {
    const body = JSON.stringify({ version })
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
    res.end(body)
  })
  .listen(Number(process.argv[2]), "127.0.0.1")
