import { CoordinatorError, type CoordinatorErrorOptions } from '../core/errors.js'
import { PERMISSION_DENIED, TaskLimitError } from '../sandbox/index.js'

// One class for every COORD_TASK_LIMIT, whether the sandbox or the task service raises it.
export { TaskLimitError }

export type TaskErrorCode =
  | 'COORD_TASK_NOT_FOUND'
  | 'COORD_TASK_QUEUE_FULL'
  | 'COORD_TASK_STOPPED'
  | 'COORD_TASK_BROKEN'
  | 'COORD_TASK_CONFIG_INVALID'
  | 'COORD_TASK_MANIFEST_INVALID'
  | 'COORD_TASK_NOT_INVOKABLE'
  | 'COORD_TASK_PAYLOAD_TOO_LARGE'
  | 'COORD_TASK_LIMIT_REACHED'
  | 'COORD_TASK_LIMIT'
  | typeof PERMISSION_DENIED

/**
 * One class for every task-service condition; callers match on `code` (STYLE §6.4), and these
 * errors also cross into isolates, where only `{code, message}` survives.
 */
export class TaskError extends CoordinatorError {
  readonly code: TaskErrorCode

  constructor(code: TaskErrorCode, message: string, options?: CoordinatorErrorOptions) {
    super(message, options)
    this.code = code
  }
}

const quote = (s: string): string => JSON.stringify(s)

export const taskNotFound = (name: string): TaskError => new TaskError('COORD_TASK_NOT_FOUND', `task ${quote(name)} is not installed`)

export const taskStopped = (name: string): TaskError => new TaskError('COORD_TASK_STOPPED', `task ${quote(name)} is stopped`)

/** Retryable: the queue drains, so the same call may be accepted a moment later. */
export const queueFull = (name: string, queueSize: number): TaskError =>
  new TaskError('COORD_TASK_QUEUE_FULL', `task ${quote(name)} queue is full (${queueSize} calls waiting); call refused`, { retryable: true })

export const taskBroken = (name: string, lastError: string | null): TaskError =>
  new TaskError('COORD_TASK_BROKEN', `task ${quote(name)} is broken after repeated failures${lastError === null ? '' : `: ${lastError}`}; start it again once fixed`)

export const configInvalid = (name: string, errors: readonly string[]): TaskError =>
  new TaskError('COORD_TASK_CONFIG_INVALID', `task ${quote(name)} configuration is invalid: ${errors.join('; ')}`)

/** The manifest passed the bundle checks but cannot be applied here (a bad filter or schedule). */
export const manifestInvalid = (name: string, problem: string, cause?: unknown): TaskError =>
  new TaskError('COORD_TASK_MANIFEST_INVALID', `task ${quote(name)} manifest cannot be applied: ${problem}`, cause === undefined ? {} : { cause })

export const notInvokable = (name: string): TaskError =>
  new TaskError('COORD_TASK_NOT_INVOKABLE', `task ${quote(name)} declares no invoke trigger`)

/** `action` and `target` name what was refused, e.g. 'publish' and the topic. */
export const permissionDenied = (task: string, action: string, target: string, reason?: string): TaskError =>
  new TaskError(PERMISSION_DENIED, `task ${quote(task)} may not ${action} ${quote(target)}${reason === undefined ? '' : `: ${reason}`}`)

/** The coordinator runs as many tasks as its board's profile allows (tasks.maxTasks). */
export const limitReached = (name: string, max: number): TaskError =>
  new TaskError('COORD_TASK_LIMIT_REACHED', `cannot install task ${quote(name)}: ${max} tasks are installed, the most this coordinator runs (tasks.maxTasks)`)

/** The per-task bounds at the host boundary (tasks.hostLimits), and the runtime's memory budget. */
export type TaskLimitName =
  | 'publishesInFlight'
  | 'publishBytesInFlight'
  | 'logLinesPerSecond'
  | 'logBytesPerSecond'
  | 'shadowCallsInFlight'
  | 'invokeCallsInFlight'
  /** Host requests of any kind awaiting their answer in one sandbox (MAX_PENDING_REQUESTS, not configurable). */
  | 'requestsInFlight'
  | 'memoryBudgetMb'

/** `what`: the amount that did not fit, e.g. '64 publishes in flight'; `key`: the config key that sets it. */
export const taskLimit = (task: string, limit: TaskLimitName, what: string, key = `tasks.hostLimits.${limit}`): TaskLimitError =>
  new TaskLimitError(limit, `task ${quote(task)} exceeded its limit ${limit}: ${what} (${key})`)

export const payloadTooLarge = (what: string, bytes: number, max: number): TaskError =>
  new TaskError('COORD_TASK_PAYLOAD_TOO_LARGE', `${what} is ${bytes} bytes; the limit is ${max} bytes`)

/** `CODE: message` for lastError and logs; a plain message when the error has no code. */
export function describeError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? `${code}: ${message}` : message
}
