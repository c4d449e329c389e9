import type { Clock } from '../core/clock.js'
import { K, type Logger } from '../core/log.js'
import type { ShadowRef } from '../protocol/index.js'
import type { LinkState } from '../cloud/index.js'
import { CloudSide, type CloudEvents, type SyncLink, type SyncOutbox } from './cloud-side.js'
import { SyncConflictError } from './errors.js'
import { LocalSide, type LocalChange, type LocalShadows } from './local-side.js'
import { resolveDocument, statesEqual, type SyncDirection } from './merge.js'
import { DeviceRegistration } from './registration.js'
import type { SyncStore } from './sync-store.js'
import { refKey, syncedDevices } from './targets.js'
import { SyncTokens } from './tokens.js'

export interface SyncServiceOptions {
  /** The coordinator's thing name: its own shadows need no device registration. */
  name: string
  targets: readonly ShadowRef[]
  direction: SyncDirection
  local: LocalShadows
  link: SyncLink
  outbox: SyncOutbox
  store: SyncStore
  clock: Clock
  log: Logger
  /** How long a cloud get or the device registration may take before the step fails. */
  requestTimeoutMs?: number
  /** A failed step is tried again after this long while the link stays up. */
  retryMs?: number
}

export const SYNC_DEFAULTS = { requestTimeoutMs: 10_000, retryMs: 5_000 }

/**
 * Two-way sync of the configured shadows between the local ShadowService and the cloud shim
 * (README.md). Every sync of a shadow is the same step, a full sync: read both sides, merge
 * against the last synced state, write what differs, record the new base. Local changes, cloud
 * changes, connects and retries only decide when the step runs; one step per shadow runs at a
 * time and triggers arriving meanwhile fold into one more run.
 */
export class SyncService {
  readonly #o: SyncServiceOptions
  readonly #log: Logger
  readonly #tokens = new SyncTokens()
  readonly #cloud: CloudSide
  readonly #local: LocalSide
  readonly #registration: DeviceRegistration | null
  readonly #targets: ReadonlyMap<string, ShadowRef>
  readonly #watched = new Set<string>()
  readonly #running = new Map<string, Promise<void>>()
  readonly #again = new Set<string>()
  readonly #retries = new Map<string, NodeJS.Timeout>()
  readonly #stops: Array<() => void> = []
  /** The work after a connect (registration, subscriptions) that precedes its full sync. */
  #connecting: Promise<void> = Promise.resolve()
  #closed = false

