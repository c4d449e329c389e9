export * from './types.js'
export { TaskSandbox, MAX_TIMERS, LOAD_CPU_FLOOR_MS, TIMER_FIRING_OVERHEAD_MS, type SandboxOptions, type SandboxMetrics } from './sandbox.js'
export {
  SandboxError, TaskLimitError, TIMER_LIMIT, TASK_LIMIT, BRIDGE_LIMIT, TIMER_BUDGET_LIMIT,
  type SandboxErrorCode, type TaskErrorInfo, type SandboxLimitHit,
} from './errors.js'
