import PQueue from 'p-queue'
import type { Clock } from '../core/clock.js'
import { ClosedError } from '../core/errors.js'
import type { TaskEvent } from '../sandbox/index.js'
import type { CallSlots } from './call-slots.js'
import { describeError, queueFull, taskBroken, type TaskLimitError } from './errors.js'
import type { TaskLog } from './logs.js'
import { FailureStreak, type RestartPolicy } from './restart-policy.js'

/** The part of a TaskSandbox a runner uses. */
export interface SandboxHandle {
  call(event: TaskEvent): Promise<unknown>
  readonly disposed: boolean
  metrics(): { heapUsedBytes: number; cpuTimeMs: number; calls: number }
  dispose(): Promise<void> | void
}

/** Per-task totals, shared by every runner (version) of the task so replacing keeps them. */
export interface TaskCounters {
  calls: number
  failures: number
  timeouts: number
  rejected: number
  /** Requests refused with COORD_TASK_LIMIT (publishes, shadow and invoke calls), and log floods. */
  limited: number
  /** CPU time of sandboxes already disposed. */
  retiredCpuMs: number
}

export const newCounters = (): TaskCounters => ({ calls: 0, failures: 0, timeouts: 0, rejected: 0, limited: 0, retiredCpuMs: 0 })

export interface RunnerOptions {
  task: string
  version: string
  /** As granted (limits.ts grantLimits), not as the manifest asked. */
  limits: { maxConcurrent: number; queueSize: number }
  /** Priority for the global slots; higher runs first. */
  priority: number
  slots: CallSlots
  /** `onFault`: the sandbox's task code failed outside any call (see SandboxOptions.onFault). */
  createSandbox(onFault: (error: Error) => void): Promise<SandboxHandle>
  counters: TaskCounters
  restart: RestartPolicy
  clock: Clock
  log: TaskLog
  /** Called once, when the runner gives up on the task. */
  onBroken(runner: TaskRunner): void
  /**
   * Long-lived tasks run without calls (start() and its timers), so a lost or stale sandbox is
   * rebuilt as soon as its pause ends rather than at the next call.
   */
  keepAlive?: boolean
}

export type RunnerState = 'running' | 'broken' | 'closed'

interface Pause {
  readonly promise: Promise<void>
  release(): void
}

/** Limits hit while no call runs (timers, background work) count as at most one failure per this interval. */
export const LIMIT_STRIKE_MS = 1000

const codeOf = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

/**
 * Runs one version of one task: a per-task queue (maxConcurrent running, at most queueSize more
 * waiting; beyond that calls are refused, counted and logged) feeding the global call slots shared
 * by all tasks (call-slots.ts: a fair share each). Failures follow the restart policy: a lost or
 * repeatedly failing sandbox is rebuilt after an exponential pause, and a long streak marks the
 * runner broken. Waiting for a pause holds only this task's slots, never a global one, so other
 * tasks keep running.
 */
export class TaskRunner {
  readonly version: string
  readonly #o: RunnerOptions
  readonly #queue: PQueue
  readonly #streak: FailureStreak
  #sandbox!: SandboxHandle
  readonly #retired = new WeakSet<SandboxHandle>()
  #state: RunnerState = 'running'
  #lastError: string | null = null
  /** Set after a repeat failure: rebuild the sandbox once no call is using it. */
  #stale = false
  #rebuilding: Promise<SandboxHandle> | undefined
  #waiting = 0
  #inFlight = 0
  #pause: Pause | undefined
  /** Limits hit so far, and the last one: a call during which the count moved counts as failed. */
  #strikes = 0
  #strike: TaskLimitError | undefined
  #backgroundStrikeAt = -Infinity

  private constructor(opts: RunnerOptions) {
    this.version = opts.version
    this.#o = opts
    this.#queue = new PQueue({ concurrency: opts.limits.maxConcurrent })
    this.#streak = new FailureStreak(opts.restart, opts.clock)
  }

  /** Loads the sandbox first: a version that cannot load never gets a runner. */
  static async create(opts: RunnerOptions): Promise<TaskRunner> {
    const runner = new TaskRunner(opts)
    runner.#sandbox = await runner.#newSandbox()
    return runner
  }

  get state(): RunnerState {
    return this.#state
  }

  get lastError(): string | null {
    return this.#lastError
  }

  /** Calls accepted and not yet running. */
  get queueDepth(): number {
    return this.#waiting
  }

