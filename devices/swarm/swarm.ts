/**
 * Runs many simulated devices, each with its own DeviceClient. A device whose first connection
 * fails (coordinator not up yet, too many handshakes at once) retries with backoff until the swarm
 * stops; once connected, the SDK's own reconnect takes over.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { backoffDelay, connectDevice, DEFAULT_BACKOFF, type BackoffPolicy, type DeviceClient, type DeviceOptions } from '../sdk/index.js'
import { createSim, SIM_KINDS, type SimDevice, type SimKind } from '../sim/index.js'
import type { Credentials } from './credentials.js'
import type { SwarmSample } from './status.js'

export type SwarmKind = SimKind | 'mixed'

export interface SwarmOptions {
  /** The broker URL every device connects to. */
  url: string
  count: number
  /** 'mixed' cycles through every simulator kind. */
  kind: SwarmKind
  /** Thing names are `${prefix}1` .. `${prefix}${count}`. */
  prefix: string
  intervalMs: number
  /** Device i (from 1) uses seed + i. */
  seed: number
  credentials: (thingName: string) => Credentials
  /** Reconnect and first-connection retry backoff. */
  backoff?: Partial<BackoffPolicy>
}

interface Member {
  name: string
  kind: SimKind
  seed: number
  device?: DeviceClient
  sim?: SimDevice
  done?: Promise<void>
}

export function swarmNames(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`)
}

export class Swarm {
  readonly #options: SwarmOptions
  readonly #backoff: BackoffPolicy
  readonly #members: Member[]
  readonly #abort = new AbortController()
  readonly #stopping: Promise<void>
  #errors = 0

  constructor(options: SwarmOptions) {
    this.#options = options
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff }
    this.#members = swarmNames(options.prefix, options.count).map((name, i) => ({
      name,
      kind: options.kind === 'mixed' ? (SIM_KINDS[i % SIM_KINDS.length] as SimKind) : options.kind,
      seed: options.seed + i + 1,
    }))
    this.#stopping = new Promise((resolve) => this.#abort.signal.addEventListener('abort', () => resolve(), { once: true }))
  }

  start(): void {
    for (const member of this.#members) member.done = this.#run(member)
  }

  sample(): SwarmSample {
    const s: SwarmSample = { connected: 0, total: this.#members.length, updates: 0, telemetry: 0, errors: this.#errors }
    for (const { device, sim } of this.#members) {
      if (device?.connected === true) s.connected++
      const stats = sim?.stats()
      if (stats === undefined) continue
      s.updates += stats.updates
      s.telemetry += stats.telemetry
      s.errors += stats.errors
    }
    return s
  }

  /** Stops every simulator (letting in-flight reports finish) and disconnects every device. */
  async stop(): Promise<void> {
    this.#abort.abort()
    await Promise.all(this.#members.map((m) => m.done))
  }

  async #run(member: Member): Promise<void> {
    const device = await this.#retry(() => connectDevice(this.#deviceOptions(member.name)))
    if (device === undefined) return
    member.device = device
    device.on('connectionError', () => this.#errors++)
    const sim = createSim(member.kind, device, { seed: member.seed, intervalMs: this.#options.intervalMs })
    member.sim = sim
    await this.#retry(() => sim.start())
    await this.#stopping
    await sim.stop()
    await device.close()
  }

  #deviceOptions(thingName: string): DeviceOptions {
    return { url: this.#options.url, thingName, reconnect: this.#backoff, ...this.#options.credentials(thingName) }
  }

  /** Retries until success or stop; undefined when stopped first. Each failure counts as an error. */
  async #retry<T>(attempt: () => Promise<T>): Promise<T | undefined> {
    for (let n = 1; !this.#abort.signal.aborted; n++) {
      try {
        return await attempt()
      } catch {
        this.#errors++
        await sleep(backoffDelay(n, this.#backoff, Math.random()), undefined, { signal: this.#abort.signal }).catch(() => {})
      }
    }
    return undefined
  }
}
