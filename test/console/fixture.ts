import * as fs from "node:fs"

/** Debian's chromium, which the browser tests drive (CI installs it; elsewhere they say they skip). */
export const CHROMIUM = "/usr/bin/chromium"
export const haveChromium = fs.existsSync(CHROMIUM)
export const inCi = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false"

/**
 * The limits the browser tests start from: an adaptive rule and a small drop rule. Windows are
 * aligned to the wall clock: with an hour, a test that shows the counts of its traffic seconds later
 * does not see them go to a new window (with a minute, one run in six did).
 */
export const LIMITS_V1 = `window: 1h
rules:
  - name: payments
    match: {metric_name: "pay_.*"}
    max_cardinality: 40
    action: adaptive
    group_by: [service]
  - name: batch
    match: {metric_name: "batch_.*"}
    max_cardinality: 5
    action: drop
`
