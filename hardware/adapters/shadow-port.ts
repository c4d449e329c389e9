/**
 * What an adapter needs from the coordinator's shadow service, as structural types over the wire
 * contracts: the coordinator's ShadowService satisfies it, and adapters depend on no service class.
 * An adapter uses its thing's classic shadow the way a device does over MQTT: it reports its
 * state, and obeys deltas of the desired state.
 */
import { isClassicShadow, type JsonObject, type ShadowRef } from '../../coordinator/protocol/index.js'
import type { Logger } from '../../coordinator/core/log.js'

export interface ShadowReply {
  accepted: boolean
  /** 200 when accepted, else the AWS error code (404, 409, 429, ...). */
  status: number
  body: JsonObject
}

/** A committed shadow change; `delta` is the desired state still differing from the reported one. */
export interface ShadowChangeEvent {
  kind: 'update' | 'delete'
  ref: ShadowRef
  delta?: JsonObject | null
}

export interface ShadowAccess {
  get(ref: ShadowRef): Promise<ShadowReply>
  update(ref: ShadowRef, payload: Uint8Array): Promise<ShadowReply>
  onChange(listener: (change: ShadowChangeEvent) => void): () => void
}

/** Sends `reported`; a refusal (a rate limit, a size limit) is logged and returns false. */
export async function reportState(shadows: ShadowAccess, thingName: string, reported: JsonObject, log: Logger): Promise<boolean> {
  const reply = await shadows.update({ thingName }, Buffer.from(JSON.stringify({ state: { reported } })))
  if (!reply.accepted) log.warn({ thingName, status: reply.status, message: reply.body['message'] }, 'shadow refused the reported state')
  return reply.accepted
}

/** The desired section of the thing's shadow; undefined when there is no shadow yet. */
export async function storedDesired(shadows: ShadowAccess, thingName: string): Promise<JsonObject | undefined> {
  const reply = await shadows.get({ thingName })
  if (!reply.accepted) return undefined
  const state = reply.body['state'] as { desired?: JsonObject } | undefined
  return state?.desired
}

/** Deltas of the thing's classic shadow. */
export function onDelta(shadows: ShadowAccess, thingName: string, listener: (delta: JsonObject) => void): () => void {
  return shadows.onChange((change) => {
    if (change.kind !== 'update' || change.ref.thingName !== thingName || !isClassicShadow(change.ref)) return
    if (change.delta !== undefined && change.delta !== null) listener(change.delta)
  })
}
