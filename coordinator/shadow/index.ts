export { ShadowService, type ShadowServiceOptions, type ShadowResult } from './shadow-service.js'
