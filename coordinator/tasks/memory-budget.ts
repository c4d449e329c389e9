import type { Logger } from '../core/log.js'
import { taskLimit, type TaskLimitError } from './errors.js'

/** How often the coordinator's resident memory is read (process.memoryUsage.rss(): a read of /proc/self/statm). */
export const MEMORY_CHECK_MS = 500
/** After stopping a task, the next check waits this long: a disposed isolate's pages take a moment to leave RSS. */
export const MEMORY_SETTLE_MS = 3000

/** A running task as the watchdog weighs it. */
export interface MemoryCandidate {
  name: string
  heapUsedBytes: number
  stop(error: TaskLimitError): void
}

export interface MemoryWatchOptions {
  budgetMb: number
  /** The running tasks, read at each check. */
  candidates(): Iterable<MemoryCandidate>
  log: Logger
  /** Resident memory of the whole process, in bytes. */
  rss?: () => number
}

const MiB = 1024 * 1024

/**
 * The runtime's memory budget while it runs: when the coordinator's resident memory goes over it
 * (tasks that each fit at install, growing together), the task with the largest heap is stopped,
 * marked broken with COORD_TASK_LIMIT `memoryBudgetMb`, before the kernel's OOM killer takes the
 * whole daemon, broker and every other task with it.
 */
export class MemoryWatch {
  readonly #o: MemoryWatchOptions
  readonly #rss: () => number
  #timer: NodeJS.Timeout | undefined
  #quietUntil = 0

  constructor(opts: MemoryWatchOptions) {
    this.#o = opts
    this.#rss = opts.rss ?? (() => process.memoryUsage.rss())
  }

  rssBytes(): number {
    return this.#rss()
  }

  start(): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => this.check(), MEMORY_CHECK_MS)
    this.#timer.unref()
  }

  close(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Stops at most one task; returns its name. */
  check(): string | undefined {
    const now = Date.now()
    if (now < this.#quietUntil) return undefined
    const rss = this.#rss()
    if (rss <= this.#o.budgetMb * MiB) return undefined
    let largest: MemoryCandidate | undefined
    for (const c of this.#o.candidates()) if (largest === undefined || c.heapUsedBytes > largest.heapUsedBytes) largest = c
    if (largest === undefined) return undefined
    const rssMb = Math.round(rss / MiB)
    const heapMb = Math.round(largest.heapUsedBytes / MiB)
    this.#o.log.error({ task: largest.name, rssMb, budgetMb: this.#o.budgetMb, heapMb }, 'the coordinator is over its memory budget; stopping the task with the largest heap')
    largest.stop(taskLimit(largest.name, 'memoryBudgetMb', `the coordinator uses ${rssMb} MB, over its budget of ${this.#o.budgetMb} MB, and this task's heap is the largest (${heapMb} MB)`, 'tasks.memoryBudgetMb'))
    this.#quietUntil = now + MEMORY_SETTLE_MS
    return largest.name
  }
}
