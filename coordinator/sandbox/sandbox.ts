import ivm from 'isolated-vm'
import { InvalidArgumentError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { cborOp, forwardLog, serveRequest, type Settlement } from './bridge.js'
import { exceedsBridge, toIsolate } from './copy.js'
import {
  PRELUDE_FILENAME,
  SandboxError,
  TASK_LIMIT,
  type TaskLimitError,
  bridgeLimitError,
  disposedError,
  loadError,
  memoryError,
  resultError,
  taskErrorInfo,
  threwError,
  timeoutError,
  timerBudgetError,
} from './errors.js'
import { PRELUDE_SOURCE } from './prelude.js'
import { HostTimers, MAX_TIMER_MS, TimerBudget } from './timers.js'
import { SANDBOX_BOUNDS_DEFAULTS, type HostApi, type SandboxBounds, type SandboxLimits, type TaskEvent } from './types.js'
import { cpuSince, markCpu, watchCpu } from './watchdog.js'

export interface SandboxOptions {
  taskName: string
  version: string
  /** An esbuild IIFE bundle that assigns its exports to `var __edgeTask`. */
  code: string
  /** The exported function each call runs as `handler(event, ctx)`. */
  handler: string
  /** Long-lived instances run the exported `start(ctx)`, if any, before the first call. */
  mode: 'on-demand' | 'long-lived'
  limits: SandboxLimits
  host: HostApi
  config: Record<string, unknown>
  /** The runtime's own diagnostics (timer overruns, a lost isolate); task logs go to `host.log`. */
  log: Logger
  /** Bounds on what crosses the bridge; SANDBOX_BOUNDS_DEFAULTS for any not given. */
  bounds?: Partial<SandboxBounds>
  /**
   * Task code failed in a way no failing call reports: a timer callback or work a settled call
   * left behind hit a limit, the timers went over their budget, or a call that succeeded had
   * caught a refusal of a bound. Without this a long-lived task re-arming a spinning timer would
   * burn a core forever without its failures ever counting.
   */
  onFault?: (error: SandboxError | TaskLimitError) => void
  /**
   * Requests of a kind the task may have awaiting the host; beyond, the isolate refuses them itself
   * (COORD_TASK_LIMIT naming `limit` and the config `key`) and tell the host through
   * `HostApi.limitReached` once each time the cap is reached.
   */
  requestCaps?: Partial<Record<'publish' | 'shadow' | 'invoke', { limit: string; max: number; key: string }>>
}

export interface SandboxMetrics {
  /** V8 heap in use plus external memory (large ArrayBuffers): what the memory limit counts. */
  heapUsedBytes: number
  /** CPU time charged to the task's entries (see watchdog.ts for how it is measured). */
  cpuTimeMs: number
  /** Handler calls accepted, whatever their outcome. */
  calls: number
}

/** Live timers per sandbox: each is a host timer plus an isolate entry per firing. */
export const MAX_TIMERS = 64
/** Host requests awaiting their answer per sandbox; one more is refused inside the isolate (COORD_TASK_LIMIT). */
export const MAX_PENDING_REQUESTS = 1024
/** A bundle's top-level code initializes its libraries once, so it gets at least this much CPU. */
export const LOAD_CPU_FLOOR_MS = 1000
/** Its wall time is a multiple of that: on a busy gateway the load may get a small share of a core. */
const LOAD_WALL_FACTOR = 10
/**
 * What a timer firing costs the host besides the isolate's own CPU time (queueing the entry,
 * the apply, its promise): charged to the timer budget so that thousands of near-empty
 * callbacks a second count for what they cost the gateway.
 */
export const TIMER_FIRING_OVERHEAD_MS = 0.05

/** What the isolate is working for: a call (handler or start()), one timer firing, or the load. */
interface Activation {
  /** `handler "onMessage"`, `a timer callback`, ...: for messages. */
  what: string
  /** The pending call it belongs to (a timer armed by a call belongs to it too). */
  readonly callId: number | undefined
  /** CPU time its entries used, exact: the isolate's counter is read after each entry. */
  cpuUsedMs: number
  cpuLimitMs: number
  /** Each entry gets the whole CPU limit (work outliving its call) instead of sharing one. */
  perEntry: boolean
  /** Date.now() by which its entries must end; undefined: each entry may take `entryWallMs`. */
  deadline: number | undefined
  readonly entryWallMs: number
  /** An entry ran past its wall time, or the CPU count passed the limit once the entry ended. */
  exceeded(kind: 'cpu' | 'wall'): void
  /** CPU time of one entry, as it is charged (timer firings charge the timer budget). */
  charged?(ms: number): void
}

interface PendingCall extends Activation {
  readonly id: number
  readonly resolve: (value: unknown) => void
  readonly reject: (error: Error) => void
  readonly wallTimer: NodeJS.Timeout
  /** A bound the call hit that the task caught: counted as a fault if the call still succeeds. */
  limitHit: TaskLimitError | undefined
  /** Failed at its wall limit; the entry it was in then stops at the same deadline, already counted. */
  wallExpired: boolean
}

/** References to the prelude's entry points; only the host holds them. */
interface Entrypoints {
  bind: ivm.Reference
  run: ivm.Reference
  settle: ivm.Reference
  fire: ivm.Reference
  cancel: ivm.Reference
}

/** How an entry ended: `error` is a throw that escaped the entry point, not a task's handled throw. */
type Entered = { ok: true; value: unknown } | { ok: false; reason: 'timeout' | 'lost' | 'error'; error?: unknown }

const TIMED_OUT = 'Script execution timed out.'
const BACKGROUND = 'background work of a finished call'
const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * One task version in its own isolate and context, reused across calls. Every entry into the
 * isolate (a call, a host answer, a timer) runs under two bounds: isolated-vm's `timeout` for its
 * wall time, and a CPU watchdog (watchdog.ts) for its CPU time. Promise continuations run inside
 * the entry that resolved them, so no task code ever runs unbounded. Entries run one at a time:
 * the isolate is single-threaded anyway, and it makes the CPU-time delta of each entry
 * attributable to the call or timer it ran for.
 *
 * After a wall timeout the isolate is kept: V8 unwinds the interrupted code and the next call runs
 * normally (module state is whatever the interrupted code left). isolated-vm can interrupt code
 * only at a wall-clock deadline fixed when the entry starts, so code still running at its CPU
 * limit is stopped the one other way there is: its isolate is disposed, like at the memory limit
 * or a catastrophic isolate failure, and the task runner builds a fresh one.
 */
export class TaskSandbox {
  readonly #opts: SandboxOptions
  readonly #bounds: SandboxBounds
  readonly #label: string
  readonly #isolate: ivm.Isolate
  readonly #context: ivm.Context
  readonly #entry: Entrypoints
  readonly #timers: HostTimers
  readonly #timerBudget: TimerBudget
  readonly #calls = new Map<number, PendingCall>()
  #queue: Promise<unknown> = Promise.resolve()
  #current: Activation | undefined
  /** Calls finished during the current entry, settled when it ends. */
  #finishedInEntry: Array<() => void> = []
  #disposed = false
  #lostBecause: SandboxError | undefined
  #nextCall = 0
  #calledCount = 0
  #heapBytes = 0
  #cpuMs = 0

  private constructor(opts: SandboxOptions) {
    this.#opts = opts
    this.#bounds = { ...SANDBOX_BOUNDS_DEFAULTS, ...opts.bounds }
    this.#label = `${opts.taskName}@${opts.version}`
    this.#timers = new HostTimers(MAX_TIMERS, (id) => this.#fireTimer(id))
    this.#timerBudget = new TimerBudget(this.#bounds.timerCpuMsPerSecond)
    try {
      this.#isolate = new ivm.Isolate({ memoryLimit: opts.limits.memoryMb, onCatastrophicError: (message) => this.#catastrophe(message) })
      this.#context = this.#isolate.createContextSync()
      this.#entry = this.#installPrelude()
      this.#sampleHeap()
    } catch (e) {
      throw loadError(this.#label, `the isolate could not be set up: ${messageOf(e)}`)
    }
  }

  /** Builds the isolate, runs the bundle and, for long-lived tasks, its start(ctx). */
  static async create(opts: SandboxOptions): Promise<TaskSandbox> {
    const sandbox = new TaskSandbox(opts)
    try {
      await sandbox.#load()
    } catch (e) {
      sandbox.dispose()
      throw e
    }
    return sandbox
  }

  get disposed(): boolean {
    return this.#disposed || this.#isolate.isDisposed
  }

  /** Runs `handler(event, ctx)` and resolves with a copy of its result. */
  call(event: TaskEvent): Promise<unknown> {
    if (this.disposed) return Promise.reject(this.#gone())
    if (exceedsBridge(event, this.#bounds.maxBridgeBytes)) return Promise.reject(bridgeLimitError(this.#label, 'the event', this.#bounds.maxBridgeBytes))
    let eventCopy: ivm.Copy<unknown>
    try {
      eventCopy = toIsolate(event)
    } catch (e) {
      return Promise.reject(new InvalidArgumentError(`task ${this.#label}: the event cannot be copied into the sandbox: ${messageOf(e)}`))
    }
    this.#calledCount++
    return this.#activate(`handler "${this.#opts.handler}"`, eventCopy, false)
  }

  /** The heap and CPU figures are as of the end of the last entry into the isolate. */
  metrics(): SandboxMetrics {
    return { heapUsedBytes: this.#heapBytes, cpuTimeMs: this.#cpuMs, calls: this.#calledCount }
  }

  /**
   * Reading heap statistics waits for the isolate's lock, so it is done only between entries,
   * when nothing holds it (about 2 µs).
   */
  #sampleHeap(): void {
    const heap = this.#isolate.getHeapStatisticsSync()
    this.#heapBytes = heap.used_heap_size + heap.externally_allocated_size
  }

  /**
   * Idempotent, and immediate even while task code runs (isolated-vm terminates it). Clears the
   * task's timers and rejects pending calls with COORD_SANDBOX_DISPOSED.
   */
  dispose(): void {
    this.#shutdown(() => disposedError(this.#label))
  }

  #installPrelude(): Entrypoints {
    const { taskName, version, config, host } = this.#opts
    const callbacks = [
      // Requests and log lines cross synchronously: a task producing them in a loop waits for the host
      // to take each one (back-pressure) instead of piling copies up in isolated-vm's queue, and the
      // prelude caps how many requests may await their answer.
      new ivm.Callback((id: unknown, method: unknown, args: unknown) => this.#onRequest(id, method, args)),
      new ivm.Callback((callId: unknown, status: unknown, value: unknown) => this.#onDone(callId, status, value), { ignored: true }),
      new ivm.Callback((level: unknown, message: unknown, fields: unknown) => forwardLog(host, level, message, fields)),
      new ivm.Callback((op: unknown, id: unknown, delay: unknown, repeat: unknown) => this.#onTimer(op, id, delay, repeat), { ignored: true }),
      new ivm.Callback((op: unknown, value: unknown) => this.#cbor(op, value)),
      toIsolate({ name: taskName, version, config, maxTimers: MAX_TIMERS, maxBridgeBytes: this.#bounds.maxBridgeBytes, maxRequests: MAX_PENDING_REQUESTS, caps: this.#opts.requestCaps ?? {} }),
      new ivm.Callback((what: unknown) => this.#onLimit(what), { ignored: true }),
    ]
    const prelude = this.#context.evalClosureSync(PRELUDE_SOURCE, callbacks, { filename: PRELUDE_FILENAME, result: { reference: true } })
    const get = (name: keyof Entrypoints): ivm.Reference => prelude.getSync(name, { reference: true })
    return { bind: get('bind'), run: get('run'), settle: get('settle'), fire: get('fire'), cancel: get('cancel') }
  }

  async #load(): Promise<void> {
    const { code, handler, mode, limits, taskName, version } = this.#opts
    let script: ivm.Script
    try {
      script = await this.#isolate.compileScript(code, { filename: `task:///${taskName}@${version}.js` })
    } catch (e) {
      throw loadError(this.#label, `it does not compile: ${messageOf(e)}`)
    }
    const loadMs = Math.max(limits.cpuMsPerCall, LOAD_CPU_FLOOR_MS)
    const loading: Activation = {
      what: 'its top-level code', callId: undefined, cpuUsedMs: 0, cpuLimitMs: loadMs, perEntry: false, deadline: undefined,
      entryWallMs: Math.max(limits.wallMsPerCall, LOAD_WALL_FACTOR * loadMs), exceeded: () => undefined,
    }
    const ran = await this.#enter(loading, (timeout) => script.run(this.#context, { timeout, release: true }))
    this.#throwIfFailed(ran, loading)
    const bound = await this.#enter(loading, (timeout) => this.#entry.bind.apply(undefined, [handler], { timeout, result: { copy: true } }))
    this.#throwIfFailed(bound, loading)
    const exports = (bound.ok ? bound.value : {}) as { error?: string; hasStart?: boolean }
    if (exports.error !== undefined) throw loadError(this.#label, exports.error)
    if (mode === 'long-lived' && exports.hasStart === true) await this.#activate('start()', undefined, true)
  }

  #throwIfFailed(entered: Entered, loading: Activation): void {
    if (entered.ok && loading.cpuUsedMs > loading.cpuLimitMs) throw timeoutError(this.#label, loading.what, { kind: 'cpu', ms: loading.cpuLimitMs })
    if (entered.ok) return
    if (entered.reason === 'timeout') throw timeoutError(this.#label, loading.what, { kind: 'wall', ms: loading.entryWallMs })
    if (entered.reason === 'lost') throw this.#gone()
    const info = taskErrorInfo(entered.error)
    throw loadError(this.#label, `${loading.what} threw ${info.message}`, { taskError: info })
  }

  /** Why calls fail once the isolate is gone: its memory limit, a failure, or dispose(). */
  #gone(): SandboxError {
    const lost = this.#lostBecause
    return lost === undefined ? disposedError(this.#label) : new SandboxError(lost.code, lost.message, lost.limit === undefined ? {} : { limit: lost.limit })
  }

  /** Starts a call of the handler (or of start()); settles from #onDone, a limit, or disposal. */
  #activate(what: string, eventCopy: ivm.Copy<unknown> | undefined, isStart: boolean): Promise<unknown> {
    if (this.disposed) return Promise.reject(this.#gone())
    const { cpuMsPerCall, wallMsPerCall } = this.#opts.limits
    const wallMs = Math.min(wallMsPerCall, MAX_TIMER_MS)
    return new Promise((resolve, reject) => {
      const id = ++this.#nextCall
      const call: PendingCall = {
        id,
        what,
        callId: id,
        resolve,
        reject,
        cpuUsedMs: 0,
        cpuLimitMs: cpuMsPerCall,
        perEntry: false,
        deadline: Date.now() + wallMs,
        entryWallMs: wallMs,
        limitHit: undefined,
        wallExpired: false,
        exceeded: (kind) => this.#callExceeded(call, kind),
        wallTimer: setTimeout(() => {
          call.wallExpired = true
          this.#settleCall(id, timeoutError(this.#label, what, { kind: 'wall', ms: wallMs }))
        }, wallMs),
      }
      this.#calls.set(id, call)
      // A call that timed out while still queued (wall limit) is not started at all.
      const run = (timeout: number): Promise<unknown> =>
        this.#calls.has(id) ? this.#entry.run.apply(undefined, [id, eventCopy, isStart], { timeout }) : Promise.resolve()
      void this.#enter(call, run).then((entered) => {
        // The prelude catches whatever the handler throws; this is the prelude itself failing.
        if (!entered.ok && entered.reason === 'error') this.#settleCall(id, threwError(this.#label, what, taskErrorInfo(entered.error)))
      })
    })
  }

  /**
   * Settles a pending call once. Its leftover work is from then on bounded per entry; the timers
   * it armed are the task's if it succeeded, and are cleared if it failed (unless the task is
   * long-lived, whose timers are its own loop).
   */
  #settleCall(id: number, outcome: { value: unknown } | Error): void {
    const call = this.#calls.get(id)
    if (call === undefined) return
    this.#calls.delete(id)
    clearTimeout(call.wallTimer)
    call.what = BACKGROUND
    call.perEntry = true
    call.deadline = undefined
    const failed = outcome instanceof Error
    if (failed && this.#opts.mode === 'on-demand') this.#cancelTimers(this.#timers.clearOwnedBy(id))
    else this.#timers.release(id)
    if (failed) call.reject(outcome)
    else {
      call.resolve(outcome.value)
      if (call.limitHit !== undefined) this.#fault(call.limitHit)
    }
  }

  #callExceeded(call: PendingCall, kind: 'cpu' | 'wall'): void {
    const ms = kind === 'cpu' ? call.cpuLimitMs : call.entryWallMs
    if (this.#calls.has(call.id)) {
      if (kind === 'wall') call.wallExpired = true
      this.#settleCall(call.id, timeoutError(this.#label, call.what, { kind, ms }))
    } else if (!(kind === 'wall' && call.wallExpired)) this.#backgroundExceeded(kind)
  }

  /** Work that outlives its call (an un-awaited host call, a floating promise) is bounded per entry. */
  #backgroundExceeded(kind: 'cpu' | 'wall'): void {
    const { cpuMsPerCall, wallMsPerCall } = this.#opts.limits
    this.#opts.log.warn({ task: this.#label, limit: kind }, 'background work of a finished call hit its limit and was interrupted')
    this.#fault(timeoutError(this.#label, BACKGROUND, { kind, ms: kind === 'cpu' ? cpuMsPerCall : wallMsPerCall }))
  }

  #background(): Activation {
    const { cpuMsPerCall, wallMsPerCall } = this.#opts.limits
    return {
      what: BACKGROUND, callId: undefined, cpuUsedMs: 0, cpuLimitMs: cpuMsPerCall, perEntry: true, deadline: undefined,
      entryWallMs: wallMsPerCall, exceeded: (kind) => this.#backgroundExceeded(kind),
    }
  }

  #fault(error: SandboxError | TaskLimitError): void {
    this.#opts.onFault?.(error)
  }

  /**
   * Queues one entry into the isolate after the previous one, under the activation's remaining
   * wall and CPU time, and charges the CPU it used to the activation. Never rejects.
   */
  #enter(activation: Activation, go: (timeoutMs: number) => Promise<unknown>): Promise<Entered> {
    const entered = this.#queue.then(() => this.#runEntry(activation, go))
    this.#queue = entered
    return entered
  }

  async #runEntry(activation: Activation, go: (timeoutMs: number) => Promise<unknown>): Promise<Entered> {
    if (this.disposed) return { ok: false, reason: 'lost' }
    if (activation.perEntry) activation.cpuUsedMs = 0
    const wallMs = activation.deadline === undefined ? activation.entryWallMs : activation.deadline - Date.now()
    const mark = markCpu(this.#isolate)
    this.#current = activation
    const stopWatching = watchCpu(this.#isolate, mark, activation.cpuLimitMs - activation.cpuUsedMs, () => this.#overrun(activation))
    let entered: Entered
    try {
      entered = { ok: true, value: await go(Math.max(1, Math.ceil(wallMs))) }
    } catch (error) {
      entered = this.#classify(error)
    } finally {
      stopWatching()
      this.#current = undefined
    }
    const finished = this.#finishedInEntry.splice(0)
    if (this.disposed) return { ok: false, reason: 'lost' }
    let usedMs: number
    try {
      this.#sampleHeap()
      usedMs = cpuSince(this.#isolate, mark)
    } catch {
      // isolated-vm disposes an isolate at its memory limit from the isolate's thread; isDisposed may lag.
      if (!this.#disposed) this.#lose(memoryError(this.#label, this.#opts.limits.memoryMb))
      return { ok: false, reason: 'lost' }
    }
    this.#cpuMs += usedMs
    activation.cpuUsedMs += usedMs
    activation.charged?.(usedMs)
    for (const settle of finished) settle()
    if (!entered.ok && entered.reason === 'timeout') activation.exceeded('wall')
    else if (activation.cpuUsedMs > activation.cpuLimitMs) activation.exceeded('cpu')
    return entered
  }

  /**
   * The watchdog found an entry still running at its CPU limit. Only disposal stops it: the call
   * it ran for fails with the CPU error, other pending calls learn why the isolate went, and work
   * outside a call is reported as a fault.
   */
  #overrun(activation: Activation): void {
    if (this.disposed) return
    const error = timeoutError(this.#label, activation.what, { kind: 'cpu', ms: activation.cpuLimitMs })
    this.#opts.log.warn({ task: this.#label, limitMs: activation.cpuLimitMs }, `${activation.what} was still running at its CPU time limit; its isolate is disposed`)
    const call = activation.callId === undefined ? undefined : this.#calls.get(activation.callId)
    const ranForCall = call !== undefined && call === activation
    this.#lose(error, ranForCall ? call.id : undefined)
    // Reported once the sandbox is gone, so the runner sees a lost sandbox and rebuilds it.
    if (!ranForCall) this.#fault(error)
  }

  #classify(error: unknown): Entered {
    if (this.#isolate.isDisposed) {
      // isolated-vm disposes an isolate that outgrows its memory limit; anything else was us.
      if (!this.#disposed) this.#lose(memoryError(this.#label, this.#opts.limits.memoryMb))
      return { ok: false, reason: 'lost' }
    }
    if (error instanceof Error && error.message === TIMED_OUT) return { ok: false, reason: 'timeout' }
    return { ok: false, reason: 'error', error }
  }

  #onDone(callId: unknown, status: unknown, value: unknown): void {
    if (typeof callId !== 'number') return
    const what = this.#calls.get(callId)?.what
    if (what === undefined) return
    const outcome =
      status === 'ok'
        ? { value }
        : status === 'limit'
          ? bridgeLimitError(this.#label, `the result of ${what}`, this.#bounds.maxBridgeBytes)
          : status === 'unclonable'
            ? resultError(this.#label, what, taskErrorInfo(value).message)
            : threwError(this.#label, what, taskErrorInfo(value))
    const settle = (): void => this.#settleCall(callId, outcome)
    // Settling when the entry ends lets the caller see its call's CPU and heap in metrics().
    if (this.#current === undefined) settle()
    else this.#finishedInEntry.push(settle)
  }

  /** A host call from the isolate, on behalf of whatever the current entry runs for. */
  #onRequest(id: unknown, method: unknown, args: unknown): void {
    if (this.disposed) return
    const owner = this.#current ?? this.#background()
    void serveRequest(this.#opts.host, method, args).then((settlement) => this.#answer(owner, id, method, settlement))
  }

  /** The prelude refused a value leaving the isolate (its size is checked there, before the copy). */
  #onLimit(what: unknown): void {
    const error = bridgeLimitError(this.#label, typeof what === 'string' ? what.slice(0, 200) : 'a value', this.#bounds.maxBridgeBytes)
    this.#limitHit(this.#current, error)
  }

  /** A refusal inside a pending call counts once: with the call if it fails, as a fault if it does not. */
  #limitHit(owner: Activation | undefined, error: TaskLimitError): void {
    this.#opts.log.warn({ task: this.#label, limit: error.limit }, error.message)
    const call = owner?.callId === undefined ? undefined : this.#calls.get(owner.callId)
    if (call !== undefined) call.limitHit ??= error
    else this.#fault(error)
  }

  #answer(owner: Activation, id: unknown, method: unknown, settlement: Settlement): void {
    if (this.disposed) return
    let answer: Settlement = settlement
    if (settlement.ok && exceedsBridge(settlement.value, this.#bounds.maxBridgeBytes)) {
      const error = bridgeLimitError(this.#label, `the answer to a ${String(method)} request`, this.#bounds.maxBridgeBytes)
      this.#limitHit(owner, error)
      answer = { ok: false, error: { message: error.message, code: TASK_LIMIT } }
    }
    let ok = answer.ok
    let copy: ivm.Copy<unknown>
    try {
      copy = toIsolate(answer.ok ? answer.value : answer.error)
    } catch (e) {
      ok = false
      copy = toIsolate({ message: `the host's answer cannot be copied into the sandbox: ${messageOf(e)}` })
    }
    void this.#enter(owner, (timeout) => this.#entry.settle.apply(undefined, [id, ok, copy], { timeout }))
  }

  /** Sync: whatever this throws would reach the isolate as an Error carrying a host stack. */
  #cbor(op: unknown, value: unknown): ivm.Copy<unknown> {
    try {
      const outcome = cborOp(op, value)
      if (outcome.ok && exceedsBridge(outcome.value, this.#bounds.maxBridgeBytes)) {
        const error = bridgeLimitError(this.#label, `the result of cbor.${String(op)}`, this.#bounds.maxBridgeBytes)
        this.#limitHit(this.#current, error)
        return toIsolate({ ok: false, message: error.message, code: TASK_LIMIT })
      }
      return toIsolate(outcome)
    } catch (e) {
      return toIsolate({ ok: false, message: `the cbor result cannot be copied into the sandbox: ${messageOf(e)}` })
    }
  }

  #onTimer(op: unknown, id: unknown, delay: unknown, repeat: unknown): void {
    if (this.disposed) return
    if (op === 'clear') {
      this.#timers.clear(id)
      return
    }
    const owner = this.#current?.callId
    if (op === 'set' && !this.#timers.set(id, delay, repeat === true, owner !== undefined && this.#calls.has(owner) ? owner : undefined)) {
      this.#opts.log.warn({ task: this.#label, timer: id }, 'timer refused by the host (id reused or too many timers)')
    }
  }

  /** Each firing is its own activation with a full CPU limit, and charges the task's timer budget. */
  #fireTimer(id: number): void {
    const { cpuMsPerCall, wallMsPerCall } = this.#opts.limits
    const firing: Activation = {
      what: 'a timer callback', callId: this.#timers.ownerOf(id), cpuUsedMs: 0, cpuLimitMs: cpuMsPerCall, perEntry: false, deadline: undefined,
      entryWallMs: wallMsPerCall, exceeded: (kind) => this.#timerExceeded(id, kind), charged: (ms) => this.#chargeTimers(ms),
    }
    this.#chargeTimers(TIMER_FIRING_OVERHEAD_MS)
    void this.#enter(firing, (timeout) => this.#entry.fire.apply(undefined, [id], { timeout })).then(() => this.#timers.fired(id))
  }

  #timerExceeded(id: number, kind: 'cpu' | 'wall'): void {
    const ms = kind === 'cpu' ? this.#opts.limits.cpuMsPerCall : this.#opts.limits.wallMsPerCall
    this.#opts.log.warn({ task: this.#label, timer: id, limit: kind, limitMs: ms }, 'timer callback hit its limit; timer cleared')
    this.#fault(timeoutError(this.#label, 'a timer callback', { kind, ms }))
    if (this.#timers.clear(id)) this.#cancelTimers([id])
  }

  /** Over budget: every timer of the task waits for the next window, and the task is told why. */
  #chargeTimers(ms: number): void {
    const total = this.#timerBudget.charge(ms)
    if (total === undefined || this.disposed) return
    this.#timers.holdUntil(this.#timerBudget.windowEnd)
    const error = timerBudgetError(this.#label, total, this.#timerBudget.budgetMs)
    this.#opts.log.warn({ task: this.#label, usedMs: Math.round(total), budgetMs: this.#timerBudget.budgetMs, limit: error.limit }, 'timer callbacks went over their CPU budget; timers held')
    this.#fault(error)
  }

  /** Timers the host gave up on: the isolate forgets them without running them. */
  #cancelTimers(ids: number[]): void {
    if (ids.length === 0 || this.disposed) return
    const copy = toIsolate(ids)
    void this.#enter(this.#background(), (timeout) => this.#entry.cancel.apply(undefined, [copy], { timeout }))
  }

  #catastrophe(message: string): void {
    this.#opts.log.fatal({ task: this.#label, reason: message }, 'isolate failed catastrophically')
    this.#lose(disposedError(this.#label, `its isolate failed: ${message}`))
  }

  /**
   * The isolate is gone (or must go) on its own; every pending call learns why. `culprit`: the
   * call whose code made it go gets `reason` itself, the others a DISPOSED error naming it.
   */
  #lose(reason: SandboxError, culprit?: number): void {
    if (this.#disposed) return
    this.#lostBecause = reason
    this.#opts.log.error({ task: this.#label, code: reason.code }, reason.message)
    const bystander = disposedError(this.#label, `its isolate was disposed: ${reason.message}`)
    this.#shutdown((call) => (culprit === undefined ? this.#gone() : call.id === culprit ? reason : bystander))
  }

  #shutdown(reason: (call: PendingCall) => SandboxError): void {
    if (this.#disposed) return
    this.#disposed = true
    this.#timers.clearAll()
    for (const call of this.#calls.values()) {
      clearTimeout(call.wallTimer)
      call.reject(reason(call))
    }
    this.#calls.clear()
    if (!this.#isolate.isDisposed) this.#isolate.dispose()
  }
}
