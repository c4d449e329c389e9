/** How tasks, manifests and log lines read in a terminal. */
import type { DeviceSelector, TaskInfo, TaskLimits, TaskLogEntry, TaskManifest, TaskTrigger } from '../../coordinator/protocol/index.js'

const selector = (d: DeviceSelector): string =>
  typeof d === 'string' ? d : Object.entries(d.attributes).map(([k, v]) => `${k}=${v}`).join(',')

export function describeTrigger(t: TaskTrigger): string {
  switch (t.type) {
    case 'mqtt':
      return `mqtt ${t.filter}`
    case 'schedule':
      return t.cron === undefined ? `every ${String(t.every)}` : `cron "${t.cron}"`
    case 'shadow-delta':
      return `shadow-delta ${t.devices.map(selector).join(' ')}${t.shadowName === undefined ? '' : ` (shadow ${t.shadowName})`}`
    case 'invoke':
      return 'invoke'
  }
}

export const describeTriggers = (triggers: readonly TaskTrigger[]): string =>
  triggers.length === 0 ? 'none' : triggers.map(describeTrigger).join('; ')

const listOrNone = (items: readonly string[]): string => (items.length === 0 ? '-' : items.join(' '))

/** `inspect`: everything a reviewer needs to decide whether to trust the bundle. */
export function describeManifest(m: TaskManifest): string[] {
  const p = m.permissions
  const l = m.limits
  return [
    ...(m.description === undefined ? [] : [`  description  ${m.description}`]),
    `  entry        ${m.entry} (handler ${m.handler})`,
    `  mode         ${m.mode}, priority ${m.priority}`,
    `  triggers     ${describeTriggers(m.triggers)}`,
    `  publish      ${listOrNone(p.publish)}`,
    `  subscribe    ${listOrNone(p.subscribe)}`,
    `  devices      ${listOrNone(p.devices.map(selector))}`,
    `  invoke       ${listOrNone(p.invoke)}`,
    `  limits       memory ${l.memoryMb} MB, cpu ${l.cpuMsPerCall} ms/call, wall ${l.wallMsPerCall} ms/call, concurrency ${l.maxConcurrent}, queue ${l.queueSize}`,
    ...(m.requires.length === 0 ? [] : [`  requires     ${m.requires.join(' ')}`]),
  ]
}

/** `ls`: one row per task, aligned. */
export function taskTable(tasks: readonly TaskInfo[]): string[] {
  const header = ['NAME', 'VERSION', 'STATE', 'MODE', 'CALLS', 'FAILED', 'QUEUE', 'DIGEST', 'SIGNER']
  const rows = tasks.map((t) => [
    // Timeouts are failures already (metrics.timeouts counts the subset): one failure, one count.
    t.name, t.version, t.state, t.mode, String(t.metrics.calls), String(t.metrics.failures),
    String(t.metrics.queueDepth), t.digest.slice(0, 12), t.signer ?? 'unsigned',
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd())
}

/** `show` and the result of `push`, `start`, `stop`. */
export function describeTask(t: TaskInfo): string[] {
  const m = t.metrics
  return [
    `${t.name} ${t.version}  ${t.state}`,
    `  digest     ${t.digest}`,
    `  signer     ${t.signer ?? 'unsigned'}`,
    `  mode       ${t.mode}, priority ${t.priority}`,
    `  triggers   ${describeTriggers(t.triggers)}`,
    `  installed  ${t.installedAt}`,
    `  limits     ${describeGranted(t.limits.requested, t.limits.granted)}`,
    `  calls      ${m.calls} (failed ${m.failures}, of which timed out ${m.timeouts}; rejected ${m.rejected}, over a host limit ${m.limited ?? 0}), running ${m.running}, queued ${m.queueDepth}`,
    `  usage      cpu ${m.cpuTimeMs} ms, heap ${m.heapUsedBytes} bytes`,
    ...(t.lastError === null ? [] : [`  last error ${t.lastError}`]),
  ]
}

/** Granted limits, each trimmed one followed by what the manifest asked: `cpu 1000 ms/call (requested 60000)`. */
function describeGranted(requested: TaskLimits, granted: TaskLimits): string {
  const part = (key: keyof TaskLimits, label: string, unit: string): string =>
    `${label} ${granted[key]}${unit}${granted[key] === requested[key] ? '' : ` (requested ${requested[key]})`}`
  return [
    part('memoryMb', 'memory', ' MB'), part('cpuMsPerCall', 'cpu', ' ms/call'), part('wallMsPerCall', 'wall', ' ms/call'),
    part('maxConcurrent', 'concurrency', ''), part('queueSize', 'queue', ''),
  ].join(', ')
}

/** `logs`: `time LEVEL message key=value ...`. */
export function formatLogLine(e: TaskLogEntry): string {
  // task/version/source are implied by `logs NAME`; a task's own fields arrive nested under `fields`.
  const { time, level, msg, task: _task, version: _version, source, fields: nested, ...rest } = e
  const own = typeof nested === 'object' && nested !== null ? (nested as Record<string, unknown>) : {}
  const when = typeof time === 'number' ? new Date(time).toISOString() : String(time)
  const tag = source === 'lifecycle' ? ['[lifecycle]'] : []
  const extra = Object.entries({ ...rest, ...own }).map(([k, v]) => `${k}=${formatField(v)}`)
  return [when, String(level).toUpperCase().padEnd(5), ...tag, msg, ...extra].join(' ')
}

function formatField(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)
  return JSON.stringify(v) ?? String(v)
}
