/**
 * Task-set operations of a deployment, on top of TaskService: apply a target set, put a recorded
 * previous set back, and watch a set for a health window. Each task is replaced atomically by
 * TaskService; the set as a whole is made atomic by the journal (state.ts) and rollback.
 */
import { describeError } from '../tasks/errors.js'
import type { DeploymentTask } from '../protocol/index.js'
import type { BundleFiles } from '../tasks/bundle-files.js'
import type { TaskService } from '../tasks/index.js'
import type { TaskStore } from '../tasks/task-store.js'
import type { ManagedSet, PreviousSet } from './state.js'

export interface SetContext {
  tasks: TaskService
  /** Read-only here: the rows as TaskService committed them. */
  store: TaskStore
  files: BundleFiles
}

const HEALTH_POLL_MS = 100
const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/** The rows a revision may change: every target task and every task deployments own now. */
export function previousSet(store: TaskStore, managed: ManagedSet, target: readonly DeploymentTask[]): PreviousSet {
  const names = new Set([...target.map((t) => t.name), ...Object.keys(managed)])
  return { rows: Object.fromEntries([...names].sort().map((n) => [n, store.get(n) ?? null])), managed }
}

/** Owned after a success: the target's names, each keeping the local row it took over, if any. */
export function managedAfter(previous: PreviousSet, target: readonly DeploymentTask[]): ManagedSet {
  return Object.fromEntries(target.map((t) => [t.name, t.name in previous.managed ? previous.managed[t.name] ?? null : previous.rows[t.name] ?? null]))
}

/**
 * Installs every target task (each an atomic replace; an install that fails leaves the old
 * version running), then lets go of owned tasks the target no longer names: a task a deployment
 * created is removed, a local task it took over gets its old row back. Unowned tasks are never
 * touched. Throws at the first failure, naming the task.
 */
export async function applySet(ctx: SetContext, target: readonly DeploymentTask[], previous: PreviousSet, onTask: (name: string) => void): Promise<void> {
  for (const t of target) {
    try {
      await ctx.tasks.install(await ctx.files.read(t.digest), { config: t.config })
    } catch (err) {
      throw new TaskSetError(t.name, describeError(err))
    }
    onTask(t.name)
  }
  const wanted = new Set(target.map((t) => t.name))
  for (const [name, adopted] of Object.entries(previous.managed)) {
    if (wanted.has(name)) continue
    try {
      if (adopted !== null) await ctx.tasks.restore(adopted)
      else if (ctx.tasks.get(name) !== undefined) await ctx.tasks.remove(name)
    } catch (err) {
      throw new TaskSetError(name, describeError(err))
    }
  }
}

export class TaskSetError extends Error {
  constructor(readonly task: string, readonly detail: string) {
    super(`task ${JSON.stringify(task)}: ${detail}`)
  }
}

/**
 * Puts every recorded row back from local files, skipping tasks already exactly as recorded.
 * Returns the tasks that could not be restored with their errors (empty: fully restored).
 */
export async function restoreSet(ctx: SetContext, previous: PreviousSet): Promise<Record<string, string>> {
  const errors: Record<string, string> = {}
  for (const [name, row] of Object.entries(previous.rows)) {
    try {
      if (row === null) {
        if (ctx.tasks.get(name) !== undefined) await ctx.tasks.remove(name)
        continue
      }
      const now = ctx.store.get(name)
      const same = now !== undefined && now.digest === row.digest && sameJson(now.config, row.config) && now.desired === row.desired
      if (same && ctx.tasks.get(name)?.state !== 'broken') continue
      const info = await ctx.tasks.restore(row)
      if (info.state === 'broken') errors[name] = info.lastError ?? 'broken after restore'
    } catch (err) {
      errors[name] = describeError(err)
    }
  }
  return errors
}

/**
 * Every named task must stay running (not broken, not gone) for the whole window: a task that
 * fails its first calls or its start() within it is caught here. Throws a TaskSetError.
 */
export async function healthCheck(tasks: TaskService, names: readonly string[], windowMs: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + windowMs
  for (;;) {
    for (const name of names) {
      const info = tasks.get(name)
      if (info === undefined) throw new TaskSetError(name, 'not installed')
      if (info.state !== 'running') throw new TaskSetError(name, `${info.state}${info.lastError === null ? '' : `: ${info.lastError}`}`)
    }
    const left = deadline - Date.now()
    if (left <= 0) return
    await new Promise((resolve) => setTimeout(resolve, Math.min(HEALTH_POLL_MS, left)))
    signal.throwIfAborted()
  }
}
