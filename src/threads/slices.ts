/**
 * Long computations on the main thread, in slices: a computation is written as a generator that
 * yields between small steps (a rule, a chunk), and is either run to its end at once (`runToEnd`,
 * pure) or in slices of a few milliseconds with the event loop let run in between (`runSliced`),
 * so that requests are answered while a reload of tens of thousands of rules goes on. Both give
 * the same result.
 *
 * @module
 */
import { Effect } from "effect"

/** A computation in steps: each `next()` does a bounded piece of work; the return value is the result. */
export type Steps<A> = Generator<void, A, void>

/** Runs every step at once. Pure when the steps are. */
export const runToEnd = <A>(steps: Steps<A>): A => {
  for (;;) {
    const r = steps.next()
    if (r.done === true) return r.value
  }
}

/** How long a slice of main-thread work may hold the event loop before it lets it run. */
export const SLICE_BUDGET_MS = 4

/**
 * Lets the event loop run (timers, I/O: the requests that arrived meanwhile) before the calling
 * fiber goes on. `setImmediate` runs after the loop has polled for I/O, unlike a microtask or
 * `Effect.yieldNow`.
 */
export const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/**
 * Items (rules, chunks) a computation handles per step: a step (a `yield`, and the object its
 * `next()` returns) per item cost more than the item itself where most items are reused.
 */
export const ITEMS_PER_STEP = 16

/** Whether item `i` ends a step of `ITEMS_PER_STEP` items (so a step follows it). */
export const endsStep = (i: number): boolean => (i & (ITEMS_PER_STEP - 1)) === ITEMS_PER_STEP - 1

/**
 * Runs `steps` to its result in slices of about `budgetMs` of work, letting the event loop run
 * between slices. The clock is read after every step: a step is meant to take microseconds, tens of
 * them at most (`ITEMS_PER_STEP` rules compiled afresh).
 */
export const runSliced = <A>(steps: Steps<A>, budgetMs: number = SLICE_BUDGET_MS): Effect.Effect<A> =>
  Effect.gen(function* () {
    let sliceStart = performance.now()
    for (;;) {
      const r = steps.next()
      if (r.done === true) return r.value
      if (performance.now() - sliceStart >= budgetMs) {
        yield* yieldToEventLoop
        sliceStart = performance.now()
      }
    }
  })
