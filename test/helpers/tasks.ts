import { generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import { pino } from 'pino'
import { Broker, PolicyEngine, listenTcp, type Listener } from '../../coordinator/broker/index.js'
import { systemClock } from '../../coordinator/core/clock.js'
import type { Logger } from '../../coordinator/core/log.js'
import { encodeBundle, type TaskManifestInput } from '../../coordinator/protocol/index.js'
import { ShadowService } from '../../coordinator/shadow/index.js'
import { DeviceStore, ShadowStore, createBrokerPersistence, openDatabase, type Db, type SqliteBrokerPersistence } from '../../coordinator/store/index.js'
import { TaskService, type TaskServiceOptions } from '../../coordinator/tasks/index.js'
import { TaskStore } from '../../coordinator/tasks/task-store.js'
import { tempDir } from './tmp.js'

/** Task code the way esbuild emits an IIFE bundle with globalName __edgeTask. */
export const iife = (body: string): string => `var __edgeTask = (() => { const exports = {}; ${body}; return exports })()`

/** A manifest with an invoke trigger and small limits; `extra` replaces whole sections. */
export function manifest(name: string, extra: Partial<TaskManifestInput> = {}): TaskManifestInput {
  return { name, version: '1.0.0', entry: 'index.js', triggers: [{ type: 'invoke' }], ...extra }
}

export function bundle(m: TaskManifestInput, body: string, signer?: { privateKeyPem: string }): Uint8Array {
  return encodeBundle({ manifestText: JSON.stringify(m), code: iife(body) }, signer)
}

/** A task whose handler returns its version and the payload it got. */
export const echoBody = `exports.handler = async (event, ctx) => ({ version: ctx.task.version, payload: event.payload })`

export function ed25519Keys(): { publicKeyPem: string; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  return { publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }
}

/** A pino logger writing JSON records into an array, for asserting what reached the daemon log. */
export function capturingLogger(): { log: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = []
  const log = pino({ level: 'debug' }, { write: (line: string) => records.push(JSON.parse(line) as Record<string, unknown>) })
  return { log, records }
}

export interface TaskHarness {
  dir: string
  db: Db
  broker: Broker
  shadows: ShadowService
  devices: DeviceStore
  service: TaskService
  options: TaskServiceOptions
  /** Closes the service and starts a new one on the same database and bundle directory. */
  restart(overrides?: Partial<TaskServiceOptions>): Promise<TaskService>
  /** An MQTT listener on 127.0.0.1 (anonymous loopback devices get the default device policy). */
  listen(): Promise<string>
  close(): Promise<void>
}

const quickRestart = { initialBackoffMs: 20, maxBackoffMs: 200, brokenAfter: 5, windowMs: 60_000 }

/** A real broker (SQLite persistence), shadow service, device registry and task service in a temp dir. */
export async function taskHarness(overrides: Partial<TaskServiceOptions> = {}): Promise<TaskHarness> {
  const tmp = tempDir('edge-tasks-')
  const db = openDatabase(join(tmp.dir, 'coordinator.db'))
  const brokerDb = openDatabase(join(tmp.dir, 'broker.db'), { synchronous: 'normal' })
  const persistence: SqliteBrokerPersistence = createBrokerPersistence(brokerDb)
  const devices = new DeviceStore(db)
  const log = pino({ level: 'silent' })
  const broker = await Broker.create({
    persistence,
    identity: { findDevice: (name) => devices.get(name), allowAnonymousLoopback: true, anonymousPolicies: [] },
    policy: new PolicyEngine({ policies: [] }),
    log,
  })
  const shadows = new ShadowService({
    store: new ShadowStore(db), bus: broker, limits: { maxStateBytes: 8192, maxDepth: 6, maxClientTokenBytes: 64 },
    maxRequestsPerSecondPerThing: 0, clock: systemClock, log,
  })
  await shadows.start()
  const options: TaskServiceOptions = {
    db, bundleDir: join(tmp.dir, 'bundles'), bus: broker, shadows, devices, trust: { trustedKeys: [], allowUnsigned: true },
    maxConcurrentCalls: 4, maxBundleBytes: 1024 * 1024, clock: systemClock, log, restart: quickRestart, drainTimeoutMs: 5000, ...overrides,
  }
  const listeners: Listener[] = []
  const h: TaskHarness = {
    dir: tmp.dir, db, broker, shadows, devices, options,
    service: new TaskService(options),
    restart: async (more = {}) => {
      await h.service.close()
      h.options = { ...options, ...more }
      h.service = new TaskService(h.options)
      await h.service.start()
      return h.service
    },
    listen: async () => {
      const listener = await listenTcp({ host: '127.0.0.1', port: 0 }, broker.handle)
      listeners.push(listener)
      return `mqtt://127.0.0.1:${listener.address.port}`
    },
    close: async () => {
      await h.service.close()
      for (const l of listeners) await l.close()
      await shadows.close()
      await broker.close()
      await persistence.destroy()
      brokerDb.close()
      db.close()
      tmp.remove()
    },
  }
  await h.service.start()
  return h
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function eventually(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** A task's stored state value, read straight from its table. */
export function kvValue(db: Db, task: string, key: string): unknown {
  return new TaskStore(db).kvGet(task, key)
}
