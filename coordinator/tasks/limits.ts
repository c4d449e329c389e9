import type { TaskLimits as ManifestLimits, TaskManifest } from '../protocol/index.js'
import { limitReached, manifestInvalid, taskLimit } from './errors.js'
import type { ResolvedCaps, TaskLimits } from './options.js'

/**
 * What one task may hold on the host side of the bridge at once, or push through it per second
 * (tasks.hostLimits). The isolate's own heap and CPU are limited by the sandbox; these bound what
 * the task makes the host do for it, so a flooding task costs the daemon a fixed amount of memory.
 */
export interface HostLimits {
  /** Publishes a second, sustained; a publish beyond the rate waits (back-pressure), it is not refused. */
  publishesPerSecond: number
  /** Publishes that may go at once before the rate applies. */
  publishBurst: number
  /** Publishes accepted and not yet delivered (waiting for the rate or being published); one more is refused. */
  publishesInFlight: number
  /** Payload bytes of those publishes. */
  publishBytesInFlight: number
  /** Log lines a second (bursts of twice as many); lines beyond are dropped and counted. */
  logLinesPerSecond: number
  /** Log bytes (message and fields) a second, bursts of twice as many. */
  logBytesPerSecond: number
  /** Shadow get/update/delete calls awaiting their answer. */
  shadowCallsInFlight: number
  /** ctx.invoke calls awaiting their answer. */
  invokeCallsInFlight: number
}

/** Sized for a Pi Zero 2 W: a flooding task holds at most about 1 MB of host memory for its publishes. */
export const HOST_LIMIT_DEFAULTS: Readonly<HostLimits> = Object.freeze({
  publishesPerSecond: 200,
  publishBurst: 100,
  publishesInFlight: 100,
  publishBytesInFlight: 1024 * 1024,
  logLinesPerSecond: 100,
  logBytesPerSecond: 64 * 1024,
  shadowCallsInFlight: 16,
  invokeCallsInFlight: 16,
})

/** What an isolate costs beyond its heap (its own threads' stacks, code space, the context): measured at 2-3 MB. */
export const ISOLATE_OVERHEAD_MB = 4

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

/**
 * The runtime's memory budget at install: the coordinator's resident memory now plus everything
 * the new task may grow to (its heap limit and an isolate's own cost) must fit, so no install can
 * take the daemon into the kernel's OOM killer on its own.
 */
export function checkMemoryBudget(manifest: TaskManifest, rssBytes: number, budgetMb: number): void {
  const rssMb = Math.ceil(rssBytes / (1024 * 1024))
  const wouldBe = rssMb + manifest.limits.memoryMb + ISOLATE_OVERHEAD_MB
  if (wouldBe <= budgetMb) return
  throw taskLimit(
    manifest.name,
    'memoryBudgetMb',
    `installing it could take the coordinator to ${wouldBe} MB of memory (${rssMb} MB now, a heap of up to ${manifest.limits.memoryMb} MB and ${ISOLATE_OVERHEAD_MB} MB for its isolate); the budget is ${budgetMb} MB`,
    'tasks.memoryBudgetMb',
  )
}
