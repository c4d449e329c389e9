import type { TaskLimits as ManifestLimits, TaskManifest } from '../protocol/index.js'
import { limitReached, manifestInvalid } from './errors.js'
import type { ResolvedCaps, TaskLimits } from './options.js'

/**
 * The board's limits, checked at install (a replacement does not add a task). A manifest asking
 * more heap than the board allows is refused rather than trimmed: a task cut below what its author
 * measured would fail later, at run time, on the board.
 */
export function checkLimits(manifest: TaskManifest, installedOthers: number | null, limits: TaskLimits): void {
  if (manifest.limits.memoryMb > limits.maxMemoryMb) {
    throw manifestInvalid(manifest.name, `limits.memoryMb is ${manifest.limits.memoryMb} MB; this coordinator allows at most ${limits.maxMemoryMb} MB per task (tasks.maxMemoryMb)`)
  }
  if (installedOthers !== null && installedOthers >= limits.maxTasks) throw limitReached(manifest.name, limits.maxTasks)
}

/**
 * What the coordinator grants a manifest's requested limits: each up to its cap (`tasks.caps`).
 * Trimming concurrency, queue and time is safe where trimming heap is not: the task still runs
 * correctly, only fewer calls at once or sooner cut off. wallMsPerCall >= cpuMsPerCall survives,
 * since both the request and the caps keep it.
 */
export function grantLimits(requested: ManifestLimits, caps: ResolvedCaps): ManifestLimits {
  return {
    memoryMb: requested.memoryMb,
    cpuMsPerCall: Math.min(requested.cpuMsPerCall, caps.cpuMsPerCall),
    wallMsPerCall: Math.min(requested.wallMsPerCall, caps.wallMsPerCall),
    maxConcurrent: Math.min(requested.maxConcurrent, caps.maxConcurrent),
    queueSize: Math.min(requested.queueSize, caps.queueSize),
  }
}

/** The limits granted below their request, as `{limit: {requested, granted}}`; empty when none was. */
export function trimmedLimits(requested: ManifestLimits, granted: ManifestLimits): Record<string, { requested: number; granted: number }> {
  const keys = Object.keys(requested) as Array<keyof ManifestLimits>
  return Object.fromEntries(keys.filter((k) => granted[k] < requested[k]).map((k) => [k, { requested: requested[k], granted: granted[k] }]))
}
