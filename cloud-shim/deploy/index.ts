export { DeploymentService, type DeploymentServiceOptions, type DeploymentDetail } from './service.js'
export { ShadowDelivery, type Delivery, type ReportHandler } from './delivery.js'
export { DeployStore, type CoordinatorRecord, type RevisionRecord } from './deploy-store.js'
export { totals, type Totals } from './rollout.js'
export {
  createRequestSchema, snapshotRequestSchema, cancelRequestSchema, targetLabel, bundleLabel, NotApprovedError, ROLLOUT_DEFAULTS,
  type CreateRequest, type Deployment, type DeploymentStatus, type DeploymentTarget, type TargetState, type TargetRef, type RolloutPolicy,
  type ResolvedBundle, type Snapshot, type FailureThreshold,
} from './types.js'
