/**
 * A remote-write decoding thread (see `decode.ts`): decompresses and scans each body it is sent.
 *
 * @module
 */
import { parentPort } from "node:worker_threads"
import { type DecodeJob, runJob } from "./decode.js"

parentPort?.on("message", (job: DecodeJob) => {
  parentPort?.postMessage(runJob(job))
})
