import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { systemClock, type Clock } from '../core/clock.js'
import { K, type Logger } from '../core/log.js'
import { ConfigError } from '../core/errors.js'
import { anonymousLoopbackAllowed, isLoopbackHost, type CoordinatorConfig } from '../config/index.js'
import { acquireDaemonLock, describeHolder, openDatabase, prepareDataDir, DeviceStore, ShadowStore, createBrokerPersistence, type DaemonLock, type Db, type SqliteBrokerPersistence } from '../store/index.js'
import { caFiles, checkCa, defaultServerHosts, initCa, readCa, readServer } from '../pki/ca-files.js'
import { ensureApiToken } from '../pki/api-token.js'
import { refusalCounter } from '../core/web.js'
import { coordinatorWebGuard } from './web.js'
import { Broker, PolicyEngine, reportQueueFull, listenTcp, listenTls, listenWebSocket, type Listener, type ListenAddress } from '../broker/index.js'
import { ShadowService } from '../shadow/index.js'
import { discoveryRoutes, healthRoutes, infoRoutes, shadowRoutes, startApi, taskRoutes, type CoordinatorInfo, type DiscoveryInfo } from '../api/index.js'
import { TaskService } from '../tasks/index.js'
import { connectCloud, type CloudConnection } from './cloud.js'
import { connectHardware, type HardwareConnection } from './hardware.js'
import { startSync } from './sync.js'
import { Deployments, type DeployAgent } from '../deploy/index.js'
import type { SyncService } from '../sync/index.js'

/** How soon a device removed with the CLI is disconnected. */
const REGISTRY_POLL_MS = 1000
/** Shadow requests are small; bundles set the real cap. */
const API_MIN_BODY_BYTES = 128 * 1024

export type Endpoints = Partial<Record<'mqtt' | 'mqtts' | 'ws' | 'http', ListenAddress>>

/** What `<dataDir>/endpoints.json` holds while the daemon runs, so the CLI and tools find it. */
export interface EndpointsFile {
  pid: number
  endpoints: Endpoints
}

export const endpointsFile = (dataDir: string): string => join(dataDir, 'endpoints.json')
/** "pid 1234 (mqtt 127.0.0.1:1883, http 127.0.0.1:8087)": the daemon holding a data dir, from its endpoints file. */
function describeRunning(dataDir: string): string {
  try {
    const { pid, endpoints } = JSON.parse(readFileSync(endpointsFile(dataDir), 'utf8')) as EndpointsFile
    return describeHolder(pid, endpoints)
  } catch {
    return 'another daemon (it has not written its endpoints yet)'
  }
}

export const databaseFile = (dataDir: string): string => join(dataDir, 'coordinator.db')
export const brokerDatabaseFile = (dataDir: string): string => join(dataDir, 'broker.db')
export const apiTokenFile = (dataDir: string): string => join(dataDir, 'api-token')

/**
 * The composition root: builds every service, starts them in dependency order and stops them in
 * reverse. Nothing below this constructs services.
 */
export class Coordinator {
  readonly endpoints: Endpoints = {}
  readonly #config: CoordinatorConfig
  readonly #log: Logger
  readonly #listeners: Listener[] = []
  #db: Db | undefined
  /** The CA certificate discovery hands out: read and checked once at start, never a file changed since. */
  #caPem: string | null = null
  #lock: DaemonLock | undefined
  #brokerDb: Db | undefined
  #persistence: SqliteBrokerPersistence | undefined
  #broker: Broker | undefined
  #shadows: ShadowService | undefined
  #tasks: TaskService | undefined
  #cloud: CloudConnection | null = null
  #hardware: HardwareConnection | undefined
  #sync: SyncService | null = null
  #deploy: DeployAgent | null = null
  #ready = false
  #registryWatch: NodeJS.Timeout | undefined
  #closing: Promise<void> | undefined

  private constructor(config: CoordinatorConfig, log: Logger) {
    this.#config = config
    this.#log = log
  }

  /** The cloud connection, or null when the coordinator runs on its own (no join file). */
  get cloud(): CloudConnection | null {
    return this.#cloud
  }

  /** Shadow sync with the cloud, or null without a cloud or shadows to sync. */
  get sync(): SyncService | null {
    return this.#sync
  }

  /** The board and the local hardware adapters (hardware/README.md); undefined until started. */
  get hardware(): HardwareConnection | undefined {
    return this.#hardware
  }

  /** Capability tags fleet deployments target (board=, arch=, memory=, gpio, i2c, serial, camera). */
  capabilities(): string[] {
    return this.#hardware?.info().capabilities ?? []
  }

  /** GET /v1/info: the board, its capability tags, the limits in force and the hardware adapters. */
  info(): CoordinatorInfo | null {
    return this.#hardware?.info() ?? null
  }

