/**
 * An OTLP decoding thread (see `decode-pool.ts`): inflates and decodes each body it is sent and
 * fingerprints its series.
 *
 * @module
 */
import { serveJobs } from "../../threads/pool.js"
import { runJob } from "./decode-pool.js"

serveJobs(runJob)
