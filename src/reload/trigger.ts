/** What started a reload attempt; the `trigger` label of the reload metrics. */
/** `rollback`: `POST /-/rollback` made an earlier version's content active again. */
export type Trigger = "startup" | "sighup" | "watch" | "poll" | "touch" | "http" | "rollback"

/** One trigger as it enters the pipeline. */
export interface TriggerEvent {
  readonly trigger: Trigger
  /** Wall-clock ms when the trigger fired. */
  readonly at: number
  /**
   * The monotonic clock when the trigger fired, ns: a reload's duration is measured from the first
   * trigger of its batch, to the microsecond (a reload of a few rules takes less than a millisecond).
   */
  readonly startedNs: bigint
}
