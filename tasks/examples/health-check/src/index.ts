/**
 * Health check: for each device this task may see (registered with the attribute monitored=true),
 * reads its shadow and finds when it last reported: the newest timestamp in the shadow's
 * metadata.reported (AWS keeps one per reported field, in epoch seconds). A device is stale when
 * that is more than `staleAfterSeconds` ago, or when it has no shadow or never reported.
 *
 * Publishes the report as JSON to `gateway/health` and returns it, so `edge-task invoke
 * health-check` prints it.
 */
import type { TaskContext, TaskEvent } from '../../../api.js'

interface StaleDevice {
  name: string
  /** Epoch seconds of the newest reported field; null when there is none. */
  lastReportedAt: number | null
  ageSeconds: number | null
  reason: string
}

interface HealthReport {
  /** Epoch seconds. */
  time: number
  staleAfterSeconds: number
  devices: number
  healthy: string[]
  stale: StaleDevice[]
}

type Check = { name: string; stale: false } | ({ stale: true } & StaleDevice)

const REPORT_TOPIC = 'gateway/health'

export async function handler(_event: TaskEvent, ctx: TaskContext): Promise<HealthReport> {
  const { staleAfterSeconds } = ctx.config as { staleAfterSeconds: number }
  const now = Math.floor(Date.now() / 1000)
  const devices = await ctx.devices()
  const checks = await Promise.all(devices.map((d) => check(d.name, now, staleAfterSeconds, ctx)))
  const stale = checks.flatMap((c) => (c.stale ? [{ name: c.name, lastReportedAt: c.lastReportedAt, ageSeconds: c.ageSeconds, reason: c.reason }] : []))
  const report: HealthReport = {
    time: now, staleAfterSeconds, devices: devices.length,
    healthy: checks.filter((c) => !c.stale).map((c) => c.name),
    stale,
  }
  await ctx.publish(REPORT_TOPIC, report)
  if (stale.length > 0) ctx.log.warn('stale devices', { stale: stale.map((d) => d.name) })
  return report
}

async function check(name: string, now: number, staleAfterSeconds: number, ctx: TaskContext): Promise<Check> {
  const reply = await ctx.shadow.get(name)
  if (reply.status !== 200) {
    const reason = reply.status === 404 ? 'no shadow' : `reading the shadow failed with ${reply.status}`
    return { name, stale: true, lastReportedAt: null, ageSeconds: null, reason }
  }
  const metadata = reply.body['metadata'] as { reported?: unknown } | undefined
  const last = newestTimestamp(metadata?.reported)
  if (last === null) return { name, stale: true, lastReportedAt: null, ageSeconds: null, reason: 'never reported' }
  const age = now - last
  if (age <= staleAfterSeconds) return { name, stale: false }
  return { name, stale: true, lastReportedAt: last, ageSeconds: age, reason: `last reported ${age} s ago` }
}

/** Metadata mirrors the reported document, with `{timestamp}` at each leaf (arrays element by element). */
function newestTimestamp(metadata: unknown): number | null {
  if (typeof metadata !== 'object' || metadata === null) return null
  const own = (metadata as { timestamp?: unknown }).timestamp
  if (typeof own === 'number') return own
  let newest: number | null = null
  for (const child of Object.values(metadata)) {
    const t = newestTimestamp(child)
    if (t !== null && (newest === null || t > newest)) newest = t
  }
  return newest
}
