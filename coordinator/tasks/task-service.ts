import { ClosedError } from '../core/errors.js'
import { checkDigest, type DecodedBundle, type TaskInfo, type TaskManifest } from '../protocol/index.js'
import type { TaskEvent } from '../sandbox/index.js'
import { BundleFiles } from './bundle-files.js'
import { CallSlots } from './call-slots.js'
import { newEntry, toTaskInfo, type TaskEntry } from './entry.js'
import { describeError, notInvokable, taskBroken, taskNotFound, taskStopped } from './errors.js'
import type { LogEntry } from './logs.js'
import { TASK_SERVICE_DEFAULTS, resolveCaps, validateOptions, type ResolvedCaps, type TaskServiceOptions } from './options.js'
import { RESTART_DEFAULTS } from './restart-policy.js'
import type { TaskRunner } from './runner.js'
import { checkLimits, checkMemoryBudget, HOST_LIMIT_DEFAULTS, type HostLimits } from './limits.js'
import { MemoryWatch, type MemoryCandidate } from './memory-budget.js'
import { KeyedSerial } from './serial.js'
import { TaskStore, type TaskRow } from './task-store.js'
import { checkExpected, loadVersion, shutdownVersion, taskConfig, verifyBundle, type LiveVersion, type VersionContext } from './version.js'

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/**
 * Installed tasks: verified bundles stored by digest, one live version per task behind its triggers,
 * replaced atomically (see README.md for the state machine). Operations on one task are serialized;
 * different tasks proceed independently.
 */
export class TaskService {
  readonly #o: TaskServiceOptions
  readonly #drainMs: number
  readonly #store: TaskStore
  readonly #files: BundleFiles
  readonly #ctx: VersionContext
  readonly #caps: ResolvedCaps
  readonly #slots: CallSlots
  readonly #entries = new Map<string, TaskEntry>()
  readonly #serial = new KeyedSerial()
  /** Digests whose files are written but whose rows are not yet: pruning must spare them. */
  readonly #installing: string[] = []
  readonly #hostLimits: HostLimits
  readonly #memory: MemoryWatch | undefined
  #started = false
  #closed = false
  #closing: Promise<void> | undefined

