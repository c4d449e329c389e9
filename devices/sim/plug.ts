/**
 * A smart plug: a relay and a power meter. It obeys `desired.on` (a boolean) and reports `on` and
 * `power` right after switching. With the relay closed the meter reads the load with a little
 * noise (appliances fluctuate by a few percent); open, it reads only the meter's noise floor, about
 * 0 W. Energy is integrated over time, as real plugs report kWh counters.
 */
import type { JsonObject } from '../sdk/index.js'
import type { DeviceLink } from './link.js'
import { round, type Random } from './random.js'
import { SimDevice, type SimOptions } from './sim-device.js'

export interface PlugModelOptions {
  /** Watts the plugged-in appliance draws; default 60. */
  loadW?: number
  /** Relative load fluctuation (standard deviation); default 0.02. */
  loadNoise?: number
  /** Relay state at power-up; default off. */
  initiallyOn?: boolean
}

export interface PlugOptions extends SimOptions, PlugModelOptions {
  /** Report power to the shadow when it moved this many watts since the last report; default 5. */
  powerDeadbandW?: number
}

/** The meter's noise floor with the relay open (standard deviation, W). */
const OFF_NOISE_W = 0.05

export class PlugModel {
  on: boolean
  readonly #random: Random
  readonly #loadW: number
  readonly #loadNoise: number
  #power = 0
  #energyWh = 0

  constructor(random: Random, o: PlugModelOptions = {}) {
    this.#random = random
    this.#loadW = o.loadW ?? 60
    this.#loadNoise = o.loadNoise ?? 0.02
    this.on = o.initiallyOn ?? false
    this.#power = this.#measure()
  }

  get power(): number {
    return this.#power
  }

  get energyWh(): number {
    return round(this.#energyWh, 3)
  }

  /** Integrates energy over the interval at the last power, then takes a new reading. */
  step(dtMs: number): void {
    this.#energyWh += (this.#power * dtMs) / 3_600_000
    this.#power = this.#measure()
  }

  /** Switches the relay; the meter reads the new state at once. */
  switch(on: boolean): void {
    this.on = on
    this.#power = this.#measure()
  }

  #measure(): number {
    const watts = this.on ? this.#loadW * (1 + this.#random.gaussian(this.#loadNoise)) : Math.abs(this.#random.gaussian(OFF_NOISE_W))
    return round(Math.max(0, watts), 1)
  }
}

export class SmartPlug extends SimDevice {
  readonly model: PlugModel
  readonly #deadbandW: number
  #reportedPower: number

  constructor(link: DeviceLink, options: PlugOptions = {}) {
    super(link, options)
    this.model = new PlugModel(this.random, options)
    this.#deadbandW = options.powerDeadbandW ?? 5
    this.#reportedPower = this.model.power
  }

  protected applyDesired(desired: JsonObject): void {
    if (typeof desired.on !== 'boolean' || desired.on === this.model.on) return
    this.model.switch(desired.on)
    this.#reportPower({ on: this.model.on })
  }

  protected reportedState(): JsonObject {
    this.#reportedPower = this.model.power
    return { on: this.model.on, power: this.model.power, energyWh: this.model.energyWh }
  }

  protected tick(dtMs: number): void {
    this.model.step(dtMs)
    this.publish({ power: this.model.power, energyWh: this.model.energyWh })
    if (Math.abs(this.model.power - this.#reportedPower) >= this.#deadbandW) this.#reportPower({})
  }

  #reportPower(extra: JsonObject): void {
    this.#reportedPower = this.model.power
    void this.report({ ...extra, power: this.model.power, energyWh: this.model.energyWh })
  }
}
