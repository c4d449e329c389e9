import type { Clock } from '../core/clock.js'
import type { Logger } from '../core/log.js'
import type { LocalBus } from '../broker/index.js'
import { checkDigest, decodeBundle, resolveConfig, verifyBundleTrust, type DecodedBundle, type TaskManifest, type TrustPolicy } from '../protocol/index.js'
import type { ShadowChangeListener } from '../shadow/index.js'
import { TaskSandbox, type SandboxBounds, type SandboxOptions, type TaskEvent } from '../sandbox/index.js'
import type { CallSlots } from './call-slots.js'
import { configInvalid } from './errors.js'
import type { TaskLimitError } from './errors.js'
import type { TaskBudget } from './host-budget.js'
import type { HostLimits } from './limits.js'
import { buildHostApi, type ShadowPort } from './host-api.js'
import type { TaskLog } from './logs.js'
import { grantLimits, trimmedLimits } from './limits.js'
import type { ResolvedCaps } from './options.js'
import { TaskGrants, type DeviceLookup } from './permissions.js'
import type { RestartPolicy } from './restart-policy.js'
import { TaskRunner, type TaskCounters } from './runner.js'
import type { TaskStore } from './task-store.js'
import { bindTriggers, type TriggerBinding } from './triggers.js'

/** Everything a loaded version needs from the service around it. */
export interface VersionContext {
  bus: LocalBus
  shadows: ShadowPort & { onChange(listener: ShadowChangeListener): () => void }
  devices: DeviceLookup
  store: TaskStore
  slots: CallSlots
  /** What a manifest's limits are granted up to. */
  caps: ResolvedCaps
  restart: RestartPolicy
  /** What may cross each task's bridge (config `tasks.maxBridgeBytes`, `tasks.timerCpuMsPerSecond`). */
  bounds: Partial<SandboxBounds>
  clock: Clock
  log: Logger
  /** A call from one task's handler to another task. */
  invoke(caller: string, target: string, payload: unknown): Promise<unknown>
  onBroken(task: string, runner: TaskRunner): void
}

/** One version of a task, loaded: its runner and its (gated) triggers. */
export interface LiveVersion {
  manifest: TaskManifest
  runner: TaskRunner
  triggers: TriggerBinding
}

export interface VersionSpec {
  bundle: DecodedBundle
  config: Record<string, unknown>
  counters: TaskCounters
  taskLog: TaskLog
  budget: TaskBudget
}

/** Decode (size, envelope, signature, manifest) and trust, in that order; BundleErrors pass through. */
export function verifyBundle(bytes: Uint8Array, maxBytes: number, trust: TrustPolicy): DecodedBundle {
  const decoded = decodeBundle(bytes, { maxBytes })
  if (!decoded.ok) throw decoded.error
  const untrusted = verifyBundleTrust(decoded.bundle, trust)
  if (untrusted !== null) throw untrusted
  return decoded.bundle
}

/** Install's checks (decode, signature, trust, config) plus the digest a deployment names. */
export function checkExpected(bytes: Uint8Array, maxBytes: number, trust: TrustPolicy, expected: { digest: string; config: object }): TaskManifest {
  const decoded = verifyBundle(bytes, maxBytes, trust)
  const mismatch = checkDigest(decoded, expected.digest)
  if (mismatch !== null) throw mismatch
  taskConfig(decoded.manifest, expected.config as Record<string, unknown>)
  return decoded.manifest
}

export function taskConfig(manifest: TaskManifest, overrides: Record<string, unknown>): Record<string, unknown> {
  const resolved = resolveConfig(manifest, overrides)
  if (!resolved.ok) throw configInvalid(manifest.name, resolved.errors)
  return resolved.config
}

const PRIORITY = { bulk: 0, normal: 1, control: 2 } as const

/** Long-lived tasks serve their own loop's callers, so they never queue behind bulk work. */
export function queuePriority(manifest: TaskManifest): number {
  const base = PRIORITY[manifest.priority]
  return manifest.mode === 'long-lived' ? Math.max(PRIORITY.normal, base) : base
}

/**
 * Loads the sandbox (a long-lived task's start() runs here), then subscribes its triggers with the
 * gate closed. Nothing is switched: the caller decides when the version goes live.
 */
export async function loadVersion(ctx: VersionContext, spec: VersionSpec): Promise<LiveVersion> {
  const { manifest, code } = spec.bundle
  const name = manifest.name
  const grants = new TaskGrants(name, manifest.permissions)
  // The host API exists before its runner (the sandbox is built with it); limits reach the runner once it does.
  const strikes: { runner?: TaskRunner } = {}
  const host = buildHostApi({
    task: name, version: manifest.version, grants, bus: ctx.bus, shadows: ctx.shadows, devices: ctx.devices,
    store: ctx.store, log: spec.taskLog, invoke: (target, payload) => ctx.invoke(name, target, payload),
    budget: spec.budget, onLimit: (err: TaskLimitError) => strikes.runner?.limitExceeded(err),
  })
  const sandboxLog = ctx.log.child({ task: name, version: manifest.version })
  const limits = grantLimits(manifest.limits, ctx.caps)
  const trimmed = trimmedLimits(manifest.limits, limits)
  if (Object.keys(trimmed).length > 0) spec.taskLog.lifecycle(manifest.version, 'warn', 'limits granted below the request (tasks.caps)', trimmed)
  const runner = await TaskRunner.create({
    task: name, version: manifest.version, limits, priority: queuePriority(manifest), slots: ctx.slots,
    counters: spec.counters, restart: ctx.restart, clock: ctx.clock, log: spec.taskLog,
    onBroken: (r) => ctx.onBroken(name, r), keepAlive: manifest.mode === 'long-lived',
    createSandbox: (onFault) => TaskSandbox.create({
      taskName: name, version: manifest.version, code, handler: manifest.handler, mode: manifest.mode,
      limits, bounds: ctx.bounds, host, config: spec.config, log: sandboxLog, onFault, requestCaps: requestCaps(spec.budget.limits),
    }),
  })
  strikes.runner = runner
  try {
    const triggers = await bindTriggers({
      triggers: manifest.triggers, grants, bus: ctx.bus, shadows: ctx.shadows, devices: ctx.devices, clock: ctx.clock,
      dispatch: (event) => dispatch(runner, event),
    })
    return { manifest, runner, triggers }
  } catch (err) {
    await runner.dispose()
    throw err
  }
}

/** The in-flight bounds the isolate applies itself, so a flood is refused before it crosses the bridge. */
function requestCaps(l: HostLimits): SandboxOptions['requestCaps'] {
  return {
    publish: { limit: 'publishesInFlight', max: l.publishesInFlight, key: 'tasks.hostLimits.publishesInFlight' },
    shadow: { limit: 'shadowCallsInFlight', max: l.shadowCallsInFlight, key: 'tasks.hostLimits.shadowCallsInFlight' },
    invoke: { limit: 'invokeCallsInFlight', max: l.invokeCallsInFlight, key: 'tasks.hostLimits.invokeCallsInFlight' },
  }
}

/** Trigger calls have no caller to answer; the runner has already counted and logged any refusal or failure. */
function dispatch(runner: TaskRunner, event: TaskEvent): void {
  runner.call(event).catch(() => {})
}

/** Stops triggers at once, lets accepted calls finish for up to `drainMs`, then disposes. */
export async function shutdownVersion(live: LiveVersion, drainMs: number): Promise<boolean> {
  await live.triggers.close()
  const drained = await live.runner.drain(drainMs)
  await live.runner.dispose()
  return drained
}
