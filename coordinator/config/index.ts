export { configSchema, DEFAULTS, type CoordinatorConfig } from './schema.js'
export { loadConfig, isLoopbackHost, anonymousLoopbackAllowed, type LoadOptions, type BoardSelection, type BoardDefaults } from './load.js'
export { readConfigFile, describeIssues, deepMerge, deepFreeze } from './load.js'
