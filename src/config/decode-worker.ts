/**
 * The config decoder's worker thread (see `decoder.ts`): decodes each request with the same pure
 * `decodeConfig` the main thread would run, and replies with plain data.
 *
 * @module
 */
import { parentPort } from "node:worker_threads"
import { answer, type DecodeRequest } from "./decoder.js"

parentPort?.on("message", (req: DecodeRequest) => {
  parentPort?.postMessage(answer(req))
})
