import { ParseResult, Schema } from "effect"

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
}
const ORDER = ["w", "d", "h", "m", "s", "ms"] as const
const DURATION = /^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/

/**
 * Parses a Prometheus-style duration (`250ms`, `30s`, `1m`, `1h30m`, `0s`, `0`) into milliseconds.
 * Units must appear largest first, each at most once, as Prometheus requires.
 */
export const parseDuration = (text: string): number | undefined => {
  if (text === "0") return 0
  if (text === "") return undefined
  const m = DURATION.exec(text)
  if (m === null) return undefined
  let total = 0
  for (let i = 0; i < ORDER.length; i++) {
    const part = m[i + 1]
    if (part !== undefined) total += Number(part) * (UNIT_MS[ORDER[i] as string] as number)
  }
  return Number.isSafeInteger(total) ? total : undefined
}

/** Formats milliseconds the way Prometheus prints durations (`1h30m`, `250ms`, `0s`). */
export const formatDuration = (ms: number): string => {
  if (ms === 0) return "0s"
  let rest = ms
  let out = ""
  for (const unit of ORDER) {
    const size = UNIT_MS[unit] as number
    const n = Math.floor(rest / size)
    if (n > 0) {
      out += `${n}${unit}`
      rest -= n * size
    }
  }
  return out
}

/** A duration written as a string in YAML, decoded to whole milliseconds. */
export const DurationMs = Schema.transformOrFail(
  Schema.String.annotations({
    message: () => "must be a duration such as 250ms, 30s, 1m or 1h30m (a string)",
  }),
  Schema.Number,
  {
    strict: true,
    decode: (text, _, ast) => {
      const ms = parseDuration(text)
      return ms === undefined
        ? ParseResult.fail(
            new ParseResult.Type(
              ast,
              text,
              `invalid duration "${text}" (expected e.g. 250ms, 30s, 1m, 1h30m)`,
            ),
          )
        : ParseResult.succeed(ms)
    },
    encode: (ms) => ParseResult.succeed(formatDuration(ms)),
  },
).annotations({ identifier: "Duration" })
