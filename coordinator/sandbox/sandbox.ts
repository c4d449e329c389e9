import ivm from 'isolated-vm'
import { InvalidArgumentError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { cborOp, forwardLog, serveRequest, type Settlement } from './bridge.js'
import { toIsolate } from './copy.js'
import {
  PRELUDE_FILENAME,
  SandboxError,
  disposedError,
  loadError,
  memoryError,
  resultError,
  taskErrorInfo,
  threwError,
  timeoutError,
} from './errors.js'
import { PRELUDE_SOURCE } from './prelude.js'
import { HostTimers, MAX_TIMER_MS } from './timers.js'
import type { HostApi, SandboxLimits, TaskEvent } from './types.js'

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
  /**
   * Task code that ran outside any call (a timer callback, or work a settled call left behind)
   * and hit the CPU limit. No call fails for it, so without this a long-lived task re-arming a
   * spinning timer would burn a core forever without its failures ever counting.
   */
  onFault?: (error: SandboxError) => void
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

/** What the isolate is working for: a call (handler or start()), one timer firing, or the load. */
interface Activation {
  /** CPU time left for the whole activation; Infinity when only each entry is bounded. */
  cpuLeftMs: number
  /** An entry was interrupted at its time limit, or the budget ran out. */
  exceeded(): void
}

interface PendingCall extends Activation {
  readonly id: number
  /** `handler "onMessage"` or `start()`, for messages. */
  readonly what: string
  readonly resolve: (value: unknown) => void
  readonly reject: (error: Error) => void
  readonly wallTimer: NodeJS.Timeout
}

/** References to the prelude's entry points; only the host holds them. */
interface Entrypoints {
  bind: ivm.Reference
  run: ivm.Reference
  settle: ivm.Reference
  fire: ivm.Reference
}

/** How an entry ended: `error` is a throw that escaped the entry point, not a task's handled throw. */
type Entered = { ok: true; value: unknown } | { ok: false; reason: 'timeout' | 'lost' | 'error'; error?: unknown }

const TIMED_OUT = 'Script execution timed out.'
const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * One task version in its own isolate and context, reused across calls. Every entry into the
 * isolate (a call, a host answer, a timer) is an `apply` with a timeout, and promise continuations
 * run inside the entry that resolved them, so no task code ever runs unbounded. Entries run one at
 * a time: the isolate is single-threaded anyway, and it makes the CPU-time delta of each entry
 * attributable to the call or timer it ran for.
 *
 * After a timeout the isolate is kept: V8 unwinds the interrupted code and the next call runs
 * normally (module state is whatever the interrupted code left). Only the memory limit, a
 * catastrophic isolate failure or dispose() end it.
 */
export class TaskSandbox {
  readonly #opts: SandboxOptions
  readonly #label: string
  readonly #isolate: ivm.Isolate
  readonly #context: ivm.Context
  readonly #entry: Entrypoints
  readonly #timers: HostTimers
  readonly #calls = new Map<number, PendingCall>()
  /** Work that outlives its call (an un-awaited host call, a floating promise) is bounded per entry. */
  readonly #background: Activation
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
    this.#label = `${opts.taskName}@${opts.version}`
    this.#background = {
      cpuLeftMs: Infinity,
      exceeded: () => {
        this.#opts.log.warn({ task: this.#label }, 'background work of a finished call hit the CPU limit and was interrupted')
        this.#opts.onFault?.(timeoutError(this.#label, 'background work of a finished call', { kind: 'cpu', ms: opts.limits.cpuMsPerCall }))
      },
    }
    this.#timers = new HostTimers(MAX_TIMERS, (id) => this.#fireTimer(id))
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
    let eventCopy: ivm.Copy<unknown>
    try {
      eventCopy = toIsolate(event)
    } catch (e) {
      return Promise.reject(new InvalidArgumentError(`task ${this.#label}: the event cannot be copied into the sandbox: ${messageOf(e)}`))
    }
    this.#calledCount++
    return this.#activate(`handler "${this.#opts.handler}"`, eventCopy, false)
  }

  /** The heap figure is as of the end of the last entry into the isolate. */
  metrics(): SandboxMetrics {
    if (!this.disposed) this.#cpuMs = Number(this.#isolate.cpuTime) / 1e6
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

  /** Idempotent. Clears the task's timers and rejects pending calls with COORD_SANDBOX_DISPOSED. */
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
      toIsolate({ name: taskName, version, config, maxTimers: MAX_TIMERS, maxRequests: MAX_PENDING_REQUESTS, caps: this.#opts.requestCaps ?? {} }),
    ]
    const prelude = this.#context.evalClosureSync(PRELUDE_SOURCE, callbacks, { filename: PRELUDE_FILENAME, result: { reference: true } })
    const get = (name: keyof Entrypoints): ivm.Reference => prelude.getSync(name, { reference: true })
    return { bind: get('bind'), run: get('run'), settle: get('settle'), fire: get('fire') }
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
    const loading: Activation = { cpuLeftMs: loadMs, exceeded: () => undefined }
    const ran = await this.#enter(loading, (timeout) => script.run(this.#context, { timeout, release: true }))
    this.#throwIfFailed(ran, 'its top-level code', loadMs)
    const bound = await this.#enter(loading, (timeout) => this.#entry.bind.apply(undefined, [handler], { timeout, result: { copy: true } }))
    this.#throwIfFailed(bound, 'looking up its exports', loadMs)
    const exports = (bound.ok ? bound.value : {}) as { error?: string; hasStart?: boolean }
    if (exports.error !== undefined) throw loadError(this.#label, exports.error)
    if (mode === 'long-lived' && exports.hasStart === true) await this.#activate('start()', undefined, true)
  }

  #throwIfFailed(entered: Entered, what: string, limitMs: number): void {
    if (entered.ok) return
    if (entered.reason === 'timeout') throw timeoutError(this.#label, what, { kind: 'cpu', ms: limitMs })
    if (entered.reason === 'lost') throw this.#gone()
    const info = taskErrorInfo(entered.error)
    throw loadError(this.#label, `${what} threw ${info.message}`, { taskError: info })
  }

  /** Why calls fail once the isolate is gone: its memory limit, a failure, or dispose(). */
  #gone(): SandboxError {
    const lost = this.#lostBecause
    return lost === undefined ? disposedError(this.#label) : new SandboxError(lost.code, lost.message)
  }

  /** Starts a call of the handler (or of start()); settles from #onDone, a limit, or disposal. */
  #activate(what: string, eventCopy: ivm.Copy<unknown> | undefined, isStart: boolean): Promise<unknown> {
    if (this.disposed) return Promise.reject(this.#gone())
    const { cpuMsPerCall } = this.#opts.limits
    const wallMs = Math.min(this.#opts.limits.wallMsPerCall, MAX_TIMER_MS)
    return new Promise((resolve, reject) => {
      const id = ++this.#nextCall
      const call: PendingCall = {
        id,
        what,
        resolve,
        reject,
        cpuLeftMs: cpuMsPerCall,
        exceeded: () => this.#callExceeded(call),
        wallTimer: setTimeout(() => this.#settleCall(id, timeoutError(this.#label, what, { kind: 'wall', ms: wallMs })), wallMs),
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

  /** Settles a pending call once; afterwards its leftover work is only bounded per entry. */
  #settleCall(id: number, outcome: { value: unknown } | Error): void {
    const call = this.#calls.get(id)
    if (call === undefined) return
    this.#calls.delete(id)
    clearTimeout(call.wallTimer)
    call.cpuLeftMs = Infinity
    if (outcome instanceof Error) call.reject(outcome)
    else call.resolve(outcome.value)
  }

  #callExceeded(call: PendingCall): void {
    if (this.#calls.has(call.id)) this.#settleCall(call.id, timeoutError(this.#label, call.what, { kind: 'cpu', ms: this.#opts.limits.cpuMsPerCall }))
    else this.#background.exceeded()
  }

  /**
   * Queues one entry into the isolate after the previous one, under the activation's remaining
   * CPU time, and charges the CPU it used to the activation. Never rejects.
   */
  #enter(activation: Activation, go: (timeoutMs: number) => Promise<unknown>): Promise<Entered> {
    const entered = this.#queue.then(() => this.#runEntry(activation, go))
    this.#queue = entered
    return entered
  }

  async #runEntry(activation: Activation, go: (timeoutMs: number) => Promise<unknown>): Promise<Entered> {
    if (this.disposed) return { ok: false, reason: 'lost' }
    const left = Number.isFinite(activation.cpuLeftMs) ? activation.cpuLeftMs : this.#opts.limits.cpuMsPerCall
    const timeout = Math.max(1, Math.ceil(left))
    const before = this.#isolate.cpuTime
    this.#current = activation
    let entered: Entered
    try {
      entered = { ok: true, value: await go(timeout) }
    } catch (error) {
      entered = this.#classify(error)
    } finally {
      this.#current = undefined
    }
    const finished = this.#finishedInEntry.splice(0)
    if (this.disposed) return { ok: false, reason: 'lost' }
    try {
      this.#sampleHeap()
      activation.cpuLeftMs -= Number(this.#isolate.cpuTime - before) / 1e6
    } catch {
      // isolated-vm disposes an isolate at its memory limit from the isolate's thread; isDisposed may lag.
      if (!this.#disposed) this.#lose(memoryError(this.#label, this.#opts.limits.memoryMb))
      return { ok: false, reason: 'lost' }
    }
    for (const settle of finished) settle()
    if (!entered.ok && entered.reason === 'timeout') activation.exceeded()
    else if (activation.cpuLeftMs <= 0) activation.exceeded()
    return entered
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
    const owner = this.#current ?? this.#background
    void serveRequest(this.#opts.host, method, args).then((settlement) => this.#answer(owner, id, settlement))
  }

  #answer(owner: Activation, id: unknown, settlement: Settlement): void {
    if (this.disposed) return
    let ok = settlement.ok
    let copy: ivm.Copy<unknown>
    try {
      copy = toIsolate(settlement.ok ? settlement.value : settlement.error)
    } catch (e) {
      ok = false
      copy = toIsolate({ message: `the host's answer cannot be copied into the sandbox: ${messageOf(e)}` })
    }
    void this.#enter(owner, (timeout) => this.#entry.settle.apply(undefined, [id, ok, copy], { timeout }))
  }

  /** Sync: whatever this throws would reach the isolate as an Error carrying a host stack. */
  #cbor(op: unknown, value: unknown): ivm.Copy<unknown> {
    try {
      return toIsolate(cborOp(op, value))
    } catch (e) {
      return toIsolate({ ok: false, message: `the cbor result cannot be copied into the sandbox: ${messageOf(e)}` })
    }
  }

  #onTimer(op: unknown, id: unknown, delay: unknown, repeat: unknown): void {
    if (this.disposed) return
    if (op === 'clear') this.#timers.clear(id)
    else if (op === 'set' && !this.#timers.set(id, delay, repeat === true)) {
      this.#opts.log.warn({ task: this.#label, timer: id }, 'timer refused by the host (id reused or too many timers)')
    }
  }

  /** Each firing is its own activation with a full CPU limit; one that hits it is cleared. */
  #fireTimer(id: number): void {
    const firing: Activation = {
      cpuLeftMs: this.#opts.limits.cpuMsPerCall,
      exceeded: () => this.#timerExceeded(id),
    }
    void this.#enter(firing, (timeout) => this.#entry.fire.apply(undefined, [id, false], { timeout })).then(() => this.#timers.fired(id))
  }

  #timerExceeded(id: number): void {
    const ms = this.#opts.limits.cpuMsPerCall
    this.#opts.log.warn({ task: this.#label, timer: id, limitMs: ms }, 'timer callback hit the CPU limit; timer cleared')
    this.#opts.onFault?.(timeoutError(this.#label, 'a timer callback', { kind: 'cpu', ms }))
    if (!this.#timers.clear(id)) return
    // The isolate still counts the interval as live; drop it there too, without running it.
    void this.#enter(this.#background, (timeout) => this.#entry.fire.apply(undefined, [id, true], { timeout }))
  }

  #catastrophe(message: string): void {
    this.#opts.log.fatal({ task: this.#label, reason: message }, 'isolate failed catastrophically')
    this.#lose(disposedError(this.#label, `its isolate failed: ${message}`))
  }

  /** The isolate is gone on its own; every pending call learns why. */
  #lose(reason: SandboxError): void {
    if (this.#disposed) return
    this.#lostBecause = reason
    this.#opts.log.error({ task: this.#label, code: reason.code }, reason.message)
    this.#shutdown(() => this.#gone())
  }

  #shutdown(reason: () => SandboxError): void {
    if (this.#disposed) return
    if (!this.#isolate.isDisposed) this.#cpuMs = Number(this.#isolate.cpuTime) / 1e6
    this.#disposed = true
    this.#timers.clearAll()
    for (const call of this.#calls.values()) {
      clearTimeout(call.wallTimer)
      call.reject(reason())
    }
    this.#calls.clear()
    if (!this.#isolate.isDisposed) this.#isolate.dispose()
  }
}
