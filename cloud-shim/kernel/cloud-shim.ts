/**
 * The cloud shim's composition root: builds every service, starts them in dependency order and
 * stops them in reverse. It reuses the coordinator's building blocks (broker, shadow service,
 * stores, PKI, API server) and adds the registry, coordinator identities and the bundle catalog.
 */
import { rmSync, writeFileSync } from 'node:fs'
import { startApi } from '../../coordinator/api/index.js'
import { Broker, reportQueueFull, listenTcp, listenTls, type Listener, type LocalBus } from '../../coordinator/broker/index.js'
import { systemClock, type Clock } from '../../coordinator/core/clock.js'
import type { Logger } from '../../coordinator/core/log.js'
import { caFiles, ensureApiToken, readServer, type KeyPairPem } from '../../coordinator/pki/index.js'
import { ShadowService } from '../../coordinator/shadow/index.js'
import { acquireDaemonLock, createBrokerPersistence, openDatabase, prepareDataDir, ShadowStore, type Db, type SqliteBrokerPersistence } from '../../coordinator/store/index.js'
import { cloudRoutes, type Provision } from '../api/index.js'
import { MqttBus, withoutCredentials } from '../bus/index.js'
import { Catalog } from '../catalog/index.js'
import { DeploymentService, ShadowDelivery } from '../deploy/index.js'
import { anonymousLoopbackAllowed, type CloudConfig } from '../config/index.js'
import { coordinatorIdentity, CredentialStore, provisionCoordinator, RegistryPolicy } from '../identity/index.js'
import { Registry, serveSelfRegistration } from '../registry/index.js'
import {
  advertisedUrls, apiTokenFile, brokerDatabaseFile, bundlesDir, cloudDatabaseFile, cloudWebGuard, describeRunning, endpointsFile, ensureCa,
  requireUrl, type CloudEndpoints, type CloudEndpointsFile,
} from './files.js'

/** How soon a change made by another process (the CLI) reaches events, policies and connections. */
const CATCH_UP_MS = 1000
/** Requests other than uploads are small; the bundle limit sets the real cap. */
const API_MIN_BODY_BYTES = 128 * 1024

export class CloudShim {
  readonly endpoints: CloudEndpoints = {}
  readonly #config: CloudConfig
  readonly #log: Logger
  readonly #clock: Clock
  readonly #listeners: Listener[] = []
  readonly #stops: Array<() => Promise<void> | void> = []
  #registry: Registry | undefined
  #catalog: Catalog | undefined
  #shadows: ShadowService | undefined
  #bus: LocalBus | undefined
  #deployments: DeploymentService | undefined
  #ready = false
  #closing: Promise<void> | undefined

  private constructor(config: CloudConfig, log: Logger, clock: Clock) {
    this.#config = config
    this.#log = log
    this.#clock = clock
  }

  static async start(config: CloudConfig, log: Logger, clock: Clock = systemClock): Promise<CloudShim> {
    const shim = new CloudShim(config, log, clock)
    try {
      await shim.#start()
    } catch (err) {
      await shim.close()
      throw err
    }
    return shim
  }

