/**
 * A battery-powered door lock. It obeys `desired.locked` after a short actuation delay (the bolt
 * motor takes most of a second), reporting the new state only once the bolt has moved, so an
 * operator sees the delta until the door really is locked. Each actuation costs battery, and a
 * little drains while idle; with too little charge left the motor cannot move the bolt.
 */
import type { JsonObject } from '../sdk/index.js'
import type { DeviceLink } from './link.js'
import { round } from './random.js'
import { SimDevice, type SimOptions } from './sim-device.js'

export interface LockOptions extends SimOptions {
  /** Default true. */
  initiallyLocked?: boolean
  /** How long the bolt takes to move, ms; default 800. */
  actuationMs?: number
  /** Battery at start, percent; default 100. */
  batteryPct?: number
  /** Percent of battery one actuation costs; default 0.5. */
  drainPerActuationPct?: number
  /** Percent of battery lost per hour while idle; default 0.05. */
  idleDrainPctPerHour?: number
}

/** Below this the lock reports lowBattery, as real locks start warning. */
const LOW_BATTERY_PCT = 20

export class DoorLock extends SimDevice {
  #locked: boolean
  #target: boolean
  #battery: number
  #actuating = false
  #reportedBattery: number
  readonly #actuationMs: number
  readonly #drainPerActuation: number
  readonly #idleDrainPerHour: number

  constructor(link: DeviceLink, options: LockOptions = {}) {
    super(link, options)
    this.#locked = options.initiallyLocked ?? true
    this.#target = this.#locked
    this.#battery = options.batteryPct ?? 100
    this.#reportedBattery = this.battery
    this.#actuationMs = options.actuationMs ?? 800
    this.#drainPerActuation = options.drainPerActuationPct ?? 0.5
    this.#idleDrainPerHour = options.idleDrainPctPerHour ?? 0.05
  }

  get locked(): boolean {
    return this.#locked
  }

  /** Percent, to 0.1. */
  get battery(): number {
    return round(this.#battery, 1)
  }

  protected applyDesired(desired: JsonObject): void {
    if (typeof desired.locked !== 'boolean') return
    this.#target = desired.locked
    if (this.#target === this.#locked || this.#actuating) return
    this.#actuating = true
    this.after(this.#actuationMs, () => this.#actuate())
  }

  protected reportedState(): JsonObject {
    this.#reportedBattery = this.battery
    return { locked: this.#locked, battery: this.battery, lowBattery: this.battery < LOW_BATTERY_PCT }
  }

  /** Idle drain; the battery is reported when it crossed a whole percent. */
  protected tick(dtMs: number): void {
    this.#battery = Math.max(0, this.#battery - (this.#idleDrainPerHour * dtMs) / 3_600_000)
    if (Math.floor(this.battery) !== Math.floor(this.#reportedBattery)) void this.report(this.reportedState())
  }

  /**
   * Moves the bolt to the latest target (it may have changed while the motor was running). A flat
   * battery leaves the bolt where it is; the delta stays, which is what the operator should see.
   */
  #actuate(): void {
    this.#actuating = false
    if (this.#target === this.#locked || this.#battery < this.#drainPerActuation) return
    this.#battery -= this.#drainPerActuation
    this.#locked = this.#target
    this.publish({ event: this.#locked ? 'locked' : 'unlocked', battery: this.battery })
    void this.report(this.reportedState())
  }
}
