/**
 * A small fleet for deployment tests: coordinators provisioned on an in-process cloud shim and
 * run as real `edge-coordinator start --join` child processes, plus JSON over HTTP to both sides.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TaskInfo } from '../../coordinator/protocol/index.js'
import { startDaemon, type Daemon } from './daemon.js'

export interface FleetMember {
  name: string
  dir: string
  args: string[]
  daemon: Daemon
  httpUrl: string
}

export async function http<T>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }> {
  const type = body instanceof Uint8Array ? 'application/octet-stream' : 'application/json'
  const init: RequestInit = body === undefined ? { method } : { method, headers: { 'content-type': type }, body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body) }
  const res = await fetch(url, init)
  const text = await res.text()
  return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T }
}

/** Registers the coordinator in the cloud shim and writes its join file. */
export async function provision(cloudUrl: string, dir: string, name: string, attributes: Record<string, string>, tags: string[] = []): Promise<string> {
  const r = await http<unknown>('POST', `${cloudUrl}/v1/coordinators`, { name, attributes, tags })
  if (r.status !== 201) throw new Error(`provisioning ${name}: ${r.status} ${JSON.stringify(r.body)}`)
  const file = join(dir, `${name}.join.json`)
  writeFileSync(file, JSON.stringify(r.body), { mode: 0o600 })
  return file
}

export interface MemberOptions {
  name: string
  dir: string
  joinFile: string
  trustedKeyFiles: string[]
  healthCheckMs: number
}

/** `edge-coordinator start --join FILE --data-dir DIR` with a config trusting the given keys. */
export async function startMember(o: MemberOptions): Promise<FleetMember> {
  const config = join(o.dir, `${o.name}.config.json`)
  writeFileSync(config, JSON.stringify({
    log: { level: 'info' },
    tasks: { trustedKeys: o.trustedKeyFiles, allowUnsigned: false },
    cloud: { deploy: { healthCheckMs: o.healthCheckMs, downloadAttempts: 3 } },
  }))
  const args = ['--config', config, '--join', o.joinFile, '--data-dir', join(o.dir, o.name)]
  return launch(o.name, o.dir, args)
}

export async function launch(name: string, dir: string, args: string[]): Promise<FleetMember> {
  const daemon = await startDaemon(args)
  return { name, dir, args, daemon, httpUrl: `http://127.0.0.1:${daemon.endpoints.http.port}` }
}

/** name → version of the tasks installed on a coordinator, from its local API. */
export async function localTasks(m: FleetMember): Promise<Record<string, string>> {
  const r = await http<{ tasks: TaskInfo[] }>('GET', `${m.httpUrl}/v1/tasks`)
  return Object.fromEntries(r.body.tasks.map((t) => [t.name, `${t.version} ${t.state}`]))
}

export async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