  constructor(opts: SyncServiceOptions) {
    this.#o = opts
    this.#log = opts.log
    const requestTimeoutMs = opts.requestTimeoutMs ?? SYNC_DEFAULTS.requestTimeoutMs
    this.#cloud = new CloudSide({ link: opts.link, outbox: opts.outbox, tokens: this.#tokens, requestTimeoutMs, log: opts.log })
    this.#local = new LocalSide(opts.local, this.#tokens)
    this.#targets = new Map(opts.targets.map((ref) => [refKey(ref), ref]))
    const devices = syncedDevices(opts.targets, opts.name)
    this.#registration = devices.length === 0 ? null : new DeviceRegistration({
      link: opts.link, outbox: opts.outbox, tokens: this.#tokens, name: opts.name, devices, timeoutMs: requestTimeoutMs, log: opts.log,
    })
  }

  /** Subscribes on both sides; the first full sync runs once the link is connected. */
  async start(): Promise<void> {
    await this.#registration?.start()
    // The coordinator's own shadows are always its to use; devices' wait for their registration.
    for (const ref of this.#targets.values()) if (ref.thingName === this.#o.name) await this.#watch(ref)
    if (this.#o.direction !== 'from-cloud') this.#stops.push(this.#o.local.onChange((c) => this.#onLocalChange(c)))
    this.#stops.push(this.#o.link.onState((s) => this.#onLinkState(s)))
    this.#log.info({ shadows: [...this.#targets.keys()], direction: this.#o.direction }, 'shadow sync started')
    if (this.#o.link.state === 'connected') this.#onLinkState('connected')
  }

  /** Runs a sync of the shadow now, or once more after the one in flight. */
  trigger(ref: ShadowRef): void {
    const key = refKey(ref)
    if (this.#closed || !this.#watched.has(key)) return
    clearTimeout(this.#retries.get(key))
    this.#retries.delete(key)
    if (this.#running.has(key)) {
      this.#again.add(key)
      return
    }
    this.#running.set(key, this.#drain(ref, key).finally(() => this.#running.delete(key)))
  }

  /** Resolves once no sync step is running or about to be (tests, and close). */
  async idle(): Promise<void> {
    await this.#connecting
    while (this.#running.size > 0) await Promise.allSettled([...this.#running.values()])
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const stop of this.#stops.splice(0)) stop()
    for (const timer of this.#retries.values()) clearTimeout(timer)
    this.#retries.clear()
    await this.#cloud.close()
    await this.#registration?.close()
    await this.idle()
  }

  readonly #events: CloudEvents = {
    changed: (ref) => this.trigger(ref),
    landed: (ref, version) => this.#o.store.noteCloudVersion(ref, version),
  }

  async #watch(ref: ShadowRef): Promise<void> {
    await this.#cloud.watch(ref, this.#o.direction === 'to-cloud' ? null : this.#events)
    this.#watched.add(refKey(ref))
  }

  #onLocalChange(change: LocalChange): void {
    // Our own writes come back here too; syncing them again would only find nothing to do.
    if (this.#tokens.isOurs(change.clientToken)) return
    if (this.#targets.has(refKey(change.ref))) this.trigger(change.ref)
  }

  #onLinkState(state: LinkState): void {
    if (state !== 'connected') {
      // Nothing reaches the cloud now; the full sync after the reconnect covers every change.
      this.#cloud.failPending('the cloud link is down')
      for (const timer of this.#retries.values()) clearTimeout(timer)
      this.#retries.clear()
      return
    }
    this.#connecting = this.#onConnected().catch((err: Error) => {
      this.#log.error({ [K.err]: err.message }, 'shadow sync could not start after connecting')
    })
  }

  /** Claims the devices, subscribes to their shadows, then syncs every shadow in full. */
  async #onConnected(): Promise<void> {
    const refused = new Set(await this.#registerDevices())
    for (const [key, ref] of this.#targets) {
      if (this.#watched.has(key) || refused.has(ref.thingName)) continue
      await this.#watch(ref).catch((err: Error) => {
        this.#log.warn({ [K.thingName]: ref.thingName, [K.shadowName]: ref.shadowName, [K.err]: err.message }, 'cannot subscribe to the cloud shadow; it is not synced')
      })
    }
    for (const ref of this.#targets.values()) this.trigger(ref)
  }

  async #registerDevices(): Promise<string[]> {
    if (this.#registration === null) return []
    try {
      return await this.#registration.register()
    } catch (err) {
      // Devices claimed on an earlier connect are still ours: go on and let the subscriptions tell.
      this.#log.warn({ [K.err]: (err as Error).message }, 'device registration failed')
      return []
    }
  }

  async #drain(ref: ShadowRef, key: string): Promise<void> {
    do {
      this.#again.delete(key)
      await this.#step(ref, key)
    } while (this.#again.has(key) && !this.#closed)
  }

  async #step(ref: ShadowRef, key: string): Promise<void> {
    try {
      await this.#syncOnce(ref)
    } catch (err) {
      if (this.#closed) return
      if (err instanceof SyncConflictError) {
        this.#again.add(key)
        return
      }
      this.#log.warn({ [K.thingName]: ref.thingName, [K.shadowName]: ref.shadowName, [K.err]: (err as Error).message }, 'shadow sync step failed; retrying')
      this.#scheduleRetry(ref, key)
    }
  }

  #scheduleRetry(ref: ShadowRef, key: string): void {
    if (this.#o.link.state !== 'connected') return
    const timer = setTimeout(() => {
      this.#retries.delete(key)
      this.trigger(ref)
    }, this.#o.retryMs ?? SYNC_DEFAULTS.retryMs)
    timer.unref()
    this.#retries.set(key, timer)
  }

  /**
   * The full sync of one shadow. The cloud is read first and the local side last, so a local
   * change made while the cloud answered is part of this merge, not overwritten by it.
   */
  async #syncOnce(ref: ShadowRef): Promise<void> {
    // While the link is down nothing is queued: a write held back until the reconnect could land
    // on top of a cloud change and defeat the merge rule. The full sync on reconnect carries it.
    if (this.#o.link.state !== 'connected') return
    const record = this.#o.store.get(ref)
    const cloud = await this.#cloud.get(ref)
    const local = await this.#local.get(ref)
    const merged = resolveDocument(this.#o.direction, record?.base ?? null, local?.state ?? null, cloud?.state ?? null)
    const localVersion = await this.#local.write(ref, local, merged)
    this.#cloud.write(ref, cloud, merged)
    this.#o.store.put(ref, { base: merged, localVersion, cloudVersion: merged === null ? null : cloud?.version ?? null, syncedAt: this.#o.clock.now() })
    this.#log.debug({
      [K.thingName]: ref.thingName, [K.shadowName]: ref.shadowName,
      wroteLocal: !statesEqual(local?.state ?? null, merged), wroteCloud: !statesEqual(cloud?.state ?? null, merged),
    }, 'shadow synced')
  }
}
