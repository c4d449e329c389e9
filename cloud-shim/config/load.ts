import { resolve } from 'node:path'
import { deepFreeze, deepMerge, describeIssues, isLoopbackHost, readConfigFile } from '../../coordinator/config/index.js'
import { ConfigError } from '../../coordinator/core/errors.js'
import { CLOUD_DEFAULTS, cloudConfigSchema, type CloudConfig } from './schema.js'

type Json = Parameters<typeof deepMerge>[0]

export interface CloudLoadOptions {
  /** JSON config file; optional, the defaults need none. */
  file?: string
  /** Command-line overrides, shaped like the config. */
  overrides?: Record<string, unknown>
}

/** DEFAULTS < file < overrides, validated once (errors name the key), frozen; as the coordinator's. */
export function loadCloudConfig(opts: CloudLoadOptions = {}): Readonly<CloudConfig> {
  const fromFile = opts.file === undefined ? {} : readConfigFile(opts.file)
  const merged = deepMerge(deepMerge(CLOUD_DEFAULTS as unknown as Json, fromFile), (opts.overrides ?? {}) as Json)
  const parsed = cloudConfigSchema.safeParse(merged)
  if (!parsed.success) throw new ConfigError(describeIssues(parsed.error.issues, opts.file))
  const config = parsed.data
  config.dataDir = resolve(config.dataDir)
  return deepFreeze(config)
}

/** As the coordinator's 'auto': anonymous only while no MQTT listener is reachable from elsewhere. */
export function anonymousLoopbackAllowed(config: CloudConfig): boolean {
  const setting = config.auth.allowAnonymousLoopback
  if (setting !== 'auto') return setting
  const { mqtt, mqtts } = config.listeners
  return [mqtt, mqtts].every((l) => l === null || isLoopbackHost(l.host))
}
