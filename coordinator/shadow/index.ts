export { ShadowService, type ShadowServiceOptions, type ShadowResult, type ShadowChange, type ShadowChangeListener } from './shadow-service.js'
