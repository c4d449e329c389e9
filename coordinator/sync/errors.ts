import { CoordinatorError } from '../core/errors.js'

/** A sync step that could not complete (no answer, refused, link down); it is retried. */
export class SyncError extends CoordinatorError {
  readonly code = 'COORD_SYNC_FAILED' as const
}

/** The local shadow changed between the sync's read and its write: the step runs again at once. */
export class SyncConflictError extends CoordinatorError {
  readonly code = 'COORD_SYNC_CONFLICT' as const
}
