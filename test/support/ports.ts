import * as fs from "node:fs"
import * as net from "node:net"

/**
 * The ports this process hands out: a slice of the range below the kernel's ephemeral range, one
 * slice per vitest worker. A port found free here and closed again cannot be taken back by the
 * kernel for a listen(0) or an outgoing connection (those use the ephemeral range), nor by another
 * worker (another slice), nor by a second call in this worker (a counter walks the slice).
 */
const portSlice = (() => {
  let ephemeralLow = 32768
  try {
    const [low] = fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)
    if (low !== undefined && Number(low) > 12_000) ephemeralLow = Number(low)
  } catch {
    // not Linux: keep the IANA default's lower bound
  }
  const first = 10_000
  const size = 400
  const slices = Math.max(1, Math.floor((ephemeralLow - first) / size))
  const worker = Number(process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID ?? 0)
  const start = first + (worker % slices) * size
  return { start, size, next: 0 }
})()

const canListen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = net.createServer()
    srv.once("error", () => resolve(false))
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)))
  })

/** A free TCP port on loopback, never the same one twice in this process (see `portSlice`). */
export const freePort = async (): Promise<number> => {
  for (let tries = 0; tries < portSlice.size; tries++) {
    const port = portSlice.start + (portSlice.next++ % portSlice.size)
    if (await canListen(port)) return port
  }
  throw new Error(`no free port in ${portSlice.start}..${portSlice.start + portSlice.size - 1}`)
}
