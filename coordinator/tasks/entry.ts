import type { Clock } from '../core/clock.js'
import type { Logger } from '../core/log.js'
import type { TaskInfo, TaskManifest, TaskState } from '../protocol/index.js'
import { TaskBudget } from './host-budget.js'
import { grantLimits, type HostLimits } from './limits.js'
import { TaskLog } from './logs.js'
import type { ResolvedCaps } from './options.js'
import { newCounters, type TaskCounters } from './runner.js'
import type { TaskRow } from './task-store.js'
import type { LiveVersion } from './version.js'

/**
 * One installed task in memory. `state` is the observed state: `running` with `live` set,
 * `stopped` with no live version, or `broken` (its runner gave up or its version failed to start).
 * Broken is never persisted: after a restart the task gets a fresh try (Azure iotedge #6971,
 * #3702: sticky failure states and accumulated cool-offs kept devices from ever recovering).
 */
export interface TaskEntry {
  readonly name: string
  /** As persisted; replaced only once a new version is live. */
  row: TaskRow
  /** The installed version's manifest, as validated when it was installed. */
  manifest: TaskManifest
  state: TaskState
  lastError: string | null
  live: LiveVersion | undefined
  /** Replaced versions finishing their accepted calls, with the promise of their shutdown. */
  readonly retiring: Map<LiveVersion, Promise<void>>
  readonly counters: TaskCounters
  readonly log: TaskLog
  /** What the task holds at the host boundary, across its versions. */
  readonly budget: TaskBudget
}

export function newEntry(row: TaskRow, manifest: TaskManifest, log: Logger, clock: Clock, hostLimits: HostLimits): TaskEntry {
  return {
    name: row.name,
    row,
    manifest,
    state: row.desired === 'running' ? 'running' : 'stopped',
    lastError: null,
    live: undefined,
    retiring: new Map(),
    counters: newCounters(),
    log: new TaskLog(row.name, log, clock, hostLimits),
    budget: new TaskBudget(row.name, hostLimits, clock),
  }
}

/** `running`: the global call slots the task holds now (CallSlots.held). */
export function toTaskInfo(e: TaskEntry, caps: ResolvedCaps, running: number): TaskInfo {
  const versions = [...(e.live === undefined ? [] : [e.live]), ...e.retiring.keys()]
  const cpu = versions.reduce((sum, v) => sum + v.runner.sandboxMetrics().cpuTimeMs, e.counters.retiredCpuMs)
  return {
    name: e.name,
    version: e.manifest.version,
    digest: e.row.digest,
    signer: e.row.signer,
    state: e.state,
    mode: e.manifest.mode,
    priority: e.manifest.priority,
    triggers: structuredClone(e.manifest.triggers),
    installedAt: new Date(e.row.installedAt).toISOString(),
    // A task failing call after call is reported while it still runs, not only once broken.
    lastError: e.lastError ?? e.live?.runner.lastError ?? null,
    limits: { requested: { ...e.manifest.limits }, granted: grantLimits(e.manifest.limits, caps) },
    metrics: {
      calls: e.counters.calls,
      failures: e.counters.failures,
      timeouts: e.counters.timeouts,
      rejected: e.counters.rejected,
      limited: e.counters.limited,
      queueDepth: versions.reduce((sum, v) => sum + v.runner.queueDepth, 0),
      running,
      cpuTimeMs: Math.round(cpu * 10) / 10,
      heapUsedBytes: e.live?.runner.sandboxMetrics().heapUsedBytes ?? 0,
    },
  }
}
