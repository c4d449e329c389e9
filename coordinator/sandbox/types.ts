/**
 * The contract between a task's sandbox and the host. Everything a task can do goes through a
 * HostApi, which the task service builds from the bundle's manifest: the sandbox never sees the
 * broker, the store or any Node object, only these functions, and values cross as copies.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

/** A shadow operation's outcome, as the shadow service answers it (AWS reply body). */
export interface ShadowReply {
  /** 200 when accepted, else the AWS error code (400, 403, 404, 409, 413, 429, ...). */
  status: number
  body: Record<string, unknown>
}

export interface DeviceInfo {
  name: string
  attributes: Record<string, string>
}

/** Capabilities given to one task. Every method checks the manifest's permissions first. */
export interface HostApi {
  publish(topic: string, payload: Uint8Array | string, qos: 0 | 1): Promise<void>
  getShadow(thingName: string, shadowName?: string): Promise<ShadowReply>
  updateShadow(thingName: string, request: Record<string, unknown>, shadowName?: string): Promise<ShadowReply>
  deleteShadow(thingName: string, shadowName?: string): Promise<ShadowReply>
  /** The devices the manifest lets this task manage, with their attributes. */
  listDevices(): Promise<DeviceInfo[]>
  kvGet(key: string): Promise<unknown>
  kvSet(key: string, value: unknown): Promise<void>
  kvDelete(key: string): Promise<boolean>
  kvList(prefix: string): Promise<string[]>
  /** Calls another task (permission `invoke`) and resolves with its handler's result. */
  invoke(taskName: string, payload: unknown): Promise<unknown>
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void
  /** The isolate refused requests beyond a cap itself (SandboxOptions.requestCaps); `count` were awaiting the host. */
  limitReached?(limit: string, count: number): void
}

/** A permission refusal; crosses into the sandbox as an Error with this code. */
export const PERMISSION_DENIED = 'COORD_TASK_PERMISSION_DENIED'

/** What a handler receives for one call. */
export type TaskEvent =
  | { type: 'mqtt'; topic: string; payload: Uint8Array; /** UTF-8 JSON payloads are also given parsed. */ json?: unknown }
  | { type: 'schedule'; schedule: string; firedAt: number }
  | { type: 'shadow-delta'; thingName: string; shadowName?: string; delta: Record<string, unknown>; version: number }
  | { type: 'invoke'; payload: unknown; caller?: string }
  | { type: 'start' }

export interface SandboxLimits {
  /** Isolate heap limit. */
  memoryMb: number
  /** CPU time one call may use. */
  cpuMsPerCall: number
  /** Wall time one call may take, including awaited host calls. */
  wallMsPerCall: number
}

/** The operator's per-task bounds on what crosses the bridge (config `tasks.*`). */
export interface SandboxBounds {
  /** Bytes one value may take crossing the bridge either way: results, events, host-call arguments and answers. */
  maxBridgeBytes: number
  /** CPU time all of a task's timer callbacks together may use per second. */
  timerCpuMsPerSecond: number
}

export const SANDBOX_BOUNDS_DEFAULTS: Readonly<SandboxBounds> = Object.freeze({ maxBridgeBytes: 1024 * 1024, timerCpuMsPerSecond: 100 })
