import type { LocalBus } from '../../coordinator/broker/index.js'
import type { EnqueueResult, LinkState, OutboxInput } from '../../coordinator/cloud/index.js'
import { systemClock } from '../../coordinator/core/clock.js'
import { silentLogger } from '../../coordinator/core/log.js'
import { DEFAULT_SHADOW_LIMITS, topicMatches, type ShadowRef } from '../../coordinator/protocol/index.js'
import { ShadowService } from '../../coordinator/shadow/index.js'
import { openDatabase, ShadowStore } from '../../coordinator/store/index.js'
import { SyncService, SyncStore, type LocalShadows, type SyncDirection, type SyncLink, type SyncOutbox } from '../../coordinator/sync/index.js'

type Handler = (topic: string, payload: Buffer) => void

/** An in-process bus: what an aedes broker does for its internal subscribers, minus the network. */
export class MemoryBus implements LocalBus {
  readonly #subs = new Set<{ filter: string; handler: Handler }>()

  async publish(topic: string, payload: Buffer | string): Promise<void> {
    for (const s of [...this.#subs]) if (topicMatches(s.filter, topic)) s.handler(topic, Buffer.from(payload))
  }

  async subscribe(filter: string, handler: Handler): Promise<() => Promise<void>> {
    const sub = { filter, handler }
    this.#subs.add(sub)
    return async () => void this.#subs.delete(sub)
  }
}

/** The cloud link: messages from the cloud bus reach the sync only while "connected". */
export class FakeLink implements SyncLink {
  state: LinkState = 'disconnected'
  readonly #listeners = new Set<(s: LinkState) => void>()
  readonly #bus: MemoryBus

  constructor(bus: MemoryBus) {
    this.#bus = bus
  }

  setState(state: LinkState): void {
    this.state = state
    for (const l of this.#listeners) l(state)
  }

  onState(listener: (s: LinkState) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  subscribe(filter: string, handler: Handler): Promise<() => Promise<void>> {
    return this.#bus.subscribe(filter, (t, p) => {
      if (this.state === 'connected') handler(t, p)
    })
  }
}

/** The outbox: keeps messages in order and delivers them to the cloud bus while connected. */
export class FakeOutbox implements SyncOutbox {
  readonly queued: OutboxInput[] = []
  readonly delivered: string[] = []
  /** While true, nothing is delivered even when connected (a slow link). */
  hold = false
  #id = 0

  constructor(readonly link: FakeLink, readonly bus: MemoryBus) {
    link.onState((s) => {
      if (s === 'connected') this.flush()
    })
  }

  enqueue(msg: OutboxInput): EnqueueResult {
    this.queued.push(msg)
    setImmediate(() => this.flush())
    return { accepted: true, id: ++this.#id }
  }

  flush(): void {
    if (this.hold || this.link.state !== 'connected') return
    for (const msg of this.queued.splice(0)) {
      this.delivered.push(msg.topic)
      void this.bus.publish(msg.topic, Buffer.from(msg.payload))
    }
  }

  count(suffix: string): number {
    return this.delivered.filter((t) => t.endsWith(suffix)).length + this.queued.filter((m) => m.topic.endsWith(suffix)).length
  }
}

export interface Harness {
  local: ShadowService
  cloud: ShadowService
  link: FakeLink
  outbox: FakeOutbox
  sync: SyncService
  close(): Promise<void>
}

function shadowService(bus: LocalBus): ShadowService {
  const store = new ShadowStore(openDatabase(':memory:'))
  return new ShadowService({ store, bus, limits: DEFAULT_SHADOW_LIMITS, maxRequestsPerSecondPerThing: 0, clock: systemClock, log: silentLogger() })
}

/** A coordinator's sync against an in-memory cloud running the same shadow engine. */
export async function syncHarness(opts: { targets: ShadowRef[]; direction?: SyncDirection; local?: (s: ShadowService) => LocalShadows }): Promise<Harness> {
  const cloudBus = new MemoryBus()
  const local = shadowService(new MemoryBus())
  const cloud = shadowService(cloudBus)
  await local.start()
  await cloud.start()
  const link = new FakeLink(cloudBus)
  const outbox = new FakeOutbox(link, cloudBus)
  const sync = new SyncService({
    name: 'gw-1', targets: opts.targets, direction: opts.direction ?? 'both', local: opts.local?.(local) ?? local, link, outbox,
    store: new SyncStore(openDatabase(':memory:')), clock: systemClock, log: silentLogger(), requestTimeoutMs: 2000, retryMs: 100,
  })
  await sync.start()
  return {
    local, cloud, link, outbox, sync,
    close: async () => {
      await sync.close()
      await local.close()
      await cloud.close()
    },
  }
}

export const payload = (body: object): Uint8Array => Buffer.from(JSON.stringify(body))
