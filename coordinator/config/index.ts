export { configSchema, DEFAULTS, BOARD_PROFILES, BAUD_RATES, type CoordinatorConfig } from './schema.js'
export { loadConfig, isLoopbackHost, anonymousLoopbackAllowed, type LoadOptions, type BoardSelection, type BoardDefaults } from './load.js'
export { readConfigFile, describeIssues, deepMerge, deepFreeze } from './load.js'
