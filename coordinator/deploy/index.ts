export { Deployments, type DeployCloud, type DeploySettings } from './deployments.js'
export { DeployAgent, type DeployAgentOptions } from './agent.js'
export { DeployJournal, type JournalEntry, type JournalPhase, type ManagedSet, type PreviousSet } from './state.js'
export { recoverJournal } from './recover.js'
