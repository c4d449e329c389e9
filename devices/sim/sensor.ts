/**
 * A temperature/humidity sensor. The true values wander slowly around a base (an Ornstein-Uhlenbeck
 * drift: a random walk pulled back toward the base over about half an hour, like a room's climate),
 * and each reading adds measurement noise. Telemetry goes out every tick; the shadow is reported
 * only when a reading moved past a deadband, as battery-powered sensors do to save radio time.
 */
import type { JsonObject, TelemetryEncoding } from '../sdk/index.js'
import type { DeviceLink } from './link.js'
import { clamp, round, type Random } from './random.js'
import { SimDevice, type SimOptions } from './sim-device.js'

export interface SensorModelOptions {
  /** °C, default 21. */
  baseTemperature?: number
  /** %RH, default 45. */
  baseHumidity?: number
  /** Drift per √minute: default 0.2 °C and 1 %RH. */
  drift?: { temperature: number; humidity: number }
  /** Measurement noise (standard deviation): default 0.05 °C and 0.3 %RH. */
  noise?: { temperature: number; humidity: number }
}

export interface SensorOptions extends SimOptions, SensorModelOptions {
  /** Report to the shadow when a reading moved this far from the last report: default 0.5 °C, 2 %RH. */
  deadband?: { temperature: number; humidity: number }
  telemetryEncoding?: TelemetryEncoding
}

export interface SensorReading {
  temperature: number
  humidity: number
}

/** How fast the drift is pulled back to the base. */
const REVERSION_MINUTES = 30

export class SensorModel {
  readonly #random: Random
  readonly #base: SensorReading
  readonly #drift: SensorReading
  readonly #noise: SensorReading
  readonly #offset: SensorReading = { temperature: 0, humidity: 0 }

  constructor(random: Random, o: SensorModelOptions = {}) {
    this.#random = random
    this.#base = { temperature: o.baseTemperature ?? 21, humidity: o.baseHumidity ?? 45 }
    this.#drift = o.drift ?? { temperature: 0.2, humidity: 1 }
    this.#noise = o.noise ?? { temperature: 0.05, humidity: 0.3 }
  }

  step(dtMs: number): void {
    const minutes = dtMs / 60_000
    for (const k of ['temperature', 'humidity'] as const) {
      this.#offset[k] += -this.#offset[k] * Math.min(1, minutes / REVERSION_MINUTES) + this.#random.gaussian(this.#drift[k] * Math.sqrt(minutes))
    }
  }

  /** One measurement: the true value plus noise, as the firmware formats it (0.1 resolution). */
  read(): SensorReading {
    const temperature = this.#base.temperature + this.#offset.temperature + this.#random.gaussian(this.#noise.temperature)
    const humidity = clamp(this.#base.humidity + this.#offset.humidity + this.#random.gaussian(this.#noise.humidity), 0, 100)
    return { temperature: round(temperature, 1), humidity: round(humidity, 1) }
  }
}

export class TemperatureSensor extends SimDevice {
  readonly model: SensorModel
  readonly #deadband: SensorReading
  readonly #encoding: TelemetryEncoding
  #last: SensorReading

  constructor(link: DeviceLink, options: SensorOptions = {}) {
    super(link, options)
    this.model = new SensorModel(this.random, options)
    this.#deadband = options.deadband ?? { temperature: 0.5, humidity: 2 }
    this.#encoding = options.telemetryEncoding ?? 'json'
    this.#last = this.model.read()
  }

  /** A sensor has nothing to actuate. */
  protected applyDesired(): void {}

  protected reportedState(): JsonObject {
    return { ...this.#last }
  }

  protected tick(dtMs: number): void {
    this.model.step(dtMs)
    const reading = this.model.read()
    this.publish({ ...reading }, this.#encoding)
    if (this.#movedPastDeadband(reading)) {
      this.#last = reading
      void this.report({ ...reading })
    }
  }

  #movedPastDeadband(r: SensorReading): boolean {
    return Math.abs(r.temperature - this.#last.temperature) >= this.#deadband.temperature
      || Math.abs(r.humidity - this.#last.humidity) >= this.#deadband.humidity
  }
}
