/**
 * A task's config: the manifest's defaults deep-merged with per-deployment overrides, validated
 * against the manifest's JSON Schema (draft-07, ajv). Errors read `config.<path>: <message>`.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import type { TaskManifest } from './manifest.js'

export type ResolvedConfig = { ok: true; config: Record<string, unknown> } | { ok: false; errors: string[] }

type TaskConfigSection = TaskManifest['config']

/**
 * strictSchema catches misspelt keywords, the usual config-schema mistake. Types, tuples and
 * `required` are left loose (authors write small schemas by hand), formats are not checked (no
 * ajv-formats here) and nothing is logged: the caller reports. verbose puts the bad value in errors.
 */
const ajv = new Ajv({
  allErrors: true, verbose: true, logger: false, validateFormats: false,
  strictSchema: true, strictTypes: false, strictTuples: false, strictRequired: false,
})

/** Compiled once per schema object: a manifest's config is resolved on every deployment. */
const compiled = new WeakMap<object, ValidateFunction>()

function validatorFor(schema: Record<string, unknown>): ValidateFunction {
  let validate = compiled.get(schema)
  if (validate === undefined) {
    validate = ajv.compile(schema)
    compiled.set(schema, validate)
  }
  return validate
}

/**
 * Manifest-time checks: the schema compiles and the defaults fit it. Defaults may leave out
 * `required` properties: those are the ones each deployment must supply (resolveConfig checks them).
 */
export function configSchemaErrors(config: TaskConfigSection): string[] {
  let validate: ValidateFunction
  try {
    validate = validatorFor(config.schema)
  } catch (err) {
    return [`config.schema: invalid JSON Schema: ${(err as Error).message}`]
  }
  if (validate(config.defaults)) return []
  return describeAjvErrors((validate.errors ?? []).filter((e) => e.keyword !== 'required'), 'config.defaults')
}

/**
 * The config a task instance runs with: defaults < overrides, then validated against the schema.
 * The result shares nothing with its inputs, so a task cannot alter the manifest through it.
 */
export function resolveConfig(manifest: Pick<TaskManifest, 'config'>, overrides: object = {}): ResolvedConfig {
  if (!isPlainObject(overrides)) return { ok: false, errors: [`config: expected an object of overrides, got ${show(overrides)}`] }
  const config = structuredClone(deepMerge(manifest.config.defaults, overrides))
  let validate: ValidateFunction
  try {
    validate = validatorFor(manifest.config.schema)
  } catch (err) {
    return { ok: false, errors: [`config.schema: invalid JSON Schema: ${(err as Error).message}`] }
  }
  return validate(config) ? { ok: true, config } : { ok: false, errors: describeAjvErrors(validate.errors ?? [], 'config') }
}

function describeAjvErrors(errors: readonly ErrorObject[], prefix: string): string[] {
  return errors.map((e) => {
    const at = pointerSegments(e.instancePath)
    if (e.keyword === 'required') return `${prefix}${formatPath([...at, String(e.params['missingProperty'])], true)}: is required`
    if (e.keyword === 'additionalProperties') {
      return `${prefix}${formatPath([...at, String(e.params['additionalProperty'])], true)}: is not allowed by the config schema`
    }
    return `${prefix}${formatPath(at, true)}: ${e.message ?? 'is invalid'}, got ${show(e.data)}`
  })
}

/** RFC 6901 JSON pointer to path segments; all-digit segments read as array indexes. */
function pointerSegments(pointer: string): (string | number)[] {
  if (pointer === '') return []
  return pointer.slice(1).split('/').map((s) => {
    const key = s.replaceAll('~1', '/').replaceAll('~0', '~')
    return /^(0|[1-9]\d*)$/.test(key) ? Number(key) : key
  })
}

/** `limits.memoryMb`, `triggers[0].filter`; `continued` when appended to a prefix. */
export function formatPath(path: readonly PropertyKey[], continued = false): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 && !continued ? String(p) : `.${String(p)}`)).join('')
}

/** A value as it appears in an error message, cut short: manifests can hold large objects. */
export function show(v: unknown): string {
  const s = v === undefined ? 'nothing' : (JSON.stringify(v) ?? String(v))
  return s.length > 80 ? `${s.slice(0, 77)}...` : s
}

type JsonObject = Record<string, unknown>

function isPlainObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v)
}

/**
 * Objects merge key by key; arrays, scalars and null replace; undefined leaves the default.
 * defineProperty, not assignment: a JSON key "__proto__" must stay a plain key.
 */
function deepMerge(base: JsonObject, over: JsonObject): JsonObject {
  const out: JsonObject = {}
  for (const [k, v] of Object.entries(base)) define(out, k, v)
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue
    const b = Object.hasOwn(base, k) ? base[k] : undefined
    define(out, k, isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v)
  }
  return out
}

function define(o: JsonObject, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true })
}
