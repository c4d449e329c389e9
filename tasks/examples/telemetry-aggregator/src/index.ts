/**
 * Telemetry aggregator: devices publish `{temperature, humidity}` JSON on `things/{name}/telemetry`;
 * this keeps running sums per device for the current window and, every `intervalMs` (60 s by
 * default), publishes one CBOR summary to `gateway/telemetry/summary`, then starts a new window:
 *
 *   {window: {start, end} (epoch ms), devices: {name: {n, avgTemperature, avgHumidity}}}
 *
 * `n` counts a device's messages; an average is null when none of them carried that field. A window
 * with no messages publishes nothing. The sums live in task state, so a restart loses no window.
 */
import type { TaskContext, TaskEvent } from '../../../api.js'

interface Sums {
  n: number
  temperatureSum: number
  temperatureN: number
  humiditySum: number
  humidityN: number
}

interface Window {
  start: number
  devices: Record<string, Sums>
}

interface Sample {
  temperature?: number
  humidity?: number
}

const SUMMARY_TOPIC = 'gateway/telemetry/summary'
const WINDOW_KEY = 'window'

/**
 * Handler calls and the flush timer interleave at every await. Running each read-modify-write of
 * the window alone keeps a message from landing in a window that was just published and reset.
 */
let tail: Promise<unknown> = Promise.resolve()
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const run = tail.then(fn, fn)
  tail = run.catch(() => undefined)
  return run
}

export async function start(ctx: TaskContext): Promise<void> {
  const { intervalMs } = ctx.config as { intervalMs: number }
  setInterval(() => {
    exclusive(() => flush(ctx)).catch((err: unknown) => ctx.log.error('publishing the summary failed', { error: String(err) }))
  }, intervalMs)
  ctx.log.info('aggregating telemetry', { intervalMs })
}

export async function handler(event: TaskEvent, ctx: TaskContext): Promise<void> {
  if (event.type !== 'mqtt') return
  const device = event.topic.split('/')[1]
  const sample = readSample(event.json)
  if (device === undefined || device === '' || sample === undefined) {
    ctx.log.debug('ignored a message without numeric temperature or humidity', { topic: event.topic })
    return
  }
  await exclusive(async () => {
    const window = await loadWindow(ctx)
    add(window, device, sample)
    await ctx.state.set(WINDOW_KEY, window)
  })
}

function readSample(json: unknown): Sample | undefined {
  if (typeof json !== 'object' || json === null) return undefined
  const { temperature, humidity } = json as Record<string, unknown>
  const sample: Sample = {}
  if (isFiniteNumber(temperature)) sample.temperature = temperature
  if (isFiniteNumber(humidity)) sample.humidity = humidity
  return sample.temperature === undefined && sample.humidity === undefined ? undefined : sample
}

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)

async function loadWindow(ctx: TaskContext): Promise<Window> {
  const stored = (await ctx.state.get(WINDOW_KEY)) as Window | undefined
  return stored ?? { start: Date.now(), devices: {} }
}

function add(window: Window, device: string, sample: Sample): void {
  const sums = window.devices[device] ?? { n: 0, temperatureSum: 0, temperatureN: 0, humiditySum: 0, humidityN: 0 }
  sums.n++
  if (sample.temperature !== undefined) {
    sums.temperatureSum += sample.temperature
    sums.temperatureN++
  }
  if (sample.humidity !== undefined) {
    sums.humiditySum += sample.humidity
    sums.humidityN++
  }
  window.devices[device] = sums
}

async function flush(ctx: TaskContext): Promise<void> {
  const window = await loadWindow(ctx)
  const end = Date.now()
  const entries = Object.entries(window.devices)
  if (entries.length > 0) {
    const devices = Object.fromEntries(entries.map(([name, sums]) => [name, summarize(sums)]))
    await ctx.publish(SUMMARY_TOPIC, ctx.cbor.encode({ window: { start: window.start, end }, devices }))
    ctx.log.info('published a telemetry summary', { devices: entries.length })
  }
  await ctx.state.set(WINDOW_KEY, { start: end, devices: {} })
}

function summarize(s: Sums): { n: number; avgTemperature: number | null; avgHumidity: number | null } {
  return {
    n: s.n,
    avgTemperature: s.temperatureN === 0 ? null : round(s.temperatureSum / s.temperatureN),
    avgHumidity: s.humidityN === 0 ? null : round(s.humiditySum / s.humidityN),
  }
}

/** Two decimals: the summary is meant to be compact, and sensors are not more precise than that. */
const round = (x: number): number => Math.round(x * 100) / 100
