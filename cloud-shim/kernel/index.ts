export { CloudShim } from './cloud-shim.js'
export {
  advertisedUrls, requireUrl, readEndpointsFile, ensureCa, cloudDatabaseFile, endpointsFile, apiTokenFile, bundlesDir,
  type CloudEndpoints, type CloudEndpointsFile,
} from './files.js'
