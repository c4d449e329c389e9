/**
 * Turns a manifest's triggers into calls. Every binding starts with its gate closed: a new
 * version's subscriptions and timers are in place before it goes live, and the switch closes the
 * old gate and opens the new one in the same synchronous step, so a message both versions
 * subscribe to is handled by exactly one of them.
 *
 * The manifest parser has already checked that triggers stay inside the permissions (MQTT filters
 * covered by permissions.subscribe, shadow-delta devices listed in permissions.devices); the
 * shadow-delta listener still asks the task's permissions per change, as every capability does.
 */
import { Cron } from 'croner'
import type { Clock } from '../core/clock.js'
import type { LocalBus } from '../broker/index.js'
import { parseEvery, type ScheduleTrigger, type ShadowDeltaTrigger, type TaskTrigger } from '../protocol/index.js'
import type { ShadowChangeListener } from '../shadow/index.js'
import type { TaskEvent } from '../sandbox/index.js'
import { deviceSelected, type DeviceLookup, type TaskGrants } from './permissions.js'


export interface TriggerDeps {
  triggers: readonly TaskTrigger[]
  grants: TaskGrants
  bus: Pick<LocalBus, 'subscribe'>
  shadows: { onChange(listener: ShadowChangeListener): () => void }
  devices: DeviceLookup
  clock: Clock
  /** Enqueues one call on the version this binding belongs to; must not throw. */
  dispatch(event: TaskEvent): void
}

export interface TriggerBinding {
  /** Lets events through from now on. */
  open(): void
  /** Stops events at once, then releases subscriptions and timers. */
  close(): Promise<void>
}

type Release = () => void | Promise<void>

/** Subscribes and arms timers with the gate closed. */
export async function bindTriggers(deps: TriggerDeps): Promise<TriggerBinding> {
  const gate = { open: false }
  const dispatch = (event: TaskEvent): void => {
    if (gate.open) deps.dispatch(event)
  }
  const releases: Release[] = []
  const binding: TriggerBinding = {
    open: () => {
      gate.open = true
    },
    close: async () => {
      gate.open = false
      for (const release of releases.splice(0)) await release()
    },
  }
  try {
    for (const trigger of deps.triggers) releases.push(await bindOne(trigger, deps, dispatch))
  } catch (err) {
    await binding.close()
    throw err
  }
  return binding
}

async function bindOne(trigger: TaskTrigger, deps: TriggerDeps, dispatch: (e: TaskEvent) => void): Promise<Release> {
  switch (trigger.type) {
    case 'mqtt':
      return deps.bus.subscribe(trigger.filter, (topic, payload) => dispatch(mqttEvent(topic, payload)))
    case 'schedule':
      return bindSchedule(deps, trigger, dispatch)
    case 'shadow-delta':
      return deps.shadows.onChange(shadowDeltaListener(deps, trigger, dispatch))
    case 'invoke':
      // Invocations arrive through TaskService.invoke; there is nothing to subscribe to.
      return () => {}
  }
}

/** The manifest parser guarantees exactly one of `every` and `cron`, both valid. */
function scheduleOf(trigger: ScheduleTrigger): { kind: 'every'; ms: number; label: string } | { kind: 'cron'; pattern: string } {
  if (trigger.cron !== undefined) return { kind: 'cron', pattern: trigger.cron }
  const every = trigger.every ?? ''
  return { kind: 'every', ms: parseEvery(every), label: String(every) }
}

function bindSchedule(deps: TriggerDeps, trigger: ScheduleTrigger, dispatch: (e: TaskEvent) => void): Release {
  const schedule = scheduleOf(trigger)
  if (schedule.kind === 'every') {
    const fire = (): void => dispatch({ type: 'schedule', schedule: schedule.label, firedAt: deps.clock.now() })
    const timer = setInterval(fire, schedule.ms)
    timer.unref()
    return () => clearInterval(timer)
  }
  const job = new Cron(schedule.pattern, { unref: true }, () => {
    dispatch({ type: 'schedule', schedule: schedule.pattern, firedAt: deps.clock.now() })
  })
  return () => job.stop()
}

function shadowDeltaListener(deps: TriggerDeps, trigger: ShadowDeltaTrigger, dispatch: (e: TaskEvent) => void): ShadowChangeListener {
  const wantedShadow = trigger.shadowName ?? ''
  return (change) => {
    if (change.kind !== 'update' || change.delta === null) return
    const { thingName, shadowName } = change.ref
    if ((shadowName ?? '') !== wantedShadow) return
    if (!deviceSelected(trigger.devices, thingName, deps.devices)) return
    if (!deps.grants.device(thingName, deps.devices).allowed) return
    const named = shadowName === undefined || shadowName === '' ? {} : { shadowName }
    dispatch({ type: 'shadow-delta', thingName, ...named, delta: change.delta, version: change.document.version })
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** The payload is copied: the broker may reuse its buffer once the handler returns. */
export function mqttEvent(topic: string, payload: Uint8Array): TaskEvent {
  const bytes = Uint8Array.from(payload)
  const json = parseJson(bytes)
  return json === undefined ? { type: 'mqtt', topic, payload: bytes } : { type: 'mqtt', topic, payload: bytes, json }
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(utf8.decode(bytes)) as unknown
  } catch {
    return undefined
  }
}
