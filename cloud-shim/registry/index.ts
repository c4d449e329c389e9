export { Registry, type RegistryEvents, type RegistryOptions, type ThingFilter } from './registry.js'
export { compileQuery, QueryError, type Query, type QueryNode, type QueryTarget } from './query.js'
export { checkName, type Thing, type ThingKind, type ThingInput, type ThingPatch, type Group, type GroupKind, type GroupDefinition } from './types.js'
export { serveSelfRegistration, REGISTER_FILTER } from './self-registration.js'