  static async start(config: CoordinatorConfig, log: Logger, clock: Clock = systemClock): Promise<Coordinator> {
    const c = new Coordinator(config, log)
    try {
      await c.#start(clock)
    } catch (err) {
      await c.close()
      throw err
    }
    return c
  }

  async #start(clock: Clock): Promise<void> {
    const config = this.#config
    // Policies first: a bad resource must stop start-up before anything is opened.
    const policy = new PolicyEngine({ policies: [...config.policies] })
    prepareDataDir(config.dataDir, this.#log)
    // Before any database is opened: a second daemon must not touch the first one's state.
    this.#lock = acquireDaemonLock(config.dataDir, () => describeRunning(config.dataDir))
    const db = (this.#db = openDatabase(databaseFile(config.dataDir), { synchronous: config.store.synchronous }))
    const devices = new DeviceStore(db)
    this.#brokerDb = openDatabase(brokerDatabaseFile(config.dataDir), { synchronous: config.store.brokerSynchronous })
    const brokerLog = this.#log.child({ module: 'broker' })
    const { maxQueuedPerClient } = config.broker
    this.#persistence = createBrokerPersistence(this.#brokerDb, { maxQueuedPerClient, onQueueFull: reportQueueFull(brokerLog, maxQueuedPerClient) })
    this.#broker = await Broker.create({
      persistence: this.#persistence,
      identity: {
        findDevice: (name) => devices.get(name),
        allowAnonymousLoopback: anonymousLoopbackAllowed(config),
        anonymousPolicies: config.auth.anonymousPolicies,
      },
      policy,
      log: brokerLog,
      concurrency: config.broker.concurrency,
      limits: config.broker,
      heartbeatIntervalMs: config.broker.heartbeatIntervalMs,
    })
    this.#shadows = new ShadowService({
      store: new ShadowStore(db),
      bus: this.#broker,
      limits: { maxStateBytes: config.shadow.maxStateBytes, maxDepth: config.shadow.maxDepth, maxClientTokenBytes: 64, maxMetadataBytes: config.shadow.maxMetadataBytes ?? undefined },
      maxRequestBytes: config.shadow.maxRequestBytes,
      maxNamedShadowsPerThing: config.shadow.maxNamedShadowsPerThing,
      maxRequestsPerSecondPerThing: config.shadow.maxRequestsPerSecondPerThing,
      clock,
      log: this.#log.child({ module: 'shadow' }),
    })
    await this.#shadows.start()
    // Before tasks: a task's first shadow update must find the adapter listening.
    this.#hardware = await connectHardware(config, this.#shadows, this.#log)
    const deployments = new Deployments(db, clock, this.#log.child({ module: 'deploy' }))
    this.#tasks = new TaskService({
      db,
      bundleDir: join(config.dataDir, 'bundles'),
      bus: this.#broker,
      shadows: this.#shadows,
      devices,
      trust: { trustedKeys: readTrustedKeys(config.tasks.trustedKeys), allowUnsigned: config.tasks.allowUnsigned },
      maxConcurrentCalls: config.tasks.maxConcurrentCalls,
      maxBundleBytes: config.tasks.maxBundleBytes,
      clock,
      log: this.#log.child({ module: 'tasks' }),
      limits: { maxTasks: config.tasks.maxTasks, maxMemoryMb: config.tasks.maxMemoryMb, memoryBudgetMb: config.tasks.memoryBudgetMb },
      hostLimits: config.tasks.hostLimits,
      caps: config.tasks.caps,
      bounds: { maxBridgeBytes: config.tasks.maxBridgeBytes, timerCpuMsPerSecond: config.tasks.timerCpuMsPerSecond },
      drainTimeoutMs: config.tasks.drainTimeoutMs,
      retainBundles: deployments.retainedBundles,
    })
    // Installed tasks start from local state alone: no network is needed to come back up.
    deployments.recover()
    await this.#tasks.start()
    this.#cloud = await connectCloud(config, this.#broker, clock, this.#log)
    this.#sync = await startSync(config, this.#cloud, this.#shadows, db, clock, this.#log)
    this.#deploy = await deployments.startAgent(this.#cloud, this.#tasks, { dataDir: config.dataDir, maxBundleBytes: config.tasks.maxBundleBytes, ...config.cloud.deploy })
    await this.#listen(this.#broker, this.#shadows, this.#tasks)
    this.#registryWatch = watchRegistry(db, this.#broker)
    this.#ready = true
    writeFileSync(endpointsFile(config.dataDir), JSON.stringify({ pid: process.pid, endpoints: this.endpoints } satisfies EndpointsFile))
    this.#log.info({ endpoints: this.endpoints, dataDir: config.dataDir, anonymousLoopback: anonymousLoopbackAllowed(config) }, 'coordinator ready')
  }

  async #listen(broker: Broker, shadows: ShadowService, tasks: TaskService): Promise<void> {
    const { listeners, dataDir, auth } = this.#config
    const handle = broker.handle
    const bounds = broker.listenerBounds()
    if (listeners.mqtt !== null) this.#add(await listenTcp(listeners.mqtt, handle))
    const files = caFiles(dataDir)
    if (listeners.mqtts !== null) {
      if (!checkCa(files) || !existsSync(files.serverCert)) {
        const hosts = defaultServerHosts([listeners.mqtts.host, ...auth.serverCertHosts])
        await initCa(files, hosts)
        this.#log.info({ dir: files.dir, hosts }, 'created the coordinator CA and server certificate')
      }
      const server = readServer(files)
      this.#caPem = readCa(files).certPem
      this.#add(await listenTls(listeners.mqtts, { certPem: server.certPem, keyPem: server.keyPem, caPem: this.#caPem }, handle, bounds))
    } else if (checkCa(files)) {
      this.#caPem = readCa(files).certPem
    }
    const web = coordinatorWebGuard(this.#config)
    if (listeners.ws !== null) {
      const log = this.#log.child({ module: 'broker', [K.listener]: 'ws' })
      this.#add(await listenWebSocket(listeners.ws, handle, bounds, web, refusalCounter(log, 'websocket upgrade refused')))
    }
    if (listeners.http !== null) {
      const routes = [
        ...healthRoutes(() => this.#ready), ...shadowRoutes(shadows), ...discoveryRoutes(() => this.#discovery()), ...taskRoutes(tasks), ...infoRoutes(() => this.info()),
      ]
      this.#add(await startApi(listeners.http, {
        routes,
        token: ensureApiToken(apiTokenFile(dataDir), this.#log),
        web,
        maxBodyBytes: Math.max(API_MIN_BODY_BYTES, this.#config.tasks.maxBundleBytes),
        log: this.#log.child({ module: 'api' }),
      }))
    }
  }

  /** Addresses devices can use; a wildcard bind is advertised under the certificate's host names. */
  #discovery(): DiscoveryInfo {
    const { auth, listeners, dataDir } = this.#config
    const hosts = (bound: string): string[] => (bound === '0.0.0.0' || bound === '::' ? defaultServerHosts(auth.serverCertHosts).filter((h) => !isLoopbackHost(h)) : [bound])
    const endpoints: DiscoveryInfo['endpoints'] = []
    for (const protocol of ['mqtt', 'mqtts', 'ws'] as const) {
      const at = this.endpoints[protocol]
      if (at === undefined) continue
      const path = protocol === 'ws' ? listeners.ws?.path : undefined
      for (const host of hosts(at.host)) endpoints.push({ protocol, host, port: at.port, ...(path === undefined ? {} : { path }) })
    }
    return { endpoints, caPem: this.#caPem }
  }

  #add(l: Listener): void {
    this.#listeners.push(l)
    this.endpoints[l.name as keyof Endpoints] = l.address
  }

  /** Graceful stop: no new connections, queued shadow work committed, broker closed, DB closed. */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    const wasReady = this.#ready
    this.#ready = false
    clearInterval(this.#registryWatch)
    for (const l of this.#listeners.splice(0).reverse()) await l.close()
    // Sync first: its last steps still use the link, the outbox and the local shadows.
    await this.#sync?.close()
    await this.#deploy?.close()
    await this.#cloud?.close()
    await this.#tasks?.close()
    await this.#hardware?.close()
    await this.#shadows?.close()
    await this.#broker?.close()
    // aedes never destroys its persistence itself.
    await this.#persistence?.destroy()
    this.#brokerDb?.close()
    this.#db?.close()
    this.#lock?.release()
    if (!wasReady) return
    rmSync(endpointsFile(this.#config.dataDir), { force: true })
    this.#log.info('coordinator stopped')
  }
}

/** Each entry is a PEM public key, or the path of a file holding one. */
function readTrustedKeys(entries: readonly string[]): string[] {
  return entries.map((entry, i) => {
    if (entry.trimStart().startsWith('-----BEGIN')) return entry
    try {
      return readFileSync(entry, 'utf8')
    } catch (err) {
      throw new ConfigError(`tasks.trustedKeys.${i}: cannot read public key file '${entry}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  })
}

/** SQLite's data_version moves when another process (the CLI) commits to the registry. */
function watchRegistry(db: Db, broker: Broker): NodeJS.Timeout {
  let seen = db.pragma('data_version', { simple: true })
  const timer = setInterval(() => {
    const now = db.pragma('data_version', { simple: true })
    if (now === seen) return
    seen = now
    broker.revalidateClients()
  }, REGISTRY_POLL_MS)
  return timer.unref()
}
