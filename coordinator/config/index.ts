export { configSchema, DEFAULTS, brokerLimitsShape, BROKER_LIMIT_DEFAULTS, webSection, type CoordinatorConfig, type BrokerLimits } from './schema.js'
export { loadConfig, isLoopbackHost, anonymousLoopbackAllowed, type LoadOptions, type BoardSelection, type BoardDefaults } from './load.js'
export { readConfigFile, describeIssues, deepMerge, deepFreeze } from './load.js'
