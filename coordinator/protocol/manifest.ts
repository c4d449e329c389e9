/**
 * The task manifest (`task.json`): what a task is, what starts it, what it may touch and how much it
 * may use. zod checks the shape and fills defaults; cross-field rules then check triggers against
 * permissions and config defaults against the config schema. Every error names the field path and
 * what was expected, because the person reading it is a task author looking at their task.json.
 */
import { z } from 'zod'
import { Cron } from 'croner'
import { SHADOW_NAME_PATTERN, THING_NAME_PATTERN } from './shadow-topics.js'
import { filterCovers, isValidTopicFilter } from './topic-filter.js'
import { configSchemaErrors, formatPath, show } from './task-config.js'

export { resolveConfig, type ResolvedConfig } from './task-config.js'

/** Also a path component (bundle file names, data directories): nothing else is allowed. */
export const TASK_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/
/** MAJOR.MINOR.PATCH with an optional -prerelease (semver 2.0.0 §2, §9); no build metadata. */
export const VERSION_PATTERN = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?$/
const IDENTIFIER_PATTERN = /^[A-Za-z_$][A-Za-z0-9_$]*$/
const CAPABILITY_PATTERN = /^[a-z0-9][a-z0-9._:=-]{0,62}$/
const EVERY_PATTERN = /^(\d+)(ms|s|m|h)$/
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
/** Shorter schedules are a busy loop on a gateway, not a schedule. */
export const MIN_EVERY_MS = 100
/** setTimeout's ceiling (2^31-1 ms, about 24.8 days); longer periods are what cron is for. */
export const MAX_EVERY_MS = 2_147_483_647

export const DEFAULT_LIMITS = Object.freeze({ memoryMb: 32, cpuMsPerCall: 100, wallMsPerCall: 5000, maxConcurrent: 1, queueSize: 1000 })

export const isValidTaskName = (s: string): boolean => TASK_NAME_PATTERN.test(s)

type IssueInput = { readonly input?: unknown }
const expected = (what: string) => (iss: IssueInput): string =>
  iss.input === undefined ? `is required (expected ${what})` : `expected ${what}, got ${show(iss.input)}`

function intIn(min: number, max: number) {
  const error = expected(`an integer from ${min} to ${max}`)
  return z.int({ error }).min(min, { error }).max(max, { error })
}

const pattern = (re: RegExp, what: string) => z.string({ error: expected(what) }).regex(re, { error: expected(what) })

const taskName = pattern(TASK_NAME_PATTERN, '1-63 characters of a-z 0-9 - starting with a letter or digit')
const thingName = pattern(THING_NAME_PATTERN, 'a device name (1-128 characters of a-z A-Z 0-9 : _ -)')
const topicFilter = z.string().refine(isValidTopicFilter, { error: expected('a valid MQTT topic filter') })

/** Matches the devices that carry every listed attribute with that value. */
const attributeSelector = z.strictObject({ attributes: z.record(z.string(), z.string()) })
  .refine((s) => Object.keys(s.attributes).length > 0, { error: 'expected at least one attribute (an empty selector would match every device)', path: ['attributes'] })
const deviceSelector = z.union([thingName, attributeSelector], {
  error: (iss) => typeof iss.input === 'object' && iss.input !== null
    ? `expected {"attributes": {"key": "value", ...}}, got ${show(iss.input)}`
    : `expected a device name (1-128 characters of a-z A-Z 0-9 : _ -) or {"attributes": {...}}, got ${show(iss.input)}`,
})

const mqttTrigger = z.strictObject({ type: z.literal('mqtt'), filter: topicFilter })
const scheduleTrigger = z.strictObject({
  type: z.literal('schedule'),
  every: z.union([z.string(), z.number()]).refine((v) => everyMs(v) !== undefined, {
    error: expected(`a duration like "500ms", "30s", "5m", "1h" or a number of milliseconds, from ${MIN_EVERY_MS} ms to ${MAX_EVERY_MS} ms`),
  }).optional(),
  cron: z.string().superRefine((cron, ctx) => {
    const problem = cronProblem(cron)
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `invalid cron expression ${show(cron)}: ${problem}` })
  }).optional(),
}).refine((t) => (t.every === undefined) !== (t.cron === undefined), { error: 'a schedule trigger needs exactly one of "every" or "cron"' })
const shadowDeltaTrigger = z.strictObject({
  type: z.literal('shadow-delta'),
  devices: z.array(deviceSelector).min(1, { error: 'expected at least one device or selector' }),
  shadowName: pattern(SHADOW_NAME_PATTERN, 'a shadow name (1-64 characters of a-z A-Z 0-9 $ : _ -)').optional(),
})
const invokeTrigger = z.strictObject({ type: z.literal('invoke') })
const trigger = z.discriminatedUnion('type', [mqttTrigger, scheduleTrigger, shadowDeltaTrigger, invokeTrigger])

