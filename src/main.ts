#!/usr/bin/env node
import { handOverTermination, installEarlySignalHandlers } from "./early-signals.js"

// First, before any library loads: SIGHUP must never terminate the process, and the process shows
// as `metrics-governor` to ps, pidof and pgrep. Everything else is loaded after this.
installEarlySignalHandlers()
process.title = "metrics-governor"

// Each module by its own path: the package's index loads every module it has (cluster, RPC, SQL).
const NodeContext = await import("@effect/platform-node/NodeContext")
const NodeRuntime = await import("@effect/platform-node/NodeRuntime")
const { Cause, Effect, Either, Exit } = await import("effect")
const { parseCommandLine, UsageError } = await import("./cli/flags.js")
const { run } = await import("./app/program.js")
const { validate } = await import("./cli/validate.js")
const { replay } = await import("./cli/replay.js")
const { diff } = await import("./cli/diff.js")
const { StartupRejected } = await import("./reload/reloader.js")
const Log = await import("./telemetry/log.js")

const VERSION = "0.1.0"

/** Maps how the program ended to the exit code; prints what the operator must see. */
const exitCodeOf = (exit: import("effect").Exit.Exit<number, unknown>): number => {
  if (Exit.isSuccess(exit)) return exit.value
  if (Cause.isInterruptedOnly(exit.cause)) return 0
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "Some") {
    const e = failure.value
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n`)
      return 2
    }
    if (e instanceof StartupRejected) {
      process.stderr.write(`${e.lines.join("\n")}\n`)
      return 1
    }
    process.stderr.write(`metrics-governor: ${Log.describeError(e)}\n`)
    return 1
  }
  process.stderr.write(`metrics-governor: ${Cause.pretty(exit.cause)}\n`)
  return 1
}

const parsed = parseCommandLine(process.argv.slice(2))
const program = Effect.gen(function* () {
  const command = yield* Either.isLeft(parsed) ? Effect.fail(parsed.left) : Effect.succeed(parsed.right)
  switch (command._tag) {
    case "Help":
      process.stdout.write(`${command.text}\n`)
      return 0
    case "Version":
      process.stdout.write(`metrics-governor ${VERSION}\n`)
      return 0
    case "Validate":
      return yield* validate(command.flags)
    case "Replay":
      return yield* replay(command)
    case "Diff":
      return yield* diff(command)
    case "Run":
      // On stdout, through the JSON logger like every other line of the running governor; the
      // teardown below also prints it on stderr.
      return yield* Log.logFatal(run(command.flags))
  }
})

const level = Either.isRight(parsed) && "flags" in parsed.right ? parsed.right.flags.logLevel : "info"

handOverTermination()
program.pipe(
  Effect.provide(Log.layer(level)),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => onExit(exitCodeOf(exit as import("effect").Exit.Exit<number, unknown>)),
  }),
)