  constructor(opts: TaskServiceOptions) {
    validateOptions(opts)
    this.#o = opts
    this.#drainMs = opts.drainTimeoutMs ?? TASK_SERVICE_DEFAULTS.drainTimeoutMs
    this.#store = new TaskStore(opts.db)
    this.#files = new BundleFiles(opts.bundleDir)
    this.#caps = resolveCaps(opts)
    this.#slots = new CallSlots(opts.maxConcurrentCalls, this.#caps.maxConcurrent)
    this.#hostLimits = { ...HOST_LIMIT_DEFAULTS, ...opts.hostLimits }
    const budgetMb = opts.limits?.memoryBudgetMb
    this.#memory = budgetMb === undefined ? undefined : new MemoryWatch({ budgetMb, log: opts.log, candidates: () => this.#memoryCandidates() })
    this.#ctx = {
      bus: opts.bus, shadows: opts.shadows, devices: opts.devices, store: this.#store,
      slots: this.#slots, caps: this.#caps,
      restart: { ...RESTART_DEFAULTS, ...opts.restart }, bounds: opts.bounds ?? {}, clock: opts.clock, log: opts.log,
      invoke: (caller, target, payload) => this.#call(target, payload, caller, true),
      onBroken: (task, runner) => this.#onBroken(task, runner),
    }
  }

  /** Starts every task meant to run, from local files only; one task failing never stops the rest. */
  async start(): Promise<void> {
    this.#assertOpen()
    if (this.#started) return
    this.#started = true
    await this.#files.removeTemporaries()
    for (const row of this.#store.list()) await this.#exclusive(row.name, () => this.#restore(row))
    await this.#prune()
    this.#memory?.start()
  }

  /** Stops triggers, lets accepted calls finish (up to drainTimeoutMs), disposes every sandbox. */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async install(bundle: Uint8Array, opts: { config?: object } = {}): Promise<TaskInfo> {
    this.#assertOpen()
    const decoded = verifyBundle(bundle, this.#o.maxBundleBytes, this.#o.trust)
    return this.#exclusive(decoded.manifest.name, () => this.#install(decoded, bundle, opts.config))
  }

  /** Install's checks and the expected digest, installing nothing: deployments verify a set before touching a task. */
  checkBundle(bytes: Uint8Array, expected: { digest: string; config: object }): TaskManifest {
    return checkExpected(bytes, this.#o.maxBundleBytes, this.#o.trust, expected)
  }

  /**
   * Puts a task back exactly as a recorded row says, the way start() brings it up after a reboot:
   * the row is committed whatever happens, and a version that fails to load leaves the task
   * broken with its error. Deployments roll back with it, from local files only.
   */
  restore(row: TaskRow): Promise<TaskInfo> {
    this.#assertOpen()
    return this.#exclusive(row.name, async () => {
      this.#store.put(row)
      await this.#restore(row, this.#entries.get(row.name))
      return this.#info(this.#require(row.name))
    })
  }

  remove(name: string): Promise<void> {
    return this.#exclusive(name, async () => {
      const entry = this.#require(name)
      this.#entries.delete(name)
      await this.#shutdown(entry)
      await Promise.all(entry.retiring.values())
      entry.budget.close()
      this.#store.remove(name)
      entry.log.lifecycle(entry.manifest.version, 'info', 'task removed')
      await this.#prune()
    })
  }

  stop(name: string): Promise<TaskInfo> {
    return this.#exclusive(name, async () => {
      const entry = this.#require(name)
      if (entry.state === 'stopped') return this.#info(entry)
      this.#store.setDesired(name, 'stopped')
      entry.state = 'stopped'
      await this.#shutdown(entry)
      entry.log.lifecycle(entry.manifest.version, 'info', 'task stopped')
      return this.#info(entry)
    })
  }

  /** Starts a stopped task, or gives a broken one a fresh sandbox and a clean failure streak. */
  startTask(name: string): Promise<TaskInfo> {
    return this.#exclusive(name, async () => {
      const entry = this.#require(name)
      if (entry.state === 'running') return this.#info(entry)
      try {
        this.#goLive(entry, await this.#loadStored(entry))
      } catch (err) {
        entry.lastError = describeError(err)
        entry.log.lifecycle(entry.manifest.version, 'error', 'task failed to start', { error: entry.lastError })
        throw err
      }
      this.#store.setDesired(name, 'running')
      entry.log.lifecycle(entry.manifest.version, 'info', 'task started')
      return this.#info(entry)
    })
  }

  /** The largest bundle install() accepts, in bytes. */
  get maxBundleBytes(): number {
    return this.#o.maxBundleBytes
  }

  list(): TaskInfo[] {
    return [...this.#entries.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((e) => this.#info(e))
  }

  get(name: string): TaskInfo | undefined {
    const entry = this.#entries.get(name)
    return entry === undefined ? undefined : this.#info(entry)
  }

  /** Calls the task's handler with an `invoke` event; `caller` is passed on to it. */
  invoke(name: string, payload: unknown, caller?: string): Promise<unknown> {
    return this.#call(name, payload, caller, false)
  }

  logs(name: string, tail: number): LogEntry[] {
    return this.#require(name).log.tail(tail)
  }

  followLogs(name: string, listener: (e: LogEntry) => void): () => void {
    return this.#require(name).log.follow(listener)
  }

  async #install(bundle: DecodedBundle, bytes: Uint8Array, config: object | undefined): Promise<TaskInfo> {
    const { manifest, digest } = bundle
    const existing = this.#entries.get(manifest.name)
    if (this.#o.limits !== undefined) checkLimits(manifest, existing === undefined ? this.#entries.size : null, this.#o.limits)
    // Before the bundle is written or an isolate built: refusing is cheap, loading is not.
    if (this.#memory !== undefined && this.#o.limits?.memoryBudgetMb !== undefined) checkMemoryBudget(manifest, this.#memory.rssBytes(), this.#o.limits.memoryBudgetMb)
    // Without new overrides an upgrade keeps the operator's; `{}` resets them.
    const overrides = (config ?? existing?.row.config ?? {}) as Record<string, unknown>
    if (existing?.state === 'running' && existing.row.digest === digest && sameJson(existing.row.config, overrides)) return this.#info(existing)
    const resolved = taskConfig(manifest, overrides)
    const row: TaskRow = {
      name: manifest.name, digest, signer: bundle.signer?.keyId ?? null, manifest: JSON.stringify(manifest),
      config: overrides, desired: 'running', installedAt: this.#o.clock.now(),
    }
    const entry = existing ?? newEntry(row, manifest, this.#o.log, this.#o.clock, this.#hostLimits)
    this.#installing.push(digest)
    try {
      await this.#files.write(digest, bytes)
      const live = await this.#loadNew(entry, bundle, resolved, existing === undefined)
      this.#store.put(row)
      // A new entry was made with the new manifest already: only a replaced task has a previous version.
      const previous = existing?.manifest.version
      entry.row = row
      entry.manifest = manifest
      this.#entries.set(manifest.name, entry)
      this.#goLive(entry, live)
      entry.log.lifecycle(manifest.version, 'info', previous === undefined ? 'task installed' : 'task replaced', previous === undefined ? { digest } : { digest, previous })
      return this.#info(entry)
    } finally {
      this.#installing.splice(this.#installing.indexOf(digest), 1)
      await this.#prune()
    }
  }

  /** A first install that fails leaves nothing behind, not even state its start() wrote. */
  async #loadNew(entry: TaskEntry, bundle: DecodedBundle, config: Record<string, unknown>, first: boolean): Promise<LiveVersion> {
    try {
      return await loadVersion(this.#ctx, { bundle, config, counters: entry.counters, taskLog: entry.log, budget: entry.budget })
    } catch (err) {
      if (first) this.#store.clearKv(entry.name)
      entry.log.lifecycle(bundle.manifest.version, 'error', 'install failed; the installed version keeps running', { error: describeError(err) })
      throw err
    }
  }

  /** The stored bundle goes through every install check again: trusted keys may have changed. */
  async #loadStored(entry: TaskEntry): Promise<LiveVersion> {
    const bundle = verifyBundle(await this.#files.read(entry.row.digest), this.#o.maxBundleBytes, this.#o.trust)
    const mismatch = checkDigest(bundle, entry.row.digest)
    if (mismatch !== null) throw mismatch
    const config = taskConfig(bundle.manifest, entry.row.config)
    return loadVersion(this.#ctx, { bundle, config, counters: entry.counters, taskLog: entry.log, budget: entry.budget })
  }

  /**
   * Registered only after its load attempt, so nobody sees a task half-started. An entry already
   * registered (restore()) keeps its log and counters; its old version stops if the row's fails.
   */
  async #restore(row: TaskRow, existing?: TaskEntry): Promise<void> {
    const entry = existing ?? newEntry(row, JSON.parse(row.manifest) as TaskManifest, this.#o.log, this.#o.clock, this.#hostLimits)
    entry.row = row
    entry.manifest = JSON.parse(row.manifest) as TaskManifest
    try {
      if (row.desired === 'running') {
        this.#goLive(entry, await this.#loadStored(entry))
        entry.log.lifecycle(entry.manifest.version, 'info', 'task started')
      } else if (existing !== undefined) {
        entry.state = 'stopped'
        await this.#shutdown(entry)
      }
    } catch (err) {
      await this.#shutdown(entry)
      entry.state = 'broken'
      entry.lastError = describeError(err)
      entry.log.lifecycle(entry.manifest.version, 'error', 'task failed to start', { error: entry.lastError })
    }
    this.#entries.set(row.name, entry)
  }

  /**
   * The switch: one synchronous step closes the old version's trigger gate, opens the new one and
   * routes new calls to it. The old runner keeps every call it accepted and is disposed once they
   * have all settled (or the drain timeout passes).
   */
  #goLive(entry: TaskEntry, live: LiveVersion): void {
    const previous = entry.live
    void previous?.triggers.close()
    live.triggers.open()
    entry.live = live
    entry.state = 'running'
    entry.lastError = null
    if (previous === undefined) return
    const retired = shutdownVersion(previous, this.#drainMs).then((drained) => {
      if (!drained) entry.log.lifecycle(previous.manifest.version, 'warn', 'replaced version did not finish its calls in time')
      entry.retiring.delete(previous)
    })
    entry.retiring.set(previous, retired)
  }

  async #shutdown(entry: TaskEntry): Promise<void> {
    const live = entry.live
    entry.live = undefined
    if (live === undefined) return
    const drained = await shutdownVersion(live, this.#drainMs)
    if (!drained) entry.log.lifecycle(live.manifest.version, 'warn', 'calls still running at the drain timeout were cut off')
  }

  /** Only the live version's runner decides the task's state; a retiring one just finishes. */
  #onBroken(task: string, runner: TaskRunner): void {
    const entry = this.#entries.get(task)
    if (entry === undefined || entry.live?.runner !== runner) return
    entry.state = 'broken'
    entry.lastError = runner.lastError
    void entry.live.triggers.close()
  }

  async #call(name: string, payload: unknown, caller: string | undefined, nested: boolean): Promise<unknown> {
    this.#assertOpen()
    const entry = this.#require(name)
    if (entry.state === 'stopped') throw taskStopped(name)
    if (entry.state === 'broken' || entry.live === undefined) throw taskBroken(name, entry.lastError)
    if (!entry.live.manifest.triggers.some((t) => t.type === 'invoke')) throw notInvokable(name)
    const event: TaskEvent = caller === undefined ? { type: 'invoke', payload } : { type: 'invoke', payload, caller }
    return entry.live.runner.call(event, nested)
  }

  /** Running tasks' live versions, for the memory watch. */
  *#memoryCandidates(): Iterable<MemoryCandidate> {
    for (const entry of this.#entries.values()) {
      const runner = entry.live?.runner
      if (entry.state !== 'running' || runner === undefined) continue
      yield { name: entry.name, heapUsedBytes: runner.sandboxMetrics().heapUsedBytes, stop: (err) => runner.stopFor(err) }
    }
  }

  async #close(): Promise<void> {
    this.#closed = true
    this.#memory?.close()
    await this.#serial.idle()
    const entries = [...this.#entries.values()]
    await Promise.all(entries.map((e) => this.#shutdown(e)))
    await Promise.all(entries.flatMap((e) => [...e.retiring.values()]))
  }

  #info(entry: TaskEntry): TaskInfo {
    return toTaskInfo(entry, this.#caps, this.#slots.held(entry.name))
  }

  #require(name: string): TaskEntry {
    const entry = this.#entries.get(name)
    if (entry === undefined) throw taskNotFound(name)
    return entry
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('the task service is closed')
  }

  #exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.#serial.run(name, fn, () => this.#assertOpen())
  }

  async #prune(): Promise<void> {
    const keep = new Set([...this.#store.list().map((r) => r.digest), ...this.#installing, ...(this.#o.retainBundles?.() ?? [])])
    await this.#files.prune(keep)
  }
}
