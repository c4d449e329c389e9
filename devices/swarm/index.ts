/** The swarm runner behind `devices/cli.ts`, usable from code as well. */
export { Swarm, swarmNames, type SwarmOptions, type SwarmKind } from './swarm.js'
export { RateMeter, formatStatus, type SwarmSample } from './status.js'
export { parseTokenFile, credentialsFor, type Credentials, type CredentialSource } from './credentials.js'
