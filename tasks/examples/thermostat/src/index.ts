/**
 * Thermostat: keeps a room near a setpoint by switching a heater plug through its shadow.
 *
 * Every 30 s (and on invoke) it reads the temperature the sensor reports in its shadow and decides:
 * on below setpoint - hysteresis, off above setpoint + hysteresis, unchanged in between. The band
 * keeps the relay from chattering around the setpoint. A command is the heater's desired state
 * `{on: true|false}`; the last one sent is kept in state so an unchanged decision sends nothing.
 *
 * Operators change the setpoint at run time through the heater's `thermostat` named shadow
 * (desired.setpoint, desired.hysteresis): the delta fires this task, which adopts the values and
 * reports them back, clearing the delta.
 */
import type { TaskContext, TaskEvent } from '../../../api.js'

interface Config {
  sensorThing: string
  heaterThing: string
  temperatureKey: string
  setpoint: number
  hysteresis: number
}

interface Settings {
  setpoint: number
  hysteresis: number
}

interface ControlResult extends Settings {
  temperature: number | null
  heater: 'on' | 'off' | 'unchanged'
  /** Whether a command went to the heater in this call. */
  sent: boolean
  reason?: string
}

const SETTINGS_SHADOW = 'thermostat'
const SETTINGS_KEY = 'settings'
const LAST_COMMAND_KEY = 'lastCommand'

export async function handler(event: TaskEvent, ctx: TaskContext): Promise<ControlResult> {
  // The coordinator validated the config against task.json's schema before starting the task.
  const config = ctx.config as unknown as Config
  if (event.type === 'shadow-delta' && event.thingName === config.heaterThing && event.shadowName === SETTINGS_SHADOW) {
    await adoptSettings(event.delta, config, ctx)
  }
  return control(config, ctx)
}

async function control(config: Config, ctx: TaskContext): Promise<ControlResult> {
  const settings = await currentSettings(config, ctx)
  const reading = await readTemperature(config, ctx)
  if (typeof reading === 'string') return { ...settings, temperature: null, heater: 'unchanged', sent: false, reason: reading }
  const on = decide(reading, settings)
  if (on === undefined) {
    ctx.log.debug('temperature within band, heater unchanged', { temperature: reading, ...settings })
    return { ...settings, temperature: reading, heater: 'unchanged', sent: false }
  }
  const heater = on ? 'on' : 'off'
  if ((await ctx.state.get(LAST_COMMAND_KEY)) === on) return { ...settings, temperature: reading, heater, sent: false }
  const reply = await ctx.shadow.update(config.heaterThing, { state: { desired: { on } } })
  if (reply.status !== 200) {
    ctx.log.error('heater command rejected', { status: reply.status, message: reply.body['message'] })
    return { ...settings, temperature: reading, heater, sent: false, reason: `heater shadow update failed with ${reply.status}` }
  }
  await ctx.state.set(LAST_COMMAND_KEY, on)
  ctx.log.info(`heater ${heater}`, { temperature: reading, ...settings })
  return { ...settings, temperature: reading, heater, sent: true }
}

/** true: switch on; false: switch off; undefined: inside the band, leave it as it is. */
function decide(temperature: number, s: Settings): boolean | undefined {
  if (temperature < s.setpoint - s.hysteresis) return true
  if (temperature > s.setpoint + s.hysteresis) return false
  return undefined
}

/** The sensor's reported temperature, or why there is none. */
async function readTemperature(config: Config, ctx: TaskContext): Promise<number | string> {
  const reply = await ctx.shadow.get(config.sensorThing)
  if (reply.status !== 200) {
    const reason = reply.status === 404 ? `sensor ${config.sensorThing} has no shadow yet` : `reading sensor ${config.sensorThing} failed with ${reply.status}`
    ctx.log.warn(reason)
    return reason
  }
  const state = reply.body['state'] as { reported?: Record<string, unknown> } | undefined
  const value = state?.reported?.[config.temperatureKey]
  if (typeof value === 'number' && Number.isFinite(value)) return value
  const reason = `sensor ${config.sensorThing} reports no numeric "${config.temperatureKey}"`
  ctx.log.warn(reason)
  return reason
}

/** Settings changed through the shadow win over the deployed config until the task's state is cleared. */
async function currentSettings(config: Config, ctx: TaskContext): Promise<Settings> {
  const stored = (await ctx.state.get(SETTINGS_KEY)) as Partial<Settings> | undefined
  return {
    setpoint: typeof stored?.setpoint === 'number' ? stored.setpoint : config.setpoint,
    hysteresis: typeof stored?.hysteresis === 'number' ? stored.hysteresis : config.hysteresis,
  }
}

async function adoptSettings(delta: Record<string, unknown>, config: Config, ctx: TaskContext): Promise<void> {
  const current = await currentSettings(config, ctx)
  const next: Settings = {
    setpoint: validNumber(delta['setpoint'], -30, 60) ?? current.setpoint,
    hysteresis: validNumber(delta['hysteresis'], 0, 10) ?? current.hysteresis,
  }
  await ctx.state.set(SETTINGS_KEY, next)
  // Reporting what was adopted clears the delta and shows the operator the values in force.
  const reply = await ctx.shadow.update(config.heaterThing, { state: { reported: next } }, { name: SETTINGS_SHADOW })
  if (reply.status !== 200) ctx.log.warn('could not report the adopted settings', { status: reply.status })
  ctx.log.info('settings changed', { ...next })
}

/** The same ranges as the config schema; anything else in a delta is ignored (and stays in the delta). */
function validNumber(v: unknown, min: number, max: number): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? v : undefined
}
