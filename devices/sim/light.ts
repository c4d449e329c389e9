/**
 * A dimmable colour light. It obeys `desired.on` (boolean), `desired.brightness` (0-100, rounded
 * and clamped as the dimmer's steps are) and `desired.color` ('#rrggbb'), and reports what it
 * actually shows; a malformed colour is ignored, so the delta stays visible to the operator. Its
 * power draw goes out as telemetry every tick: LED power scales with brightness, plus standby.
 */
import type { JsonObject } from '../sdk/index.js'
import type { DeviceLink } from './link.js'
import { clamp, round } from './random.js'
import { SimDevice, type SimOptions } from './sim-device.js'

export interface LightOptions extends SimOptions {
  /** Watts at full brightness; default 9 (a typical LED bulb). */
  ratedW?: number
  initial?: { on?: boolean; brightness?: number; color?: string }
}

export interface LightState {
  on: boolean
  brightness: number
  color: string
}

/** Radio and driver draw while the light is off, W. */
const STANDBY_W = 0.3
const COLOR = /^#[0-9a-f]{6}$/

export class Light extends SimDevice {
  readonly #state: LightState
  readonly #ratedW: number

  constructor(link: DeviceLink, options: LightOptions = {}) {
    super(link, options)
    this.#ratedW = options.ratedW ?? 9
    this.#state = { on: options.initial?.on ?? false, brightness: options.initial?.brightness ?? 100, color: options.initial?.color ?? '#ffffff' }
  }

  get state(): LightState {
    return { ...this.#state }
  }

  /** What the driver draws now, with a little measurement noise. */
  get power(): number {
    const watts = this.#state.on ? (this.#ratedW * this.#state.brightness) / 100 : STANDBY_W
    return round(Math.max(0, watts + this.random.gaussian(0.02)), 2)
  }

  protected applyDesired(desired: JsonObject): void {
    const { on, brightness, color } = desired
    const before = JSON.stringify(this.#state)
    if (typeof on === 'boolean') this.#state.on = on
    if (typeof brightness === 'number' && Number.isFinite(brightness)) this.#state.brightness = clamp(Math.round(brightness), 0, 100)
    if (typeof color === 'string' && COLOR.test(color.toLowerCase())) this.#state.color = color.toLowerCase()
    if (JSON.stringify(this.#state) !== before) void this.report(this.reportedState())
  }

  protected reportedState(): JsonObject {
    return { ...this.#state }
  }

  protected tick(): void {
    this.publish({ power: this.power })
  }
}
