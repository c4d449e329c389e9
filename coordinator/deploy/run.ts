/**
 * One desired revision, from download to commit or rollback (the state machine in README.md).
 * Every phase change is committed to the journal before it is reported, and the previous set is
 * committed before the first task is touched.
 */
import { existsSync } from 'node:fs'
import type { Clock } from '../core/clock.js'
import { K, type Logger } from '../core/log.js'
import { clip, type DeployStatus, type DeploymentReport, type DesiredDeployment, type TaskDeployState, type TaskReport } from '../protocol/index.js'
import { describeError } from '../tasks/errors.js'
import { applySet, healthCheck, managedAfter, previousSet, restoreSet, TaskSetError, type SetContext } from './apply.js'
import { discardPart, fetchBundle } from './fetch.js'
import type { DeployJournal, JournalPhase, PreviousSet } from './state.js'

export interface RunContext extends SetContext {
  journal: DeployJournal
  tmpDir: string
  maxBundleBytes: number
  healthCheckMs: number
  downloadAttempts: number
  report(r: DeploymentReport): void
  /** Resolves once the cloud is reachable; rejects when `signal` aborts. */
  online(signal: AbortSignal): Promise<void>
  clock: Clock
  log: Logger
}

/** Shadow documents are capped at 8 KiB, desired included. */
const MAX_ERROR = 400
const MAX_TASK_ERROR = 200

export class RevisionRun {
  readonly #ctx: RunContext
  readonly #d: DesiredDeployment
  readonly #signal: AbortSignal
  readonly #closing: () => boolean
  #tasks: TaskReport[]

  /** `signal` aborts on close and on supersede; `closing` tells them apart. */
  constructor(ctx: RunContext, desired: DesiredDeployment, signal: AbortSignal, closing: () => boolean) {
    this.#ctx = ctx
    this.#d = desired
    this.#signal = signal
    this.#closing = closing
    this.#tasks = desired.tasks.map((t) => ({ name: t.name, version: t.version, state: 'pending' }))
  }

  async run(): Promise<void> {
    const entry = this.#ctx.journal.begin(this.#d, this.#tasks)
    // A revision resumed after a restart keeps the per-task progress it had reported.
    if (entry.tasks.length === this.#tasks.length) this.#tasks = entry.tasks
    try {
      this.#phase('downloading')
      await this.#download()
      this.#phase('staging')
      await this.#stage()
      this.#signal.throwIfAborted()
    } catch (err) {
      if (this.#closing()) throw err
      return this.#end(this.#signal.aborted ? 'superseded' : 'failed', this.#signal.aborted ? null : describeError(err))
    }
    await this.#apply(previousSet(this.#ctx.store, this.#ctx.journal.managed(), this.#d.tasks))
  }

  async #apply(previous: PreviousSet): Promise<void> {
    this.#ctx.journal.startApplying(this.#d.revision, previous, this.#tasks)
    this.#send('applying')
    try {
      await applySet(this.#ctx, this.#d.tasks, previous, (name) => this.#task(name, 'applied'))
      this.#signal.throwIfAborted()
      this.#phase('health-check')
      await healthCheck(this.#ctx.tasks, this.#d.tasks.map((t) => t.name), this.#ctx.healthCheckMs, this.#signal)
      for (const t of this.#tasks) t.state = 'running'
      this.#end('succeeded', null, managedAfter(previous, this.#d.tasks))
    } catch (err) {
      // Closing mid-apply: the journal still says applying, so the next start restores `previous`.
      if (this.#closing()) throw err
      if (err instanceof TaskSetError) this.#task(err.task, 'failed', err.detail)
      await this.#rollback(previous, this.#signal.aborted ? null : describeError(err))
    }
  }

  async #rollback(previous: PreviousSet, error: string | null): Promise<void> {
    this.#ctx.log.warn({ revision: this.#d.revision, [K.err]: error }, 'deployment failed; restoring the previous task set')
    const errors = await restoreSet(this.#ctx, previous)
    for (const t of this.#tasks) {
      if (t.state !== 'failed') t.state = 'rolled-back'
      const e = errors[t.name]
      if (e !== undefined) t.lastError = clip(e, MAX_TASK_ERROR)
    }
    const failed = Object.entries(errors).map(([name, e]) => `${name}: ${e}`)
    if (failed.length > 0) return this.#end('rollback-failed', `${error ?? 'superseded'}; restoring the previous set failed for ${failed.join('; ')}`)
    this.#end(error === null ? 'superseded' : 'rolled-back', error)
  }

  /** Missing bundles only; each is checked like a local push before it enters the bundle store. */
  async #download(): Promise<void> {
    for (const t of this.#d.tasks) {
      if (existsSync(this.#ctx.files.path(t.digest))) continue
      this.#task(t.name, 'downloading')
      // Offline (a resumed revision after a reboot) is waiting, not failing.
      await this.#ctx.online(this.#signal)
      const bytes = await fetchBundle({
        baseUrl: this.#d.bundleBaseUrl, digest: t.digest, tmpDir: this.#ctx.tmpDir, maxBytes: this.#ctx.maxBundleBytes,
        attempts: this.#ctx.downloadAttempts, signal: this.#signal,
      })
      try {
        this.#ctx.tasks.checkBundle(bytes, t)
        await this.#ctx.files.write(t.digest, bytes)
      } catch (err) {
        this.#task(t.name, 'failed', describeError(err))
        throw err
      } finally {
        await discardPart(this.#ctx.tmpDir, t.digest)
      }
    }
  }

  /** The whole set verified (signature, trust, digest, config) before anything running changes. */
  async #stage(): Promise<void> {
    for (const t of this.#d.tasks) {
      try {
        this.#ctx.tasks.checkBundle(await this.#ctx.files.read(t.digest), t)
      } catch (err) {
        this.#task(t.name, 'failed', describeError(err))
        throw new TaskSetError(t.name, describeError(err))
      }
      this.#task(t.name, 'staged')
    }
  }

  #task(name: string, state: TaskDeployState, error?: string): void {
    const t = this.#tasks.find((x) => x.name === name)
    if (t === undefined) return
    t.state = state
    if (error === undefined) delete t.lastError
    else t.lastError = clip(error, MAX_TASK_ERROR)
  }

  #phase(status: DeployStatus): void {
    this.#ctx.journal.update(this.#d.revision, status, this.#tasks)
    this.#send(status)
  }

  #end(phase: JournalPhase, error: string | null, managed?: ReturnType<typeof managedAfter>): void {
    this.#ctx.journal.finish(this.#d.revision, phase, this.#tasks, error === null ? null : clip(error, MAX_ERROR), managed)
    this.#ctx.log.info({ revision: this.#d.revision, deploymentId: this.#d.deploymentId, phase, [K.err]: error ?? undefined }, 'deployment revision ended')
    if (phase !== 'superseded') this.#send(phase, error)
  }

  #send(status: DeployStatus, error: string | null = null): void {
    this.#ctx.report(reportOf(this.#d, status, this.#tasks, error, this.#ctx.clock))
  }
}

export function reportOf(d: Pick<DesiredDeployment, 'deploymentId' | 'revision'>, status: DeployStatus, tasks: TaskReport[], error: string | null, clock: Clock): DeploymentReport {
  return {
    deploymentId: d.deploymentId, revision: d.revision, status, tasks: structuredClone(tasks),
    ...(error === null ? {} : { error: clip(error, MAX_ERROR) }), at: new Date(clock.now()).toISOString(),
  }
}
