export { startApi, type ApiOptions } from './server.js'
