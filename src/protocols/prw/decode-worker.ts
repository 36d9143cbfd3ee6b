/**
 * A remote-write decoding thread (see `decode.ts`): decompresses and scans each body it is sent.
 *
 * @module
 */
import { serveJobs } from "../../threads/pool.js"
import { replyTransfer, runJob } from "./decode-pool.js"

serveJobs(runJob, replyTransfer)
