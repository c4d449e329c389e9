import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { resolve } from 'node:path'
import type { z } from 'zod'
import { ConfigError } from '../core/errors.js'
import { BOARD_PROFILES, configSchema, DEFAULTS, type CoordinatorConfig } from './schema.js'

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

/** What a board profile is chosen by: the config's `hardware.profile` and `hardware.root`, and the data directory (its storage). */
export interface BoardSelection {
  profile: CoordinatorConfig['hardware']['profile']
  root: string
  dataDir: string
}

/** Default values for the chosen board, shaped like the config (e.g. { tasks: { maxConcurrentCalls: 2 } }). */
export type BoardDefaults = (selection: BoardSelection) => Record<string, unknown>

export interface LoadOptions {
  /** Path to a JSON config file; optional, defaults need no file. */
  file?: string
  /** Overrides from the command line, already shaped like the config (e.g. { listeners: { mqtt: { port: 0 } } }). */
  overrides?: Record<string, unknown>
  /** The board profile's defaults, layered between DEFAULTS and the file; none: DEFAULTS alone. */
  boardDefaults?: BoardDefaults
}

/**
 * Merges DEFAULTS < board profile < file < overrides once, validates every key and returns a
 * frozen config. The profile sits under the file so any key an operator writes wins over it.
 */
export function loadConfig(opts: LoadOptions = {}): Readonly<CoordinatorConfig> {
  const fromFile = opts.file === undefined ? {} : readConfigFile(opts.file)
  const explicitOver = (base: Json): Json => deepMerge(deepMerge(base, fromFile), (opts.overrides ?? {}) as Json)
  const defaults = DEFAULTS as unknown as Json
  const parsed = configSchema.safeParse(explicitOver(deepMerge(defaults, boardLayer(explicitOver(defaults), opts.boardDefaults))))
  if (!parsed.success) throw new ConfigError(describeIssues(parsed.error.issues, opts.file))
  const config = parsed.data
  checkPolicyReferences(config, opts.file)
  config.dataDir = resolve(config.dataDir)
  if (config.log.file !== null) config.log.file = resolve(config.log.file)
  return deepFreeze(config)
}

/** The profile's defaults; skipped while `hardware` is malformed, which validation then reports by key. */
function boardLayer(merged: Json, boardDefaults: BoardDefaults | undefined): Json {
  if (boardDefaults === undefined || !isPlainObject(merged)) return {}
  const hw = merged['hardware']
  const dataDir = merged['dataDir']
  if (!isPlainObject(hw) || typeof dataDir !== 'string') return {}
  const { profile, root } = hw
  if (typeof root !== 'string' || !(BOARD_PROFILES as readonly unknown[]).includes(profile)) return {}
  return boardDefaults({ profile: profile as BoardSelection['profile'], root, dataDir: resolve(dataDir) }) as Json
}

/** Names must point at defined policies; resources are checked by the policy engine at start. */
function checkPolicyReferences(config: CoordinatorConfig, file: string | undefined): void {
  const defined = new Set(config.policies.map((p) => p.name))
  const missing = config.auth.anonymousPolicies.filter((name) => !defined.has(name))
  if (missing.length > 0) {
    const where = file === undefined ? '' : ` in ${file}`
    throw new ConfigError(`invalid configuration${where}:\n  auth.anonymousPolicies: policy '${missing[0]}' is not defined in policies`)
  }
}

export function readConfigFile(file: string): Json {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, { cause: err })
  }
  try {
    return JSON.parse(text) as Json
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
}

export function describeIssues(issues: readonly z.core.$ZodIssue[], file: string | undefined): string {
  const lines = issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(root)'
    if (issue.code === 'unrecognized_keys') return `${path}: unknown key(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`
    return `${path}: ${issue.message}`
  })
  return `invalid configuration${file === undefined ? '' : ` in ${file}`}:\n  ${lines.join('\n  ')}`
}

/** Objects merge key by key; arrays, scalars and null replace. */
export function deepMerge(base: Json, over: Json): Json {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over
  const out: { [k: string]: Json } = { ...base }
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue
    out[k] = k in base ? deepMerge(base[k] as Json, v) : v
  }
  return out
}

function isPlainObject(v: unknown): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const child of Object.values(v)) deepFreeze(child)
    Object.freeze(v)
  }
  return v
}

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1'
}

/** Whether anonymous loopback clients are let in, resolving 'auto' against the listeners. */
export function anonymousLoopbackAllowed(config: CoordinatorConfig): boolean {
  const setting = config.auth.allowAnonymousLoopback
  if (setting !== 'auto') return setting
  const { mqtt, mqtts, ws } = config.listeners
  return [mqtt, mqtts, ws].every((l) => l === null || isLoopbackHost(l.host))
}
