export { cloudConfigSchema, CLOUD_DEFAULTS, type CloudConfig } from './schema.js'
export { loadCloudConfig, anonymousLoopbackAllowed, type CloudLoadOptions } from './load.js'
