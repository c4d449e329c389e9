import { DEFAULTS } from '../config/index.js'
import type { Clock } from '../core/clock.js'
import { InvalidArgumentError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import type { LocalBus } from '../broker/index.js'
import type { ShadowService } from '../shadow/index.js'
import type { DeviceStore, Db } from '../store/index.js'
import type { SandboxBounds } from '../sandbox/index.js'
import type { HostLimits } from './limits.js'
import type { RestartPolicy } from './restart-policy.js'

export interface TaskServiceOptions {
  db: Db
  bundleDir: string
  bus: LocalBus
  shadows: ShadowService
  devices: DeviceStore
  trust: { trustedKeys: string[]; allowUnsigned: boolean }
  /** Task calls running at once across all tasks. */
  maxConcurrentCalls: number
  maxBundleBytes: number
  clock: Clock
  log: Logger
  /** Backoff and broken thresholds; RESTART_DEFAULTS otherwise. */
  restart?: Partial<RestartPolicy>
  /** How long stop, replace and close wait for accepted calls, in ms; then their isolates are disposed. */
  drainTimeoutMs?: number
  /** Per-task bounds on what crosses the bridge; SANDBOX_BOUNDS_DEFAULTS otherwise. */
  bounds?: Partial<SandboxBounds>
  /** Sized to the board (hardware profiles): installed tasks, and the isolate heap a manifest may ask for (MB). */
  limits?: TaskLimits
  /** Ceilings on what a manifest's limits may ask (config `tasks.caps`); TASK_CAP_DEFAULTS otherwise. */
  caps?: Partial<TaskCaps>
  /** Per-task bounds at the host boundary; HOST_LIMIT_DEFAULTS for any left out. */
  hostLimits?: Partial<HostLimits>
  /**
   * Digests whose files must survive pruning although no task row names them: bundles a
   * deployment has staged, and the previous set it may have to roll back to without network.
   */
  retainBundles?: () => Iterable<string>
}

export interface TaskLimits {
  maxTasks: number
  maxMemoryMb: number
  /** Resident memory the whole coordinator may use (MB): installs that could exceed it are refused, and over it the largest task is stopped. */
  memoryBudgetMb?: number
}

/**
 * A manifest's limits are requests: each is granted up to its cap (config `tasks.caps`).
 * `maxConcurrent` is also the most global call slots one task holds at once; null means half of
 * `maxConcurrentCalls` (at least 1), so one task never takes every slot.
 */
export interface TaskCaps {
  maxConcurrent: number | null
  queueSize: number
  cpuMsPerCall: number
  wallMsPerCall: number
}

/** The config's defaults, so a service built without a config (tests, tools) grants the same. */
export const TASK_CAP_DEFAULTS: Readonly<TaskCaps> = Object.freeze({ ...DEFAULTS.tasks.caps })

/** The caps in force, `maxConcurrent` resolved against the global slot count. */
export type ResolvedCaps = { [K in keyof TaskCaps]: number }

export const TASK_SERVICE_DEFAULTS = Object.freeze({ drainTimeoutMs: 10_000 })

export function resolveCaps(opts: Pick<TaskServiceOptions, 'caps' | 'maxConcurrentCalls'>): ResolvedCaps {
  const caps = { ...TASK_CAP_DEFAULTS, ...opts.caps }
  return { ...caps, maxConcurrent: caps.maxConcurrent ?? Math.max(1, Math.floor(opts.maxConcurrentCalls / 2)) }
}

export function validateOptions(opts: TaskServiceOptions): void {
  if (!Number.isInteger(opts.maxConcurrentCalls) || opts.maxConcurrentCalls < 1) throw new InvalidArgumentError('maxConcurrentCalls must be an integer >= 1')
  if (!Number.isInteger(opts.maxBundleBytes) || opts.maxBundleBytes < 1) throw new InvalidArgumentError('maxBundleBytes must be an integer >= 1')
  if (opts.drainTimeoutMs !== undefined && !(opts.drainTimeoutMs >= 0)) throw new InvalidArgumentError('drainTimeoutMs must be >= 0')
  const caps = resolveCaps(opts)
  for (const [key, value] of Object.entries(caps)) {
    if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`caps.${key} must be an integer >= 1, got ${String(value)}`)
  }
  if (caps.maxConcurrent > opts.maxConcurrentCalls) throw new InvalidArgumentError(`caps.maxConcurrent (${caps.maxConcurrent}) must be at most maxConcurrentCalls (${opts.maxConcurrentCalls})`)
  if (caps.wallMsPerCall < caps.cpuMsPerCall) throw new InvalidArgumentError(`caps.wallMsPerCall (${caps.wallMsPerCall}) must be at least caps.cpuMsPerCall (${caps.cpuMsPerCall})`)
  const { maxBridgeBytes, timerCpuMsPerSecond } = opts.bounds ?? {}
  if (maxBridgeBytes !== undefined && !(Number.isInteger(maxBridgeBytes) && maxBridgeBytes >= 1)) throw new InvalidArgumentError('bounds.maxBridgeBytes must be an integer >= 1')
  if (timerCpuMsPerSecond !== undefined && !(timerCpuMsPerSecond > 0)) throw new InvalidArgumentError('bounds.timerCpuMsPerSecond must be > 0')
  for (const [key, value] of Object.entries(opts.hostLimits ?? {})) {
    if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`hostLimits.${key} must be an integer >= 1`)
  }
  const budget = opts.limits?.memoryBudgetMb
  if (budget !== undefined && (!Number.isInteger(budget) || budget < 1)) throw new InvalidArgumentError('limits.memoryBudgetMb must be an integer >= 1')
}
