import { healthRoutes, shadowRoutes, type Route } from '../../coordinator/api/index.js'
import type { ShadowService } from '../../coordinator/shadow/index.js'
import type { Catalog } from '../catalog/index.js'
import type { DeploymentService } from '../deploy/index.js'
import type { Registry } from '../registry/index.js'
import { bundleRoutes } from './routes/bundles.js'
import { coordinatorRoutes, type Provision } from './routes/coordinators.js'
import { deploymentRoutes } from './routes/deployments.js'
import { groupRoutes } from './routes/groups.js'
import { thingRoutes } from './routes/things.js'

export { route, errorResult, parseBody, iso, type Action, type RequestContext } from './respond.js'
export { thingView } from './routes/things.js'
export type { Provision } from './routes/coordinators.js'

export interface CloudApiServices {
  registry: Registry
  catalog: Catalog
  shadows: ShadowService
  provision: Provision
  deployments: DeploymentService
  isReady(): boolean
}

/** Every route of the cloud shim's HTTP API; the coordinator's health and shadow routes included. */
export function cloudRoutes(s: CloudApiServices): Route[] {
  return [
    ...healthRoutes(s.isReady),
    ...shadowRoutes(s.shadows),
    ...thingRoutes(s.registry),
    ...groupRoutes(s.registry),
    ...coordinatorRoutes(s.provision),
    ...bundleRoutes(s.catalog),
    ...deploymentRoutes(s.deployments),
  ]
}
