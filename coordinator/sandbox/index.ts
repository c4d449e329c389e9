export * from './types.js'
export { TaskSandbox, MAX_TIMERS, LOAD_CPU_FLOOR_MS, type SandboxOptions, type SandboxMetrics } from './sandbox.js'
export {
  SandboxError, TaskLimitError, TIMER_LIMIT, TASK_LIMIT,
  type SandboxErrorCode, type TaskErrorInfo, type SandboxLimitHit,
} from './errors.js'
