/**
 * The types a task author writes against. Types only: a task imports them with `import type`, and
 * `edge-task pack` erases the import, so nothing from here ends up in a bundle.
 *
 * A task module exports:
 *
 *   export async function handler(event: TaskEvent, ctx: TaskContext): Promise<unknown>
 *       Called once per trigger firing (or invoke). Its return value is the invoke result.
 *       The name is the manifest's `handler` ('handler' unless set).
 *   export async function start(ctx: TaskContext): Promise<void>
 *       Long-lived mode only: runs once when the instance starts; timers it sets keep running.
 *
 * Inside the sandbox there is no Node.js: no require, no fs, no net, no process, no Buffer.
 * Everything goes through `ctx`; the globals are those of the JavaScript language plus
 * setTimeout / setInterval / clearTimeout / clearInterval.
 *
 * These mirror the host contract in coordinator/sandbox/types.ts (TaskEvent, ShadowReply,
 * DeviceInfo); a type test keeps the two identical.
 */

/** What a handler receives for one call. */
export type TaskEvent =
  | { type: 'mqtt'; topic: string; payload: Uint8Array; /** UTF-8 JSON payloads are also given parsed. */ json?: unknown }
  | { type: 'schedule'; schedule: string; firedAt: number }
  | { type: 'shadow-delta'; thingName: string; shadowName?: string; delta: Record<string, unknown>; version: number }
  | { type: 'invoke'; payload: unknown; caller?: string }
  | { type: 'start' }

/** A shadow operation's outcome: status 200 when accepted, else the AWS error code and body. */
export interface ShadowReply {
  status: number
  body: Record<string, unknown>
}

export interface DeviceInfo {
  name: string
  attributes: Record<string, string>
}

export interface ShadowOptions {
  /** A named shadow; the classic shadow when absent. */
  name?: string
}

export type LogFields = Record<string, unknown>

export interface TaskLog {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
}

/**
 * The task's capabilities. Each call is checked against the manifest's permissions; a refusal
 * rejects with an Error whose `code` is 'COORD_TASK_PERMISSION_DENIED'.
 */
export interface TaskContext {
  task: { name: string; version: string }
  /** The manifest's config defaults merged with the deployment's overrides, already validated. */
  config: Record<string, unknown>
  /** A plain object is sent as JSON; a string as UTF-8; bytes as they are. QoS 0 unless asked. */
  publish(topic: string, payload: string | Uint8Array | object, opts?: { qos?: 0 | 1 }): Promise<void>
  shadow: {
    get(thing: string, opts?: ShadowOptions): Promise<ShadowReply>
    /** `request` is an AWS update request document, e.g. {state: {desired: {on: true}}}. */
    update(thing: string, request: Record<string, unknown>, opts?: ShadowOptions): Promise<ShadowReply>
    delete(thing: string, opts?: ShadowOptions): Promise<ShadowReply>
  }
  /** The devices the manifest's permissions.devices selects, with their attributes. */
  devices(): Promise<DeviceInfo[]>
  /** Durable key-value state of this task, kept across calls, restarts and upgrades. */
  state: {
    get(key: string): Promise<unknown>
    set(key: string, value: unknown): Promise<void>
    delete(key: string): Promise<boolean>
    list(prefix?: string): Promise<string[]>
  }
  log: TaskLog
  /** Calls another task's handler (permission `invoke`) and resolves with its result. */
  invoke(task: string, payload: unknown): Promise<unknown>
  cbor: {
    encode(value: unknown): Uint8Array
    decode(bytes: Uint8Array): unknown
  }
}

export type TaskHandler = (event: TaskEvent, ctx: TaskContext) => unknown
export type TaskStart = (ctx: TaskContext) => void | Promise<void>
