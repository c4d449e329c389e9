/**
 * The shadow reply bodies a device receives (reference §1.3), typed for application code. The
 * coordinator's document engine produces exactly these shapes; only `version` is checked on
 * arrival, the rest is trusted as the wire contract.
 */
import type { JsonObject } from '../../coordinator/protocol/index.js'

export type { JsonObject, JsonValue } from '../../coordinator/protocol/index.js'

/** What `update()` sends; the SDK adds the clientToken. `version` opts in to optimistic locking. */
export interface ShadowUpdateRequest {
  state: { desired?: JsonObject | null; reported?: JsonObject | null } | null
  version?: number
}

/** `update/accepted`: echoes the request's state (nulls included), not the merged document. */
export interface UpdateAcceptedDocument {
  state: { desired?: JsonObject | null; reported?: JsonObject | null } | null
  metadata: JsonObject | null
  version: number
  timestamp: number
  clientToken?: string
}

/** `get/accepted`: the whole document; `delta` is present while desired and reported differ. */
export interface ShadowGetDocument {
  state: { desired?: JsonObject; reported?: JsonObject; delta?: JsonObject }
  metadata: { desired?: JsonObject; reported?: JsonObject; delta?: JsonObject }
  version: number
  timestamp: number
  clientToken?: string
}

/** `update/delta`: `state` is the delta itself, every desired key that reported does not match. */
export interface DeltaDocument {
  state: JsonObject
  metadata: JsonObject
  version: number
  timestamp: number
  clientToken?: string
}

/** `delete/accepted`: the version the shadow had when it was deleted. */
export interface DeleteAcceptedDocument {
  version: number
  timestamp: number
  clientToken?: string
}

/** A change made by someone else (another client, the operator's HTTP API, a task). */
export type ShadowChange =
  | { operation: 'update'; document: UpdateAcceptedDocument }
  | { operation: 'delete'; document: DeleteAcceptedDocument }

export type QoS = 0 | 1
