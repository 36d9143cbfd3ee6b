/** What started a reload attempt; the `trigger` label of the reload metrics. */
/** `rollback`: `POST /-/rollback` made an earlier version's content active again. */
export type Trigger = "startup" | "sighup" | "watch" | "poll" | "touch" | "http" | "rollback"

/** One trigger as it enters the pipeline. */
export interface TriggerEvent {
  readonly trigger: Trigger
  /** Wall-clock ms when the trigger fired; reload duration is measured from the first of a batch. */
  readonly at: number
}