  /** The services others build on (deployments, sync); available once start() resolved. */
  get registry(): Registry {
    return started(this.#registry)
  }

  get catalog(): Catalog {
    return started(this.#catalog)
  }

  get shadows(): ShadowService {
    return started(this.#shadows)
  }

  get bus(): LocalBus {
    return started(this.#bus)
  }

  get deployments(): DeploymentService {
    return started(this.#deployments)
  }

  async #start(): Promise<void> {
    const { dataDir, store, bundles } = this.#config
    prepareDataDir(dataDir, this.#log)
    // Before any database opens; released last, since stops run in reverse.
    const lock = acquireDaemonLock(dataDir, () => describeRunning(dataDir))
    this.#stops.push(() => lock.release())
    const db = openDatabase(cloudDatabaseFile(dataDir), { synchronous: store.synchronous })
    this.#stops.push(() => {
      db.close()
    })
    const registry = (this.#registry = new Registry({ db, clock: this.#clock, log: this.#log.child({ module: 'registry' }) }))
    const credentials = new CredentialStore(db)
    this.#catalog = new Catalog({
      db, dir: bundlesDir(dataDir), trust: { trustedKeys: bundles.trustedKeys, allowUnsigned: bundles.allowUnsigned },
      maxBundleBytes: bundles.maxBundleBytes, clock: this.#clock, log: this.#log.child({ module: 'catalog' }),
    })
    const ca = await ensureCa(this.#config, this.#log)
    const external = this.#config.broker
    const bus = (this.#bus = external === null ? await this.#embeddedBroker(registry, credentials, ca) : await this.#externalBroker(external))
    await this.#startShadows(db, bus)
    const unsubscribe = await serveSelfRegistration(bus, registry, this.#log.child({ module: 'registration' }))
    this.#stops.push(unsubscribe)
    const deployments = this.#createDeployments(db, registry)
    await this.#startApi(registry, credentials, ca)
    // After the API listens: desired documents name its URL for bundle downloads.
    await deployments.start()
    this.#stops.push(() => deployments.close())
    const timer = setInterval(() => registry.catchUp(), CATCH_UP_MS).unref()
    this.#stops.push(() => clearInterval(timer))
    this.#ready = true
    this.#announce()
  }

  async #embeddedBroker(registry: Registry, credentials: CredentialStore, ca: KeyPairPem): Promise<Broker> {
    const { dataDir, store, listeners, brokerLimits } = this.#config
    const brokerDb = openDatabase(brokerDatabaseFile(dataDir), { synchronous: store.brokerSynchronous })
    this.#stops.push(() => {
      brokerDb.close()
    })
    const log = this.#log.child({ module: 'broker' })
    const { maxQueuedPerClient } = brokerLimits
    const persistence: SqliteBrokerPersistence = createBrokerPersistence(brokerDb, { maxQueuedPerClient, onQueueFull: reportQueueFull(log, maxQueuedPerClient) })
    // aedes never destroys its persistence itself.
    this.#stops.push(() => persistence.destroy())
    const policy = new RegistryPolicy(registry)
    const broker = await Broker.create({
      persistence,
      identity: {
        findDevice: (name) => coordinatorIdentity(registry, credentials, name),
        allowAnonymousLoopback: anonymousLoopbackAllowed(this.#config),
        anonymousPolicies: [],
      },
      policy,
      log,
      limits: brokerLimits,
      heartbeatIntervalMs: this.#config.embeddedBroker.heartbeatIntervalMs,
    })
    this.#stops.push(() => broker.close())
    // A coordinator removed (its credentials go with it) or turned into a device is disconnected now.
    registry.on('thingRemoved', (thing) => {
      if (thing.kind === 'coordinator') broker.revalidateClients()
    })
    registry.on('thingChanged', (thing, previous) => {
      if (previous?.kind === 'coordinator' && thing.kind !== 'coordinator') broker.revalidateClients()
    })
    if (listeners.mqtt !== null) this.#add(await listenTcp(listeners.mqtt, broker.handle))
    if (listeners.mqtts !== null) {
      const server = readServer(caFiles(dataDir))
      this.#add(await listenTls(listeners.mqtts, { certPem: server.certPem, keyPem: server.keyPem, caPem: ca.certPem }, broker.handle, broker.listenerBounds()))
    }
    return broker
  }

  async #externalBroker(b: NonNullable<CloudConfig['broker']>): Promise<MqttBus> {
    const bus = await MqttBus.connect({ ...b, log: this.#log.child({ module: 'bus' }) })
    this.#stops.push(() => bus.close())
    return bus
  }

  async #startShadows(db: Db, bus: LocalBus): Promise<void> {
    const { shadow } = this.#config
    const shadows = (this.#shadows = new ShadowService({
      store: new ShadowStore(db),
      bus,
      limits: { maxStateBytes: shadow.maxStateBytes, maxDepth: shadow.maxDepth, maxClientTokenBytes: 64, maxMetadataBytes: shadow.maxMetadataBytes ?? undefined },
      maxRequestBytes: shadow.maxRequestBytes,
      maxNamedShadowsPerThing: shadow.maxNamedShadowsPerThing,
      maxRequestsPerSecondPerThing: shadow.maxRequestsPerSecondPerThing,
      clock: this.#clock,
      log: this.#log.child({ module: 'shadow' }),
    }))
    await shadows.start()
    this.#stops.push(() => shadows.close())
  }

  #createDeployments(db: Db, registry: Registry): DeploymentService {
    const { shadow } = this.#config
    const log = this.#log.child({ module: 'deploy' })
    const delivery = new ShadowDelivery(this.shadows, log)
    return (this.#deployments = new DeploymentService({
      db, registry, catalog: this.catalog, delivery, reports: (handler) => delivery.onReport(handler),
      limits: { maxStateBytes: shadow.maxStateBytes, maxDepth: shadow.maxDepth, maxClientTokenBytes: 64 },
      httpUrl: () => advertisedUrls(this.#config, this.endpoints).httpUrl, clock: this.#clock, log,
    }))
  }

  async #startApi(registry: Registry, credentials: CredentialStore, ca: KeyPairPem): Promise<void> {
    const { listeners, dataDir, bundles } = this.#config
    if (listeners.http === null) return
    const provision: Provision = (req) => {
      const urls = advertisedUrls(this.#config, this.endpoints)
      return provisionCoordinator({ registry, credentials, ca, clock: this.#clock }, {
        ...req,
        mqttUrl: req.mqttUrl ?? requireUrl(urls.mqttUrl, 'MQTT', '"mqttUrl"'),
        httpUrl: req.httpUrl ?? requireUrl(urls.httpUrl, 'HTTP', '"httpUrl"'),
      })
    }
    this.#add(await startApi(listeners.http, {
      routes: cloudRoutes({ registry, catalog: this.catalog, shadows: this.shadows, provision, deployments: this.deployments, isReady: () => this.#ready }),
      token: ensureApiToken(apiTokenFile(dataDir), this.#log),
      web: cloudWebGuard(this.#config),
      maxBodyBytes: Math.max(API_MIN_BODY_BYTES, bundles.maxBundleBytes),
      log: this.#log.child({ module: 'api' }),
    }))
  }

  #announce(): void {
    const { dataDir, broker } = this.#config
    const external = broker === null ? {} : { broker: withoutCredentials(broker.url) }
    const file: CloudEndpointsFile = { pid: process.pid, endpoints: this.endpoints, ...external, advertised: advertisedUrls(this.#config, this.endpoints) }
    writeFileSync(endpointsFile(dataDir), JSON.stringify(file))
    this.#log.info({ endpoints: this.endpoints, ...external, dataDir }, 'cloud shim ready')
  }

  #add(l: Listener): void {
    this.#listeners.push(l)
    this.endpoints[l.name as keyof CloudEndpoints] = l.address
  }

  /** Graceful stop: no new connections, queued shadow work committed, bus closed, databases closed. */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    const wasReady = this.#ready
    this.#ready = false
    for (const l of this.#listeners.splice(0).reverse()) await l.close()
    for (const stop of this.#stops.splice(0).reverse()) await stop()
    if (!wasReady) return
    rmSync(endpointsFile(this.#config.dataDir), { force: true })
    this.#log.info('cloud shim stopped')
  }
}

function started<T>(service: T | undefined): T {
  if (service === undefined) throw new Error('the cloud shim is not started')
  return service
}
