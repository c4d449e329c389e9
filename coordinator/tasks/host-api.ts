import { InvalidArgumentError } from '../core/errors.js'
import type { LocalBus } from '../broker/index.js'
import type { ShadowRef } from '../protocol/index.js'
import type { ShadowResult } from '../shadow/index.js'
import type { HostApi, LogLevel, ShadowReply } from '../sandbox/index.js'
import { payloadTooLarge, permissionDenied, taskLimit, TaskLimitError, type TaskLimitName } from './errors.js'
import type { TaskBudget } from './host-budget.js'
import type { TaskLog } from './logs.js'
import { selectDevices, type Decision, type DeviceLookup, type TaskGrants } from './permissions.js'
import type { TaskStore } from './task-store.js'

/**
 * One task publish may not flood every subscriber (and the cloud outbox, which takes 256 KB per
 * message) with megabytes; AWS IoT Core's own MQTT payload limit is 128 KB.
 */
export const MAX_PUBLISH_BYTES = 256 * 1024

/** The shadow operations a task reaches; ShadowService satisfies it. */
export interface ShadowPort {
  get(ref: ShadowRef, payload?: Uint8Array): Promise<ShadowResult>
  update(ref: ShadowRef, payload: Uint8Array): Promise<ShadowResult>
  delete(ref: ShadowRef, payload?: Uint8Array): Promise<ShadowResult>
}

export interface HostApiDeps {
  task: string
  version: string
  grants: TaskGrants
  bus: Pick<LocalBus, 'publish'>
  shadows: ShadowPort
  devices: DeviceLookup
  store: TaskStore
  /** Runs another task's handler on this task's behalf. */
  invoke(target: string, payload: unknown): Promise<unknown>
  log: TaskLog
  /** The task's host-side bounds (publishes, shadow and invoke calls in flight). */
  budget: TaskBudget
  /** Every COORD_TASK_LIMIT the task ran into, thrown into the isolate or not: it counts against the task. */
  onLimit(error: TaskLimitError): void
}

/** The caps an isolate applies itself and reports through limitReached. */
const ISOLATE_CAPS: ReadonlyMap<string, TaskLimitName> = new Map<string, TaskLimitName>(
  (['publishesInFlight', 'shadowCallsInFlight', 'invokeCallsInFlight', 'requestsInFlight'] as const).map((l) => [l, l]),
)

const LEVELS: ReadonlySet<string> = new Set<LogLevel>(['debug', 'info', 'warn', 'error'])

/**
 * Every capability a task has, each checking the manifest first. Refusals throw
 * COORD_TASK_PERMISSION_DENIED naming the action and target, and are logged on the task's log.
 * Host-side resources are bounded per task (TaskBudget) before any work is done for the request;
 * a request beyond them throws COORD_TASK_LIMIT, which is also reported through `onLimit`.
 */
export function buildHostApi(deps: HostApiDeps): HostApi {
  const limited = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof TaskLimitError) deps.onLimit(err)
      throw err
    }
  }
  const check = (action: string, target: string, decision: Decision): void => {
    if (decision.allowed) return
    deps.log.lifecycle(deps.version, 'warn', 'permission denied', { action, target, reason: decision.reason }, true)
    throw permissionDenied(deps.task, action, target, decision.reason)
  }
  const shadow = (action: string, thingName: unknown, shadowName: unknown): ShadowRef => {
    const ref = shadowRef(thingName, shadowName)
    check(action, ref.thingName, deps.grants.device(ref.thingName, deps.devices))
    return ref
  }
  return {
    publish: async (topic, payload, qos) => {
      const bytes = publishBytes(topic, payload)
      check('publish to', topic, deps.grants.publish(topic))
      const release = await limited(() => deps.budget.publishes.admit(bytes.length))
      try {
        await deps.bus.publish(topic, bytes, qos === 1 ? 1 : 0)
      } finally {
        release()
      }
    },
    getShadow: async (thingName, shadowName) => {
      const ref = shadow('get the shadow of', thingName, shadowName)
      return limited(() => deps.budget.shadowCalls.run(async () => reply(await deps.shadows.get(ref))))
    },
    updateShadow: async (thingName, request, shadowName) => {
      const ref = shadow('update the shadow of', thingName, shadowName)
      return limited(() => deps.budget.shadowCalls.run(async () => reply(await deps.shadows.update(ref, Buffer.from(JSON.stringify(request ?? null))))))
    },
    deleteShadow: async (thingName, shadowName) => {
      const ref = shadow('delete the shadow of', thingName, shadowName)
      return limited(() => deps.budget.shadowCalls.run(async () => reply(await deps.shadows.delete(ref))))
    },
    listDevices: async () => selectDevices(deps.grants.deviceSelectors, deps.devices),
    kvGet: async (key) => deps.store.kvGet(deps.task, key),
    kvSet: async (key, value) => deps.store.kvSet(deps.task, key, value),
    kvDelete: async (key) => deps.store.kvDelete(deps.task, key),
    kvList: async (prefix) => deps.store.kvList(deps.task, prefix),
    invoke: async (target, payload) => {
      check('invoke', String(target), deps.grants.invoke(String(target)))
      return limited(() => deps.budget.invokeCalls.run(() => deps.invoke(target, payload)))
    },
    limitReached: (limit, count) => {
      const name = ISOLATE_CAPS.get(limit)
      if (name === undefined) throw new InvalidArgumentError(`unknown limit ${JSON.stringify(limit)}`)
      const key = name === 'requestsInFlight' ? 'the sandbox allows no more' : `tasks.hostLimits.${name}`
      deps.onLimit(taskLimit(deps.task, name, `${count} calls are awaiting the host, the most it may have; the sandbox refused the ones beyond`, key))
    },
    log: (level, message, fields) => {
      const dropped = deps.log.fromTask(deps.version, LEVELS.has(level) ? level : 'info', String(message), fields)
      if (dropped === undefined) return
      const rate = dropped === 'logLinesPerSecond' ? `${deps.budget.limits.logLinesPerSecond} lines` : `${deps.budget.limits.logBytesPerSecond} bytes`
      deps.onLimit(taskLimit(deps.task, dropped, `it logs more than ${rate} a second; lines beyond are dropped`))
    },
  }
}

/** Validates before the policy check so a refusal message never has to quote a non-string. */
function publishBytes(topic: unknown, payload: unknown): Buffer {
  if (typeof topic !== 'string') throw new InvalidArgumentError('publish topic must be a string')
  if (typeof payload !== 'string' && !(payload instanceof Uint8Array)) throw new InvalidArgumentError('publish payload must be a string or a Uint8Array')
  const bytes = Buffer.from(payload)
  if (bytes.length > MAX_PUBLISH_BYTES) throw payloadTooLarge(`publish payload for ${JSON.stringify(topic)}`, bytes.length, MAX_PUBLISH_BYTES)
  return bytes
}

function shadowRef(thingName: unknown, shadowName: unknown): ShadowRef {
  if (typeof thingName !== 'string') throw new InvalidArgumentError('thing name must be a string')
  if (shadowName === undefined || shadowName === null || shadowName === '') return { thingName }
  if (typeof shadowName !== 'string') throw new InvalidArgumentError('shadow name must be a string')
  return { thingName, shadowName }
}

const reply = (r: ShadowResult): ShadowReply => ({ status: r.status, body: r.body })
