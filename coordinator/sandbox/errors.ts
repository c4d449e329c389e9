import { CoordinatorError, type CoordinatorErrorOptions } from '../core/errors.js'

export type SandboxErrorCode =
  /** The bundle did not compile, its top-level code threw, or the handler is not exported. */
  | 'COORD_SANDBOX_LOAD'
  /** A call (or a timer callback) took longer than its wall time; `limit.kind` is 'wall'. */
  | 'COORD_SANDBOX_TIMEOUT'
  /** A call (or a timer callback) used up its CPU time; `limit.kind` is 'cpu'. */
  | 'COORD_SANDBOX_CPU_LIMIT'
  /** The isolate hit its heap limit and is gone. */
  | 'COORD_SANDBOX_MEMORY'
  /** The handler (or start()) threw or rejected; `taskError` holds what it threw. */
  | 'COORD_SANDBOX_THREW'
  /** The sandbox was disposed before or while the call ran. */
  | 'COORD_SANDBOX_DISPOSED'
  /** The handler's result cannot be copied out of the isolate (e.g. it holds a function). */
  | 'COORD_SANDBOX_RESULT'

/** Raised inside the isolate when a task asks for more live timers than allowed. */
export const TIMER_LIMIT = 'COORD_SANDBOX_TIMER_LIMIT'

/** What a task threw, as plain strings: it was an isolate value and never becomes a host object. */
export interface TaskErrorInfo {
  name: string
  message: string
  /** The thrown value's own `code`, e.g. a rethrown COORD_TASK_PERMISSION_DENIED. */
  code?: string
  /** The task's frames only, trimmed. */
  stack?: string
}

export interface SandboxLimitHit {
  kind: 'cpu' | 'wall'
  ms: number
}

export interface SandboxErrorOptions extends CoordinatorErrorOptions {
  taskError?: TaskErrorInfo
  limit?: SandboxLimitHit
}

export class SandboxError extends CoordinatorError {
  readonly code: SandboxErrorCode
  readonly taskError: TaskErrorInfo | undefined
  readonly limit: SandboxLimitHit | undefined

  constructor(code: SandboxErrorCode, message: string, options: SandboxErrorOptions = {}) {
    const { taskError, limit, ...rest } = options
    super(message, rest)
    this.code = code
    this.taskError = taskError
    this.limit = limit
  }

  override toJSON(): ReturnType<CoordinatorError['toJSON']> & { taskError?: TaskErrorInfo; limit?: SandboxLimitHit } {
    return {
      ...super.toJSON(),
      ...(this.taskError === undefined ? {} : { taskError: this.taskError }),
      ...(this.limit === undefined ? {} : { limit: this.limit }),
    }
  }
}

const STACK_LINES = 12
const STACK_CHARS = 2000
const MESSAGE_CHARS = 4000

/** Frames of the runtime's own glue say nothing to a task author. */
export const PRELUDE_FILENAME = 'edge-sandbox:prelude'

/** The task's frames only, at most a dozen: enough to find the line, small enough for a log. */
export function trimStack(stack: string): string {
  const lines = stack.split('\n').filter((line) => !line.includes(PRELUDE_FILENAME) && !line.includes('<isolated-vm'))
  return lines.slice(0, STACK_LINES).join('\n').slice(0, STACK_CHARS)
}

const clip = (s: string): string => (s.length > MESSAGE_CHARS ? `${s.slice(0, MESSAGE_CHARS)}…` : s)
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)

/**
 * Reads the description the prelude sends for a thrown value. It was built by code running next to
 * the task's, so every field is checked rather than trusted.
 */
export function taskErrorInfo(value: unknown): TaskErrorInfo {
  const v = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {}
  const info: TaskErrorInfo = { name: clip(str(v.name) ?? 'Error'), message: clip(str(v.message) ?? String(value)) }
  const code = str(v.code)
  const stack = str(v.stack)
  if (code !== undefined) info.code = clip(code)
  if (stack !== undefined) info.stack = trimStack(stack)
  return info
}

export const loadError = (task: string, why: string, options?: SandboxErrorOptions): SandboxError =>
  new SandboxError('COORD_SANDBOX_LOAD', `task ${task} failed to load: ${why}`, options)

export const timeoutError = (task: string, what: string, limit: SandboxLimitHit): SandboxError =>
  new SandboxError(
    limit.kind === 'cpu' ? 'COORD_SANDBOX_CPU_LIMIT' : 'COORD_SANDBOX_TIMEOUT',
    `task ${task}: ${what} exceeded its ${limit.kind === 'cpu' ? 'CPU time' : 'wall time'} limit of ${limit.ms} ms`,
    { limit },
  )

export const memoryError = (task: string, limitMb: number): SandboxError =>
  new SandboxError('COORD_SANDBOX_MEMORY', `task ${task} exceeded its memory limit of ${limitMb} MB; its isolate was disposed`)

export const threwError = (task: string, what: string, taskError: TaskErrorInfo): SandboxError =>
  new SandboxError('COORD_SANDBOX_THREW', `task ${task}: ${what} threw ${taskError.name}: ${taskError.message}`, { taskError })

export const disposedError = (task: string, why = 'the sandbox was disposed'): SandboxError =>
  new SandboxError('COORD_SANDBOX_DISPOSED', `task ${task}: ${why}`)

export const resultError = (task: string, what: string, why: string): SandboxError =>
  new SandboxError('COORD_SANDBOX_RESULT', `task ${task}: the result of ${what} cannot leave the sandbox: ${clip(why)}`)

/** A per-task bound on what crosses the bridge or what the task makes the host hold; `limit` names it. */
export const TASK_LIMIT = 'COORD_TASK_LIMIT'

/**
 * A task went over one of its host-side bounds (a value crossing the bridge, its timers' CPU
 * budget). It counts toward the task's failure budget like a failed call. The sandbox raises it,
 * so it lives here; the task service uses the same code for its own bounds.
 */
export class TaskLimitError extends CoordinatorError {
  readonly code = TASK_LIMIT
  readonly limit: string

  constructor(limit: string, message: string, options?: CoordinatorErrorOptions) {
    super(message, options)
    this.limit = limit
  }

  override toJSON(): ReturnType<CoordinatorError['toJSON']> & { limit: string } {
    return { ...super.toJSON(), limit: this.limit }
  }
}

export const BRIDGE_LIMIT = 'tasks.maxBridgeBytes'
export const TIMER_BUDGET_LIMIT = 'tasks.timerCpuMsPerSecond'

export const bridgeLimitError = (task: string, what: string, maxBytes: number): TaskLimitError =>
  new TaskLimitError(BRIDGE_LIMIT, `task ${task}: ${what} is larger than ${maxBytes} bytes (${BRIDGE_LIMIT}); refused before copying`)

export const timerBudgetError = (task: string, usedMs: number, budgetMs: number): TaskLimitError =>
  new TaskLimitError(
    TIMER_BUDGET_LIMIT,
    `task ${task}: timer callbacks used ${Math.round(usedMs)} ms of CPU within one second; the budget is ${budgetMs} ms (${TIMER_BUDGET_LIMIT}); timers are held until the second ends`,
  )
