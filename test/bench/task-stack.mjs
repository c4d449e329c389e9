// The task runtime's stack for the task figures, built from dist/ the way the coordinator builds it
// (broker with its SQLite persistence and policy hooks, shadow service, device registry, task
// service), but with the broker in reach: the baselines subscribe on the same broker in-process,
// which the Coordinator class does not expose. Also: task bundles from a handler body, and the
// same handler body run as a plain in-process function.
import { join } from 'node:path'

const dist = (path) => new URL(`../../dist/${path}`, import.meta.url).href
const { Broker, PolicyEngine, listenTcp } = await import(dist('coordinator/broker/index.js'))
const { systemClock } = await import(dist('coordinator/core/clock.js'))
const { silentLogger } = await import(dist('coordinator/core/log.js'))
const { encodeBundle } = await import(dist('coordinator/protocol/index.js'))
const { ShadowService } = await import(dist('coordinator/shadow/index.js'))
const { DeviceStore, ShadowStore, createBrokerPersistence, openDatabase } = await import(dist('coordinator/store/index.js'))
const { TaskService } = await import(dist('coordinator/tasks/index.js'))
const { mqttEvent } = await import(dist('coordinator/tasks/triggers.js'))

/** Task code the way `edge-task pack` emits it: an IIFE assigning its exports to __edgeTask. */
export const iife = (body) => `var __edgeTask = (() => { const exports = {}; ${body}; return exports })()`

/** An unsigned bundle (the stacks here allow unsigned ones); `extra` replaces manifest sections. */
export function taskBundle(name, body, extra = {}) {
  const manifest = { name, version: '1.0.0', entry: 'index.js', triggers: [{ type: 'invoke' }], ...extra }
  return encodeBundle({ manifestText: JSON.stringify(manifest), code: iife(body) })
}

/**
 * The same handler body as a plain function in this realm, with a ctx that does what the host API
 * does for publish (objects as JSON, straight onto the bus), minus the permission check.
 */
export function plainHandler(body, bus) {
  const exports = {}
  new Function('exports', body)(exports)
  const ctx = {
    task: { name: 'plain', version: '1.0.0' },
    config: {},
    publish: async (topic, payload, opts) => {
      const bytes = typeof payload === 'string' || payload instanceof Uint8Array ? Buffer.from(payload) : JSON.stringify(payload)
      await bus.publish(topic, bytes, opts?.qos === 1 ? 1 : 0)
    },
    log: { debug() {}, info() {}, warn() {}, error() {} },
  }
  return {
    call: (event) => exports.handler(event, ctx),
    /** As the mqtt trigger does: bytes copied, JSON parsed. */
    onMessage: (topic, payload) => exports.handler(mqttEvent(topic, payload), ctx),
  }
}

/**
 * Starts the stack in `dataDir`. `policies` / `anonymousPolicies` as in the coordinator's config;
 * `restart` overrides the restart policy, `caps` the tasks.caps the manifests' limits are granted up to;
 * `serviceOptions` go to TaskService as they are.
 */
export async function startTaskStack({ dataDir, maxConcurrentCalls = 8, policies = [], anonymousPolicies = [], restart, caps, maxBundleBytes = 5 * 1024 * 1024, serviceOptions = {} }) {
  const log = silentLogger()
  const db = openDatabase(join(dataDir, 'coordinator.db'))
  const brokerDb = openDatabase(join(dataDir, 'broker.db'), { synchronous: 'normal' })
  const persistence = createBrokerPersistence(brokerDb)
  const devices = new DeviceStore(db)
  const broker = await Broker.create({
    persistence,
    identity: { findDevice: (name) => devices.get(name), allowAnonymousLoopback: true, anonymousPolicies },
    policy: new PolicyEngine({ policies }),
    log,
  })
  const shadows = new ShadowService({
    store: new ShadowStore(db), bus: broker, limits: { maxStateBytes: 8192, maxDepth: 6, maxClientTokenBytes: 64 },
    maxRequestsPerSecondPerThing: 0, clock: systemClock, log,
  })
  await shadows.start()
  const service = new TaskService({
    db, bundleDir: join(dataDir, 'bundles'), bus: broker, shadows, devices, trust: { trustedKeys: [], allowUnsigned: true },
    maxConcurrentCalls, maxBundleBytes, clock: systemClock, log, ...(restart === undefined ? {} : { restart }), ...(caps === undefined ? {} : { caps }), ...serviceOptions,
  })
  await service.start()
  const listeners = []
  return {
    broker,
    service,
    /** An MQTT listener on 127.0.0.1, as the coordinator's (TCP_NODELAY on); resolves with its port. */
    listen: async () => {
      const listener = await listenTcp({ host: '127.0.0.1', port: 0 }, broker.aedes.handle)
      listeners.push(listener)
      return listener.address.port
    },
    close: async () => {
      for (const l of listeners) await l.close()
      await service.close()
      await shadows.close()
      await broker.close()
      await persistence.destroy()
      brokerDb.close()
      db.close()
    },
  }
}
