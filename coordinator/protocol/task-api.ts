/**
 * The local HTTP API's task resources, as the coordinator answers and `edge-task` reads them.
 *
 *   POST   /v1/tasks                 body: bundle bytes (application/octet-stream) -> 201 TaskInfo
 *   GET    /v1/tasks                 -> { tasks: TaskInfo[] }
 *   GET    /v1/tasks/{name}          -> TaskInfo
 *   DELETE /v1/tasks/{name}
 *   POST   /v1/tasks/{name}/stop     POST /v1/tasks/{name}/start
 *   POST   /v1/tasks/{name}/invoke   body: JSON payload -> { result }
 *   GET    /v1/tasks/{name}/logs?tail=N&follow=1 -> NDJSON, one TaskLogEntry per line
 *
 * Errors are ApiErrorBody with a non-2xx status.
 */
import type { TaskLimits, TaskMode, TaskPriority, TaskTrigger } from './manifest.js'

export type TaskState = 'running' | 'stopped' | 'broken'

export interface TaskMetrics {
  calls: number
  failures: number
  timeouts: number
  /** Calls refused because the task's queue was full. */
  rejected: number
  /** Requests refused with COORD_TASK_LIMIT (host-side bounds), and log floods. */
  limited: number
  queueDepth: number
  /** Calls holding one of the coordinator's global call slots now. */
  running: number
  cpuTimeMs: number
  heapUsedBytes: number
}

export interface TaskInfo {
  name: string
  version: string
  digest: string
  /** keyId of the bundle's signer; null for an unsigned bundle. */
  signer: string | null
  state: TaskState
  mode: TaskMode
  priority: TaskPriority
  triggers: TaskTrigger[]
  /** ISO 8601. */
  installedAt: string
  /** Why the task is broken or failed to start; while it runs, the last failure of its live version. */
  lastError: string | null
  /** The manifest's limits are requests; `granted` is what the coordinator's caps (tasks.caps) allow. */
  limits: { requested: TaskLimits; granted: TaskLimits }
  metrics: TaskMetrics
}

export interface TaskListResponse {
  tasks: TaskInfo[]
}

export interface TaskInvokeResponse {
  result: unknown
}

/** One line of a task's log stream; fields the task logged sit beside the fixed ones. */
export interface TaskLogEntry {
  /** ISO 8601 or epoch milliseconds. */
  time: string | number
  level: 'debug' | 'info' | 'warn' | 'error'
  msg: string
  [field: string]: unknown
}

/**
 * The error body of both daemons' HTTP APIs (with the HTTP status), except the AWS shadow routes,
 * which keep AWS's `{code: <status>, message}`: a stable code scripts match on, and a sentence.
 */
export interface ApiErrorBody {
  code: `COORD_${string}`
  message: string
}

/** The local API's default address, also the `edge-task` default. */
export const DEFAULT_COORDINATOR_URL = 'http://127.0.0.1:8087'
