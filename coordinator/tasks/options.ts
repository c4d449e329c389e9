import type { Clock } from '../core/clock.js'
import { InvalidArgumentError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import type { LocalBus } from '../broker/index.js'
import type { ShadowService } from '../shadow/index.js'
import type { DeviceStore, Db } from '../store/index.js'
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
  /** How long stop, replace and close wait for accepted calls, in ms. */
  drainTimeoutMs?: number
  /** Sized to the board (hardware profiles): installed tasks, and the isolate heap a manifest may ask for (MB). */
  limits?: TaskLimits
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

export const TASK_SERVICE_DEFAULTS = Object.freeze({ drainTimeoutMs: 10_000 })

export function validateOptions(opts: TaskServiceOptions): void {
  if (!Number.isInteger(opts.maxConcurrentCalls) || opts.maxConcurrentCalls < 1) throw new InvalidArgumentError('maxConcurrentCalls must be an integer >= 1')
  if (!Number.isInteger(opts.maxBundleBytes) || opts.maxBundleBytes < 1) throw new InvalidArgumentError('maxBundleBytes must be an integer >= 1')
  if (opts.drainTimeoutMs !== undefined && !(opts.drainTimeoutMs >= 0)) throw new InvalidArgumentError('drainTimeoutMs must be >= 0')
  for (const [key, value] of Object.entries(opts.hostLimits ?? {})) {
    if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`hostLimits.${key} must be an integer >= 1`)
  }
  const budget = opts.limits?.memoryBudgetMb
  if (budget !== undefined && (!Number.isInteger(budget) || budget < 1)) throw new InvalidArgumentError('limits.memoryBudgetMb must be an integer >= 1')
}
