export { Backoff, backoffCeiling, fullJitterDelay, type BackoffOptions } from './backoff.js'
export {
  Outbox, OUTBOX_DEFAULTS,
  type DeadLetter, type DropPolicy, type EnqueueRejection, type EnqueueResult, type NackOutcome, type OutboxDeps,
  type OutboxInput, type OutboxMessage, type OutboxOpenOptions, type OutboxOptions, type OutboxStats,
} from './outbox.js'
export { CloudLink, type CloudLinkOptions, type CloudLinkStats, type CloudMessageHandler, type CloudTls, type LinkState } from './cloud-link.js'
