import type { ShadowRef } from '../protocol/index.js'
import type { SyncDirection } from './merge.js'

/** The `cloud.sync` section of the coordinator config. */
export interface SyncSettings {
  shadows: ReadonlyArray<{ thing: string; classic: boolean; named: readonly string[] }>
  own: boolean
  direction: SyncDirection
}

/** Slash cannot occur in thing or shadow names, so the key is unambiguous. */
export const refKey = (ref: ShadowRef): string => `${ref.thingName}/${ref.shadowName ?? ''}`

/** The shadows to sync, each once: the coordinator's own classic shadow first when `own`. */
export function syncTargets(settings: SyncSettings, coordinatorName: string): ShadowRef[] {
  const refs: ShadowRef[] = settings.own ? [{ thingName: coordinatorName }] : []
  for (const s of settings.shadows) {
    if (s.classic) refs.push({ thingName: s.thing })
    for (const shadowName of s.named) refs.push({ thingName: s.thing, shadowName })
  }
  // A repeated key keeps its first position; the refs under one key are equal anyway.
  return [...new Map(refs.map((ref) => [refKey(ref), ref] as const)).values()]
}

/** Things whose shadows are synced and that the cloud must know as this coordinator's devices. */
export function syncedDevices(targets: readonly ShadowRef[], coordinatorName: string): string[] {
  return [...new Set(targets.map((t) => t.thingName).filter((t) => t !== coordinatorName))]
}
