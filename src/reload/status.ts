import type { ReloaderService } from "./reloader.js"

export const statusOf = (v: {
  version: number
  limitsSha256: string
  configSha256: string
  rulesCount: number
  dryRun: boolean
  dryRunSource: string
  loadedAt: number
  trigger: string
}) => ({
  version: v.version,
  limits_sha256: v.limitsSha256,
  config_sha256: v.configSha256,
  rules_count: v.rulesCount,
  dry_run: v.dryRun,
  dry_run_source: v.dryRunSource,
  loaded_at: new Date(v.loadedAt).toISOString(),
  trigger: v.trigger,
})

/**
 * `GET /api/v1/status/config`: the active version, the keys that wait for a restart, and whether
 * the files on disk (as the last reload read them) differ from the active content: after a
 * rollback, or a rejected reload, until the files next change.
 */
export const statusConfig = (reloader: ReloaderService) => {
  const active = reloader.current()
  const disk = reloader.lastRead()
  return {
    ...statusOf(active),
    restart_required: reloader.now().restartRequired,
    limits_path: reloader.settings.paths.limits ?? null,
    config_path: reloader.settings.paths.config ?? null,
    files_differ: disk.limits !== active.limitsSha256 || disk.config !== active.configSha256,
    disk_limits_sha256: disk.limits,
    disk_config_sha256: disk.config,
  }
}
