export { ShadowService, REQUEST_BYTES_PER_STATE_BYTE, DEFAULT_MAX_NAMED_SHADOWS_PER_THING, type ShadowServiceOptions, type ShadowResult, type ShadowChange, type ShadowChangeListener } from './shadow-service.js'
export type { RefusalReason } from './refusals.js'
