import type { Logger } from '../core/log.js'
import type { TaskStore } from '../tasks/task-store.js'
import type { DeployJournal, JournalEntry, RowSet } from './state.js'

const TOUCHED: ReadonlySet<string> = new Set(['applying', 'health-check'])

/**
 * Boot-time recovery, run before any task starts. The rule (README.md, "Crash safety"):
 *
 * - interrupted while downloading or staging: nothing running was touched; the revision resumes
 *   when the agent runs (downloads resume with Range).
 * - interrupted while applying or health-checking: the rows recorded before applying are written
 *   back in one transaction, so the tasks that start are exactly the previous set, and the
 *   revision ends `rolled-back`. It is not retried: a set that brought the coordinator down must
 *   not do it again on every boot. Deploying again is the cloud's call (a new revision).
 * - an unfinished revision older than another one: superseded.
 *
 * Returns the revisions it ended, for the agent to report.
 */
export function recoverJournal(journal: DeployJournal, store: TaskStore, log: Logger): JournalEntry[] {
  const unfinished = journal.unfinished()
  const newest = unfinished.at(-1)
  const ended: JournalEntry[] = []
  for (const entry of unfinished) {
    if (entry !== newest) {
      journal.finish(entry.revision, 'superseded', entry.tasks, null)
      continue
    }
    if (!TOUCHED.has(entry.phase) || entry.previous === null) continue
    const { rows, managed } = entry.previous
    const error = `the coordinator stopped during '${entry.phase}'; the previous task set was restored at start-up`
    const tasks = entry.tasks.map((t) => ({ ...t, state: 'rolled-back' as const }))
    journal.transaction(() => {
      restoreRows(store, rows)
      journal.setManaged(managed)
      journal.finish(entry.revision, 'rolled-back', tasks, error)
    })
    log.warn({ revision: entry.revision, deploymentId: entry.deploymentId, phase: entry.phase, tasks: Object.keys(rows) }, 'interrupted deployment rolled back before start')
    ended.push({ ...entry, phase: 'rolled-back', tasks, error })
  }
  return ended
}

/** A task the interrupted revision added goes with its state, as `remove` would; the others get their old row. */
function restoreRows(store: TaskStore, rows: RowSet): void {
  for (const [name, row] of Object.entries(rows)) {
    if (row === null) store.remove(name)
    else store.put(row)
  }
}
