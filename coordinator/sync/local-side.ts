import type { JsonObject, ShadowRef, ShadowState } from '../protocol/index.js'
import type { SideDocument } from './cloud-side.js'
import { SyncConflictError, SyncError } from './errors.js'
import { stateOf, statePatch, statesEqual } from './merge.js'
import type { SyncTokens } from './tokens.js'

/** A local shadow request's outcome, as the ShadowService answers it. */
export interface LocalResult {
  accepted: boolean
  status: number
  body: JsonObject
}

/** A committed local change, as the ShadowService reports it (only what the sync reads). */
export interface LocalChange {
  kind: 'update' | 'delete'
  ref: ShadowRef
  clientToken?: string
}

/** The parts of the local ShadowService the sync uses. */
export interface LocalShadows {
  get(ref: ShadowRef, payload?: Uint8Array): Promise<LocalResult>
  update(ref: ShadowRef, payload: Uint8Array): Promise<LocalResult>
  delete(ref: ShadowRef, payload?: Uint8Array): Promise<LocalResult>
  onChange(listener: (change: LocalChange) => void): () => void
}

const json = (body: object): Uint8Array => Buffer.from(JSON.stringify(body))

/** The coordinator's own copies of the synced shadows, through its ShadowService. */
export class LocalSide {
  readonly #shadows: LocalShadows
  readonly #tokens: SyncTokens

  constructor(shadows: LocalShadows, tokens: SyncTokens) {
    this.#shadows = shadows
    this.#tokens = tokens
  }

  async get(ref: ShadowRef): Promise<SideDocument | null> {
    const r = await this.#shadows.get(ref)
    if (r.status === 404) return null
    if (!r.accepted) throw new SyncError(`the local shadow service refused a get: ${r.status} ${String(r.body['message'])}`)
    return { state: stateOf(r.body), version: Number(r.body['version']) }
  }

  /**
   * Makes the local document (`current`) hold `target` (null: deleted); returns its version
   * afterwards (null: no document). The update names the version it was computed from, so a
   * device's change in between is not overwritten: the step fails with a conflict and reruns.
   */
  async write(ref: ShadowRef, current: SideDocument | null, target: ShadowState | null): Promise<number | null> {
    if (statesEqual(current?.state ?? null, target)) return current?.version ?? null
    const clientToken = this.#tokens.next()
    if (target === null) {
      const r = await this.#shadows.delete(ref, json({ clientToken }))
      if (!r.accepted && r.status !== 404) throw new SyncError(`the local shadow service refused a delete: ${r.status} ${String(r.body['message'])}`)
      return null
    }
    const version = current === null ? {} : { version: current.version }
    const r = await this.#shadows.update(ref, json({ state: statePatch(current?.state ?? null, target), clientToken, ...version }))
    if (r.status === 409) throw new SyncConflictError('the local shadow changed while it was being synced')
    if (!r.accepted) throw new SyncError(`the local shadow service refused an update: ${r.status} ${String(r.body['message'])}`)
    return Number(r.body['version'])
  }
}
