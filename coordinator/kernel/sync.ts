import type { Clock } from '../core/clock.js'
import type { Logger } from '../core/log.js'
import type { CoordinatorConfig } from '../config/index.js'
import type { Db } from '../store/index.js'
import type { ShadowService } from '../shadow/index.js'
import { SyncService, SyncStore, syncTargets } from '../sync/index.js'
import type { CloudConnection } from './cloud.js'

/** Starts shadow sync when the coordinator is joined to a cloud and the config names shadows. */
export async function startSync(
  config: CoordinatorConfig, cloud: CloudConnection | null, shadows: ShadowService, db: Db, clock: Clock, log: Logger,
): Promise<SyncService | null> {
  if (cloud === null) return null
  const targets = syncTargets(config.cloud.sync, cloud.join.name)
  if (targets.length === 0) return null
  const sync = new SyncService({
    name: cloud.join.name,
    targets,
    direction: config.cloud.sync.direction,
    local: shadows,
    link: cloud.link,
    outbox: cloud.outbox,
    store: new SyncStore(db),
    clock,
    log: log.child({ module: 'sync' }),
  })
  await sync.start()
  return sync
}