  /** Live figures of the current sandbox; zeros once it is gone. */
  sandboxMetrics(): { cpuTimeMs: number; heapUsedBytes: number } {
    if (this.#retired.has(this.#sandbox)) return { cpuTimeMs: 0, heapUsedBytes: 0 }
    const m = safeMetrics(this.#sandbox)
    return { cpuTimeMs: m.cpuTimeMs, heapUsedBytes: m.heapUsedBytes }
  }

  /** `nested`: a call made by another task's handler, which already holds a global slot. */
  call(event: TaskEvent, nested = false): Promise<unknown> {
    const refusal = this.#refusal()
    if (refusal !== undefined) return Promise.reject(refusal)
    const { maxConcurrent, queueSize } = this.#o.limits
    if (this.#waiting + this.#inFlight >= maxConcurrent + queueSize) {
      this.#o.counters.rejected++
      this.#o.log.lifecycle(this.version, 'warn', 'call refused: queue full', { event: event.type, queueSize }, true)
      return Promise.reject(queueFull(this.#o.task, queueSize))
    }
    this.#waiting++
    return this.#queue.add(() => this.#run(event, nested), { throwOnTimeout: true })
  }

  /**
   * The task ran into one of its host-side limits. While calls run, it is theirs: each call that
   * was running counts as failed even if it caught the error. Outside any call it is a failure of
   * its own, at most one per LIMIT_STRIKE_MS, so a flood is one offence and not thousands.
   */
  limitExceeded(err: TaskLimitError): void {
    this.#o.counters.limited++
    this.#o.log.lifecycle(this.version, 'warn', 'limit exceeded', { limit: err.limit, error: err.message }, true)
    if (this.#state !== 'running') return
    this.#strikes++
    this.#strike = err
    if (this.#inFlight > 0) return
    const now = this.#o.clock.now()
    if (now - this.#backgroundStrikeAt < LIMIT_STRIKE_MS) return
    this.#backgroundStrikeAt = now
    this.#failed(err, this.#sandbox, 'limit exceeded outside a call')
  }

  /** Ends the task now, without a streak: the runtime as a whole cannot afford it (memory budget). */
  stopFor(err: TaskLimitError): void {
    if (this.#state !== 'running') return
    this.#o.counters.failures++
    this.#lastError = describeError(err)
    this.#markBroken('task stopped: the coordinator is over its memory budget')
  }

  /** Resolves true once every accepted call has settled, false if `timeoutMs` passed first. */
  async drain(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs)
    })
    try {
      return await Promise.race([this.#queue.onIdle().then(() => true), timedOut])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Calls still queued after this reject with ClosedError; calls in the sandbox with its error. */
  async dispose(): Promise<void> {
    if (this.#state === 'running') this.#state = 'closed'
    this.#release()
    await this.#retire(this.#sandbox)
  }

  async #run(event: TaskEvent, nested: boolean): Promise<unknown> {
    const started = { value: false }
    try {
      while (this.#pause !== undefined && this.#state === 'running') await this.#pause.promise
      const execute = (): Promise<unknown> => this.#execute(event, started)
      return await (nested ? execute() : this.#o.slots.run(this.#o.task, this.#o.priority, execute))
    } finally {
      if (!started.value) this.#waiting--
    }
  }

  async #execute(event: TaskEvent, started: { value: boolean }): Promise<unknown> {
    const sandbox = await this.#ready()
    started.value = true
    this.#waiting--
    this.#inFlight++
    const strikes = this.#strikes
    try {
      const result = await sandbox.call(event)
      const strike = this.#strike
      if (this.#strikes === strikes || strike === undefined) this.#streak.success()
      else this.#failed(strike, sandbox, 'call exceeded a limit')
      return result
    } catch (err) {
      this.#failed(err, sandbox)
      throw err
    } finally {
      this.#inFlight--
      this.#o.counters.calls++
    }
  }

  #refusal(): Error | undefined {
    if (this.#state === 'broken') return taskBroken(this.#o.task, this.#lastError)
    if (this.#state === 'closed') return new ClosedError(`task ${JSON.stringify(this.#o.task)} version ${this.version} is no longer running`)
    return undefined
  }

  async #ready(): Promise<SandboxHandle> {
    const refusal = this.#refusal()
    if (refusal !== undefined) throw refusal
    const usable = !this.#sandbox.disposed && !(this.#stale && this.#inFlight === 0)
    if (usable) return this.#sandbox
    this.#rebuilding ??= this.#rebuild().finally(() => {
      this.#rebuilding = undefined
    })
    return this.#rebuilding
  }

  async #rebuild(): Promise<SandboxHandle> {
    await this.#retire(this.#sandbox)
    let sandbox: SandboxHandle
    try {
      sandbox = await this.#newSandbox()
    } catch (err) {
      this.#failed(err, undefined)
      throw err
    }
    const refusal = this.#refusal()
    if (refusal !== undefined) {
      await sandbox.dispose()
      throw refusal
    }
    this.#sandbox = sandbox
    this.#stale = false
    this.#o.log.lifecycle(this.version, 'info', 'sandbox rebuilt', { streak: this.#streak.streak })
    return sandbox
  }

  /** Faults reported while the sandbox loads are dropped: the load itself succeeds or throws. */
  async #newSandbox(): Promise<SandboxHandle> {
    const created: { sandbox?: SandboxHandle } = {}
    created.sandbox = await this.#o.createSandbox((err) => {
      if (created.sandbox !== undefined) this.#fault(err, created.sandbox)
    })
    return created.sandbox
  }

  /**
   * Task code outside any call hit a limit: it extends the failure streak like a failed call, so a
   * task that keeps re-arming a spinning timer is paused and finally marked broken.
   */
  #fault(err: Error, sandbox: SandboxHandle): void {
    if (sandbox !== this.#sandbox || this.#retired.has(sandbox)) return
    this.#failed(err, sandbox, 'task code failed outside a call')
  }

  /** Failures after the runner stopped are its own doing (disposed sandboxes) and do not count. */
  #failed(err: unknown, sandbox: SandboxHandle | undefined, what = 'call failed'): void {
    if (this.#state !== 'running') return
    const code = codeOf(err)
    this.#o.counters.failures++
    if (code === 'COORD_SANDBOX_TIMEOUT' || code === 'COORD_SANDBOX_CPU_LIMIT') this.#o.counters.timeouts++
    this.#lastError = describeError(err)
    const verdict = this.#streak.failure(sandbox === undefined || sandbox.disposed)
    this.#o.log.lifecycle(this.version, 'warn', what, { code, error: this.#lastError, streak: verdict.streak }, true)
    if (verdict.action === 'broken') {
      this.#markBroken()
    } else if (verdict.action === 'rebuild') {
      this.#stale = true
      this.#pauseFor(verdict.delayMs)
    }
  }

  #markBroken(why = 'task marked broken after repeated failures'): void {
    this.#state = 'broken'
    this.#release()
    void this.#retire(this.#sandbox)
    this.#o.log.lifecycle(this.version, 'error', why, { lastError: this.#lastError })
    this.#o.onBroken(this)
  }

  /** A newer pause replaces the current one; its waiters loop round and wait on the new one. */
  #pauseFor(ms: number): void {
    let resolve!: () => void
    const promise = new Promise<void>((r) => {
      resolve = r
    })
    const timer = setTimeout(() => {
      if (this.#pause !== pause) return resolve()
      this.#pause = undefined
      resolve()
      // A refusal (broken, closed) or a failed rebuild is already counted and logged.
      if (this.#o.keepAlive === true) this.#ready().catch(() => {})
    }, ms)
    timer.unref()
    const pause: Pause = {
      promise,
      release: () => {
        clearTimeout(timer)
        resolve()
      },
    }
    const previous = this.#pause
    this.#pause = pause
    previous?.release()
    this.#o.log.lifecycle(this.version, 'info', 'pausing before rebuilding the sandbox', { delayMs: ms }, true)
  }

  #release(): void {
    const pause = this.#pause
    this.#pause = undefined
    pause?.release()
  }

  /** Disposes a sandbox once, folding its CPU time into the task's totals first. */
  async #retire(sandbox: SandboxHandle): Promise<void> {
    if (this.#retired.has(sandbox)) return
    this.#retired.add(sandbox)
    this.#o.counters.retiredCpuMs += safeMetrics(sandbox).cpuTimeMs
    try {
      await sandbox.dispose()
    } catch (err) {
      this.#o.log.lifecycle(this.version, 'warn', 'sandbox dispose failed', { error: describeError(err) })
    }
  }
}

/** A sandbox that disposed itself may no longer answer; its figures then count as zero. */
function safeMetrics(sandbox: SandboxHandle): { heapUsedBytes: number; cpuTimeMs: number; calls: number } {
  try {
    return sandbox.metrics()
  } catch {
    return { heapUsedBytes: 0, cpuTimeMs: 0, calls: 0 }
  }
}
