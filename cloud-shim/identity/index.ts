export { CredentialStore, type CoordinatorCredential } from './credential-store.js'
export { RegistryPolicy, COORDINATOR_POLICY, devicesPolicyName, coordinatorIdentity } from './policy.js'
export { provisionCoordinator, writeJoinFile, joinFileName, type JoinDocument, type ProvisionRequest, type ProvisionContext } from './provision.js'
