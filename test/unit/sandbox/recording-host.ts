import { afterEach } from 'vitest'
import { silentLogger } from '../../../coordinator/core/log.js'
import { PERMISSION_DENIED, TaskSandbox, type DeviceInfo, type HostApi, type LogLevel, type SandboxOptions, type ShadowReply } from '../../../coordinator/sandbox/index.js'

/** A refusal as the task service raises it: an Error with a code, thrown on the host side. */
export class Refused extends Error {
  readonly code = PERMISSION_DENIED
}

export interface HostCall {
  method: string
  args: unknown[]
}

/**
 * A real HostApi that answers from memory and records every call, so tests can see exactly what
 * crossed the bridge. `refuse` names methods that throw a permission error; `delayMs` makes
 * every async answer wait, as a slow broker or store would.
 */
export class RecordingHost implements HostApi {
  readonly calls: HostCall[] = []
  readonly logs: Array<{ level: LogLevel; message: string; fields?: Record<string, unknown> }> = []
  readonly kv = new Map<string, unknown>()
  readonly refuse = new Set<string>()
  delayMs = 0

  async #record<T>(method: string, args: unknown[], answer: () => T): Promise<T> {
    this.calls.push({ method, args })
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs))
    if (this.refuse.has(method)) throw new Refused(`task may not ${method} ${JSON.stringify(args[0])}`)
    return answer()
  }

  publish(topic: string, payload: Uint8Array | string, qos: 0 | 1): Promise<void> {
    return this.#record('publish', [topic, payload, qos], () => undefined)
  }

  getShadow(thingName: string, shadowName?: string): Promise<ShadowReply> {
    return this.#record('getShadow', [thingName, shadowName], () => ({ status: 200, body: { state: { reported: { on: true } }, version: 3 } }))
  }

  updateShadow(thingName: string, request: Record<string, unknown>, shadowName?: string): Promise<ShadowReply> {
    return this.#record('updateShadow', [thingName, request, shadowName], () => ({ status: 200, body: { state: request.state, version: 4 } }))
  }

  deleteShadow(thingName: string, shadowName?: string): Promise<ShadowReply> {
    return this.#record('deleteShadow', [thingName, shadowName], () => ({ status: 404, body: { code: 404, message: 'No shadow exists with name: ' + thingName } }))
  }

  listDevices(): Promise<DeviceInfo[]> {
    return this.#record('listDevices', [], () => [{ name: 'lamp-1', attributes: { room: 'kitchen' } }])
  }

  kvGet(key: string): Promise<unknown> {
    return this.#record('kvGet', [key], () => this.kv.get(key))
  }

  kvSet(key: string, value: unknown): Promise<void> {
    return this.#record('kvSet', [key, value], () => void this.kv.set(key, value))
  }

  kvDelete(key: string): Promise<boolean> {
    return this.#record('kvDelete', [key], () => this.kv.delete(key))
  }

  kvList(prefix: string): Promise<string[]> {
    return this.#record('kvList', [prefix], () => [...this.kv.keys()].filter((k) => k.startsWith(prefix)).sort())
  }

  invoke(taskName: string, payload: unknown): Promise<unknown> {
    return this.#record('invoke', [taskName, payload], () => ({ from: taskName, echo: payload }))
  }

  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    this.logs.push(fields === undefined ? { level, message } : { level, message, fields })
  }
}

/** Wraps a module body in the shape esbuild gives an IIFE bundle with globalName __edgeTask. */
export const bundle = (body: string): string => `var __edgeTask = (() => { const exports = {}; ${body}\n; return exports })()`

export const LIMITS = { memoryMb: 32, cpuMsPerCall: 200, wallMsPerCall: 5000 }

const open: TaskSandbox[] = []
afterEach(() => {
  for (const sandbox of open.splice(0)) sandbox.dispose()
})

/** A sandbox on a fresh RecordingHost, disposed after the test. */
export async function sandboxFor(
  code: string,
  options: Partial<Omit<SandboxOptions, 'code'>> = {},
): Promise<{ sandbox: TaskSandbox; host: RecordingHost }> {
  const host = options.host instanceof RecordingHost ? options.host : new RecordingHost()
  const sandbox = await TaskSandbox.create({
    taskName: 'probe',
    version: '1.0.0',
    handler: 'handler',
    mode: 'on-demand',
    limits: LIMITS,
    config: {},
    log: silentLogger(),
    ...options,
    host,
    code,
  })
  open.push(sandbox)
  return { sandbox, host }
}

/** Waits for `check` to pass, for timer-driven outcomes. */
export async function eventually(check: () => void, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      check()
      return
    } catch (e) {
      if (Date.now() > deadline) throw e
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
}
