/**
 * The config decoder's worker thread (see `decoder.ts`): decodes each request with the same pure
 * decoders the main thread would run, and replies with plain data.
 *
 * @module
 */
import { serveJobs } from "../threads/pool.js"
import { answer } from "./decoder.js"

serveJobs(answer)
