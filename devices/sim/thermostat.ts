/**
 * A thermostat with its room. It obeys `desired.setpoint` (°C, clamped to 5-35) and `desired.mode`
 * ('off' | 'heat' | 'cool'), and reports the temperature it measures. The room loses heat toward
 * the outside (Newton's law of cooling); the heater or cooler moves it at a fixed rate, switched
 * with hysteresis around the setpoint as real bang-bang controllers do, so the measured temperature
 * drifts toward the setpoint and then oscillates narrowly around it.
 */
import type { JsonObject } from '../sdk/index.js'
import type { DeviceLink } from './link.js'
import { clamp, round, type Random } from './random.js'
import { SimDevice, type SimOptions } from './sim-device.js'

export type ThermostatMode = 'off' | 'heat' | 'cool'
export type Hvac = 'idle' | 'heating' | 'cooling'

export interface ThermostatModelOptions {
  /** Outside temperature the room relaxes toward, °C; default 12. */
  ambient?: number
  /** Room temperature at start, °C; default 18. */
  initialTemperature?: number
  /** Default 20 °C. */
  setpoint?: number
  /** Default 'heat'. */
  mode?: ThermostatMode
  /** °C per minute the heater (or cooler) adds; default 0.3. */
  hvacRatePerMin?: number
  /** Fraction of the indoor-outdoor difference lost per minute; default 0.02. */
  lossPerMin?: number
  /** Half-width of the switching band, °C; default 0.3. */
  hysteresis?: number
  /** Sensor noise (standard deviation), °C; default 0.05. */
  noise?: number
}

export type ThermostatOptions = SimOptions & ThermostatModelOptions

const MODES: ReadonlySet<string> = new Set(['off', 'heat', 'cool'])
/** Report when the measured temperature moved this far since the last report. */
const REPORT_DEADBAND = 0.5

export class ThermostatModel {
  temperature: number
  setpoint: number
  mode: ThermostatMode
  hvac: Hvac = 'idle'
  readonly #random: Random
  readonly #o: Required<Pick<ThermostatModelOptions, 'ambient' | 'hvacRatePerMin' | 'lossPerMin' | 'hysteresis' | 'noise'>>

  constructor(random: Random, o: ThermostatModelOptions = {}) {
    this.#random = random
    this.temperature = o.initialTemperature ?? 18
    this.setpoint = o.setpoint ?? 20
    this.mode = o.mode ?? 'heat'
    this.#o = { ambient: o.ambient ?? 12, hvacRatePerMin: o.hvacRatePerMin ?? 0.3, lossPerMin: o.lossPerMin ?? 0.02, hysteresis: o.hysteresis ?? 0.3, noise: o.noise ?? 0.05 }
    this.control()
  }

  step(dtMs: number): void {
    const minutes = dtMs / 60_000
    const hvac = this.hvac === 'heating' ? 1 : this.hvac === 'cooling' ? -1 : 0
    this.temperature += (this.#o.ambient - this.temperature) * this.#o.lossPerMin * minutes + hvac * this.#o.hvacRatePerMin * minutes
    this.control()
  }

  control(): void {
    this.hvac = nextHvac(this.mode, this.hvac, this.temperature - this.setpoint, this.#o.hysteresis)
  }

  measure(): number {
    return round(this.temperature + this.#random.gaussian(this.#o.noise), 1)
  }
}

/**
 * Bang-bang control with hysteresis: the heater (or cooler) switches on once the temperature is
 * more than `band` on the wrong side of the setpoint, off once it is more than `band` past it, and
 * keeps its state in between, so it does not chatter around the setpoint.
 */
export function nextHvac(mode: ThermostatMode, current: Hvac, error: number, band: number): Hvac {
  if (mode === 'off') return 'idle'
  const active: Hvac = mode === 'heat' ? 'heating' : 'cooling'
  // How far the room is from where this mode wants it: too cold for heating, too warm for cooling.
  const shortfall = mode === 'heat' ? -error : error
  if (shortfall > band) return active
  if (shortfall < -band) return 'idle'
  return current === active ? active : 'idle'
}

export class Thermostat extends SimDevice {
  readonly model: ThermostatModel
  #reported: { temperature: number; hvac: Hvac }

  constructor(link: DeviceLink, options: ThermostatOptions = {}) {
    super(link, options)
    this.model = new ThermostatModel(this.random, options)
    this.#reported = { temperature: this.model.measure(), hvac: this.model.hvac }
  }

  protected applyDesired(desired: JsonObject): void {
    const { setpoint, mode } = desired
    const before = `${this.model.mode} ${this.model.setpoint}`
    if (typeof setpoint === 'number' && Number.isFinite(setpoint)) this.model.setpoint = clamp(setpoint, 5, 35)
    if (typeof mode === 'string' && MODES.has(mode)) this.model.mode = mode as ThermostatMode
    if (`${this.model.mode} ${this.model.setpoint}` === before) return
    this.model.control()
    void this.report(this.reportedState())
  }

  protected reportedState(): JsonObject {
    this.#reported = { temperature: this.model.measure(), hvac: this.model.hvac }
    return { mode: this.model.mode, setpoint: this.model.setpoint, ...this.#reported }
  }

  protected tick(dtMs: number): void {
    this.model.step(dtMs)
    const temperature = this.model.measure()
    this.publish({ temperature, hvac: this.model.hvac })
    if (this.model.hvac === this.#reported.hvac && Math.abs(temperature - this.#reported.temperature) < REPORT_DEADBAND) return
    this.#reported = { temperature, hvac: this.model.hvac }
    void this.report({ ...this.#reported })
  }
}
