import type { TaskManifest } from '../protocol/index.js'
import { limitReached, manifestInvalid } from './errors.js'
import type { TaskLimits } from './options.js'

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