const list = <T extends z.ZodType>(item: T) => z.array(item).default(() => [])

const permissions = z.strictObject({
  publish: list(topicFilter),
  subscribe: list(topicFilter),
  devices: list(deviceSelector),
  invoke: list(taskName),
}).prefault({})

/**
 * Requests, not grants: a coordinator grants each up to its operator's caps (config `tasks.caps`,
 * shown as TaskInfo.limits.granted), except memoryMb, which it refuses above its own maximum.
 */
const limits = z.strictObject({
  /** Isolate heap. */
  memoryMb: intIn(8, 512).default(DEFAULT_LIMITS.memoryMb),
  /** CPU time of one call (start included). */
  cpuMsPerCall: intIn(1, 60_000).default(DEFAULT_LIMITS.cpuMsPerCall),
  /** Wall time of one call, awaited host calls included. */
  wallMsPerCall: intIn(1, 600_000).default(DEFAULT_LIMITS.wallMsPerCall),
  /** Calls of this task running at once. */
  maxConcurrent: intIn(1, 64).default(DEFAULT_LIMITS.maxConcurrent),
  /** Calls waiting beyond that; more are rejected (counted in metrics.rejected). */
  queueSize: intIn(1, 100_000).default(DEFAULT_LIMITS.queueSize),
}).prefault({})

const jsonObject = (what: string) => z.record(z.string(), z.unknown(), { error: expected(what) })

const config = z.strictObject({
  /** JSON Schema (draft-07) of the resolved config object. */
  schema: jsonObject('a JSON Schema object').default(() => ({ type: 'object' })),
  defaults: jsonObject('an object').default(() => ({})),
}).prefault({})

export const manifestSchema = z.strictObject({
  name: taskName,
  version: pattern(VERSION_PATTERN, 'a semantic version MAJOR.MINOR.PATCH[-prerelease]'),
  description: z.string().max(1024).optional(),
  entry: z.string().refine(isInsideRelativePath, { error: expected('a relative path inside the task directory (no "..", not absolute)') }),
  handler: pattern(IDENTIFIER_PATTERN, 'a JavaScript identifier').default('handler'),
  mode: z.enum(['on-demand', 'long-lived']).default('on-demand'),
  priority: z.enum(['control', 'normal', 'bulk']).default('normal'),
  triggers: z.array(trigger).default(() => []),
  permissions,
  limits,
  config,
  requires: list(pattern(CAPABILITY_PATTERN, 'a capability tag (a-z 0-9 . _ : = -), e.g. gpio or arch=arm64')),
})

export type TaskManifest = z.output<typeof manifestSchema>
/** What an author writes: everything with a default may be left out. */
export type TaskManifestInput = z.input<typeof manifestSchema>
export type TaskTrigger = TaskManifest['triggers'][number]
export type MqttTrigger = Extract<TaskTrigger, { type: 'mqtt' }>
export type ScheduleTrigger = Extract<TaskTrigger, { type: 'schedule' }>
export type ShadowDeltaTrigger = Extract<TaskTrigger, { type: 'shadow-delta' }>
export type InvokeTrigger = Extract<TaskTrigger, { type: 'invoke' }>
export type DeviceSelector = string | { attributes: Record<string, string> }
export type TaskPermissions = TaskManifest['permissions']
export type TaskLimits = TaskManifest['limits']
export type TaskMode = TaskManifest['mode']
export type TaskPriority = TaskManifest['priority']

export type ManifestResult = { ok: true; manifest: TaskManifest } | { ok: false; errors: string[] }

/** Validates a parsed task.json and fills its defaults; errors read `path: expected ..., got ...`. */
export function parseManifest(json: unknown): ManifestResult {
  const parsed = manifestSchema.safeParse(json, { error: describeIssue })
  if (!parsed.success) return { ok: false, errors: parsed.error.issues.map((i) => `${formatPath(i.path) || '(root)'}: ${i.message}`) }
  const errors = crossFieldErrors(parsed.data)
  return errors.length === 0 ? { ok: true, manifest: parsed.data } : { ok: false, errors }
}

/**
 * '500ms', '30s', '5m', '1h' or a number of milliseconds, to milliseconds.
 * Throws a RangeError naming the accepted forms when `every` is none of them.
 */
export function parseEvery(every: string | number): number {
  const ms = everyMs(every)
  if (ms === undefined) throw new RangeError(`invalid schedule period ${show(every)}: expected "500ms", "30s", "5m", "1h" or ${MIN_EVERY_MS}-${MAX_EVERY_MS} milliseconds`)
  return ms
}

function everyMs(every: string | number): number | undefined {
  let ms: number
  if (typeof every === 'number') ms = every
  else {
    const m = EVERY_PATTERN.exec(every)
    if (m === null) return undefined
    ms = Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? NaN)
  }
  return Number.isInteger(ms) && ms >= MIN_EVERY_MS && ms <= MAX_EVERY_MS ? ms : undefined
}

