/** What `edge deploy` reads from the API and how it shows it: parsing of its options, the status table. */
import { InvalidArgumentError } from '../../../coordinator/core/errors.js'

export interface CoordinatorView {
  name: string
  state: string
  status: string | null
  revision: number | null
  rollbackRevision: number | null
  tasks: Array<{ name: string; version: string; state: string; lastError?: string }>
  error: string | null
  missingTags: string[]
  startedAt: string | null
  durationMs: number | null
}

export interface DeploymentView {
  id: string
  targetLabel: string
  status: string
  reason: string | null
  bundles: Array<{ name: string; version: string }>
  totals: Record<string, number>
  createdAt: string
  coordinators?: CoordinatorView[]
}

/** Statuses after which nothing more happens (unless a coordinator joins the group later). */
const SETTLED = new Set(['succeeded', 'completed-with-failures', 'aborted', 'rolled-back', 'rollback-failed', 'cancelled', 'superseded'])

export const isSettled = (d: DeploymentView): boolean => SETTLED.has(d.status) && (d.totals['in-progress'] ?? 0) === 0 && (d.totals['rolling-back'] ?? 0) === 0

/** `name@version` or `name@version:config.json`. */
export function parseBundleSpec(spec: string): { name: string; version: string; configFile?: string } {
  const m = /^([a-z0-9][a-z0-9-]*)@([^:\s]+)(?::(.+))?$/.exec(spec)
  if (m === null) throw new InvalidArgumentError(`--bundle ${JSON.stringify(spec)}: expected name@version or name@version:config.json`)
  const [, name = '', version = '', configFile] = m
  return configFile === undefined ? { name, version } : { name, version, configFile }
}

/** `1` (a count) or `20%` (a share of the eligible coordinators). */
export function parseThreshold(v: string): { count: number } | { percent: number } {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(v.trim())
  if (m === null) throw new InvalidArgumentError(`--failure-threshold ${JSON.stringify(v)}: expected a count like 1 or a percentage like 20%`)
  return m[2] === '%' ? { percent: Number(m[1]) } : { count: Number(m[1]) }
}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `90s`, `5m`, `2h`, `1d`, `500ms`; a bare number is seconds. */
export function parseDuration(v: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim())
  if (m === null) throw new InvalidArgumentError(`${what} ${JSON.stringify(v)}: expected a duration like 90s, 5m or 2h`)
  return Math.round(Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 1000))
}

export function formatMs(ms: number | null): string {
  if (ms === null) return '-'
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`
}

/** "3 targets: 2 succeeded, 1 in-progress": the non-zero counts only. */
export function totalsLine(totals: Record<string, number>): string {
  const parts = Object.entries(totals).filter(([k, n]) => k !== 'targets' && n > 0).map(([k, n]) => `${n} ${k}`)
  return `${totals['targets'] ?? 0} coordinator(s)${parts.length === 0 ? '' : `: ${parts.join(', ')}`}`
}

const taskCell = (c: CoordinatorView): string => c.tasks.map((t) => `${t.name}@${t.version} ${t.state}`).join(', ') || '-'

function elapsed(c: CoordinatorView, now: number): string {
  if (c.durationMs !== null) return formatMs(c.durationMs)
  return c.startedAt === null ? '-' : formatMs(now - Date.parse(c.startedAt))
}

/** The status display: a header, the totals, one row per coordinator. */
export function statusLines(d: DeploymentView, now = Date.now()): string[] {
  const header = `${d.id}  ${d.targetLabel}  ${d.status}${d.reason === null ? '' : ` (${d.reason})`}  ${d.bundles.map((b) => `${b.name}@${b.version}`).join(', ') || '(no bundles)'}`
  const rows = (d.coordinators ?? []).map((c) => [
    c.name, c.state, c.status ?? '-', String(c.rollbackRevision ?? c.revision ?? '-'), elapsed(c, now), taskCell(c), c.error ?? '',
  ])
  return [header, `  ${totalsLine(d.totals)}`, ...table(['coordinator', 'state', 'status', 'rev', 'time', 'tasks', 'error'], rows)]
}

function table(header: string[], rows: string[][]): string[] {
  const all = [header.map((h) => h.toUpperCase()), ...rows]
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)))
  return all.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join('  ').trimEnd())
}
