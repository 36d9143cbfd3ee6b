/**
 * One exporter run in the test's own process, on a memory buffer of text payloads (one line each),
 * until the returned `stop` is called.
 */
import { Effect, Exit, Logger, Scope } from "effect"
import { Registry } from "prom-client"
import { ExportBuffer } from "../../src/export/buffer.js"
import { type ExporterSettings, runExporter } from "../../src/export/exporter.js"
import type { WireEncoder } from "../../src/protocols/protocol.js"
import { type Instruments, makeInstruments } from "../../src/telemetry/metrics.js"

/** Payloads joined by newlines, as text. */
export const textEncoder: WireEncoder<string> = {
  encode: (payloads) => ({
    body: new TextEncoder().encode(payloads.join("\n")),
    headers: { "content-type": "text/plain" },
  }),
}

export const startTextExporter = async (
  endpoint: string,
  settings: Pick<ExporterSettings<string>, "timeoutMs" | "minBackoffMs" | "maxBackoffMs">,
): Promise<{ buffer: ExportBuffer<string>; telemetry: Instruments; stop: () => Promise<void> }> => {
  const buffer = new ExportBuffer<string>(1_000, 1_000_000)
  const telemetry = makeInstruments(new Registry())
  const scope = Effect.runSync(Scope.make())
  await Effect.runPromise(
    runExporter(
      {
        protocol: "prw",
        endpoint,
        headers: {},
        bearerTokenFile: undefined,
        batchSize: 100,
        flushIntervalMs: 10,
        shutdownTimeoutMs: 200,
        encoder: textEncoder,
        ...settings,
      },
      buffer,
      telemetry,
    ).pipe(Scope.extend(scope), Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none))),
  )
  return { buffer, telemetry, stop: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}
