export { SyncService, SYNC_DEFAULTS, type SyncServiceOptions } from './sync-service.js'
export { SyncStore, type SyncRecord } from './sync-store.js'
export { syncTargets, syncedDevices, refKey, type SyncSettings } from './targets.js'
export {
  mergeStates, mergeNode, resolveDocument, statePatch, diffNode, statesEqual, stateOf, SECTION_OWNERS,
  type SyncDirection, type Owner,
} from './merge.js'
export { SyncError, SyncConflictError } from './errors.js'
export type { LocalShadows, LocalChange, LocalResult } from './local-side.js'
export type { SyncLink, SyncOutbox, SideDocument } from './cloud-side.js'
