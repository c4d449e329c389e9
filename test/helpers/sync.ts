import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { JoinDocument } from '../../coordinator/protocol/index.js'
import { startCloudShim, type RunningCloudShim } from './cloud-shim.js'

export interface ShadowReply {
  status: number
  body: Record<string, unknown>
}

type Where = { httpUrl: string }

const query = (shadowName?: string): string => (shadowName === undefined ? '' : `?name=${encodeURIComponent(shadowName)}`)

/**
 * A shadow over the AWS data-plane REST API, which both the coordinator and the cloud shim serve.
 * Polling counts against the per-thing request rate limit, so a 429 is waited out here.
 */
export async function getShadow(at: Where, thing: string, shadowName?: string): Promise<ShadowReply> {
  for (;;) {
    const res = await fetch(`${at.httpUrl}/things/${thing}/shadow${query(shadowName)}`)
    const body = (await res.json()) as Record<string, unknown>
    if (res.status !== 429) return { status: res.status, body }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export async function updateShadow(at: Where, thing: string, state: object, shadowName?: string): Promise<ShadowReply> {
  const res = await fetch(`${at.httpUrl}/things/${thing}/shadow${query(shadowName)}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ state }) })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

export async function deleteShadow(at: Where, thing: string, shadowName?: string): Promise<ShadowReply> {
  const res = await fetch(`${at.httpUrl}/things/${thing}/shadow${query(shadowName)}`, { method: 'DELETE' })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

/** desired/reported of a shadow, or null when there is none. */
export async function stateAt(at: Where, thing: string, shadowName?: string): Promise<{ desired?: unknown; reported?: unknown } | null> {
  const r = await getShadow(at, thing, shadowName)
  if (r.status === 404) return null
  if (r.status !== 200) throw new Error(`GET shadow ${thing}: ${r.status} ${JSON.stringify(r.body)}`)
  const state = r.body['state'] as { desired?: unknown; reported?: unknown }
  return { ...(state.desired === undefined ? {} : { desired: state.desired }), ...(state.reported === undefined ? {} : { reported: state.reported }) }
}

export async function versionAt(at: Where, thing: string, shadowName?: string): Promise<number | null> {
  const r = await getShadow(at, thing, shadowName)
  return r.status === 404 ? null : (r.body['version'] as number)
}

/** Polls an async condition until it holds. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Polls until the shadow's state equals `expected` (null: no shadow) on the given side. */
export async function untilState(at: Where, thing: string, expected: object | null, timeoutMs: number, shadowName?: string): Promise<void> {
  let last: unknown
  try {
    await until(async () => {
      last = await stateAt(at, thing, shadowName)
      return JSON.stringify(sortKeys(last)) === JSON.stringify(sortKeys(expected))
    }, timeoutMs)
  } catch (err) {
    const where = `${thing}${shadowName === undefined ? '' : `/${shadowName}`} at ${at.httpUrl}`
    throw new Error(`${where}: expected ${JSON.stringify(expected)}, last saw ${JSON.stringify(last)}`, { cause: err })
  }
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (typeof v !== 'object' || v === null) return v
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]))
}

/**
 * Provisions a coordinator on the cloud shim (POST /v1/coordinators), registers `devices` under it
 * as the operator does (a coordinator can confirm its devices, not claim new ones), and writes its
 * join file.
 */
export async function provision(cloud: RunningCloudShim, name: string, dir: string, devices: readonly string[] = []): Promise<string> {
  const res = await fetch(`${cloud.httpUrl}/v1/coordinators`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) })
  if (res.status !== 201) throw new Error(`provisioning ${name} failed: ${res.status} ${await res.text()}`)
  for (const device of devices) {
    const put = await fetch(`${cloud.httpUrl}/v1/things/${device}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'device', coordinator: name }) })
    if (put.status !== 201 && put.status !== 200) throw new Error(`registering ${device} under ${name} failed: ${put.status} ${await put.text()}`)
  }
  const file = join(dir, `${name}.join.json`)
  writeFileSync(file, JSON.stringify((await res.json()) as JoinDocument))
  return file
}

/**
 * The cloud shim with its MQTT listeners off: coordinators cannot reach it, while operators
 * still change shadows over HTTP. This is how a test changes the cloud side during a link cut.
 */
export function startUnreachableCloudShim(dataDir: string): Promise<RunningCloudShim> {
  return startCloudShim({ listeners: { mqtt: null, mqtts: null, http: { port: 0 } } }, { dataDir })
}

/** The cloud shim back on the mqtts port coordinators' join files name. */
export function restartCloudShim(dataDir: string, mqttsPort: number): Promise<RunningCloudShim> {
  return startCloudShim({ listeners: { mqtt: { port: 0 }, mqtts: { port: mqttsPort }, http: { port: 0 } } }, { dataDir })
}