/** Validated with croner, the library the scheduler runs them with; a pattern that never fires is refused too. */
function cronProblem(cron: string): string | undefined {
  try {
    // Without a callback, Cron only parses: it schedules nothing.
    return new Cron(cron).nextRun() === null ? 'it never fires' : undefined
  } catch (err) {
    return (err as Error).message.replace(/^CronPattern: /, '')
  }
}

/** Relative, forward slashes, never leaving the task directory: pack resolves it inside DIR. */
function isInsideRelativePath(p: string): boolean {
  if (p.length === 0 || p.includes('\\') || p.includes('\0') || p.startsWith('/') || /^[A-Za-z]:/.test(p)) return false
  return p.split('/').every((segment) => segment !== '..' && segment !== '')
}

/** Messages for the issues no schema above words itself. */
function describeIssue(iss: z.core.$ZodRawIssue): string {
  switch (iss.code) {
    case 'invalid_type':
      return iss.input === undefined ? `is required (expected ${iss.expected})` : `expected ${iss.expected}, got ${show(iss.input)}`
    case 'unrecognized_keys':
      return `unknown key${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => `"${k}"`).join(', ')}`
    case 'invalid_value':
      return `expected ${iss.values.length === 1 ? show(iss.values[0]) : `one of ${iss.values.map(show).join(', ')}`}, got ${show(iss.input)}`
    case 'invalid_union':
      return 'options' in iss && Array.isArray(iss.options)
        ? `expected one of ${iss.options.map(show).join(', ')}, got ${show(discriminatorValue(iss))}`
        : `unexpected value ${show(iss.input)}`
    case 'too_small':
      return `expected at least ${iss.minimum as number} ${iss.origin === 'array' ? 'item(s)' : iss.origin === 'string' ? 'character(s)' : ''}`.trimEnd()
    case 'too_big':
      return `expected at most ${iss.maximum as number} ${iss.origin === 'array' ? 'item(s)' : iss.origin === 'string' ? 'character(s)' : ''}`.trimEnd()
    default:
      return `unexpected value ${show(iss.input)}`
  }
}

/** A discriminated union reports the whole object as its input; the author wants to see the tag. */
function discriminatorValue(iss: z.core.$ZodRawIssue): unknown {
  const key = (iss as { discriminator?: unknown }).discriminator
  return typeof key === 'string' && typeof iss.input === 'object' && iss.input !== null ? (iss.input as Record<string, unknown>)[key] : iss.input
}

function crossFieldErrors(m: TaskManifest): string[] {
  return [...triggerErrors(m), ...modeErrors(m), ...limitErrors(m.limits), ...configSchemaErrors(m.config)]
}

/** A trigger is a standing subscription: it may not reach further than the permissions do. */
function triggerErrors(m: TaskManifest): string[] {
  return m.triggers.flatMap((t, i) => {
    if (t.type === 'mqtt') {
      const covered = m.permissions.subscribe.some((granted) => filterCovers(granted, t.filter))
      return covered ? [] : [`triggers[${i}].filter: "${t.filter}" is not covered by any permissions.subscribe filter`]
    }
    if (t.type === 'shadow-delta') return t.devices.flatMap((d, j) => deviceNotPermitted(d, m.permissions.devices, `triggers[${i}].devices[${j}]`))
    return []
  })
}

/**
 * A named device must be listed by name: its attributes are not known when the manifest is
 * checked, so an attribute selector in permissions cannot vouch for it. A selector must equal one.
 */
function deviceNotPermitted(d: DeviceSelector, granted: readonly DeviceSelector[], path: string): string[] {
  if (typeof d === 'string') return granted.includes(d) ? [] : [`${path}: device "${d}" is not in permissions.devices`]
  const same = granted.some((g) => typeof g !== 'string' && sameAttributes(g.attributes, d.attributes))
  return same ? [] : [`${path}: selector ${show(d.attributes)} does not equal any attribute selector in permissions.devices`]
}

function sameAttributes(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k])
}

function modeErrors(m: TaskManifest): string[] {
  if (m.mode === 'long-lived') {
    return m.handler === 'start' ? ['handler: "start" is the start function of a long-lived task; name the handler differently'] : []
  }
  return m.triggers.length === 0 ? ['triggers: an on-demand task with no trigger never runs: add a trigger (e.g. {"type": "invoke"}) or use mode "long-lived"'] : []
}

function limitErrors(l: TaskLimits): string[] {
  return l.wallMsPerCall < l.cpuMsPerCall
    ? [`limits.wallMsPerCall: expected at least limits.cpuMsPerCall (${l.cpuMsPerCall}), got ${l.wallMsPerCall}`]
    : []
}
