import { join } from 'node:path'
import type { Clock } from '../core/clock.js'
import type { Logger } from '../core/log.js'
import type { CloudLink, Outbox } from '../cloud/index.js'
import type { Db } from '../store/index.js'
import { BundleFiles } from '../tasks/bundle-files.js'
import type { TaskService } from '../tasks/index.js'
import { TaskStore } from '../tasks/task-store.js'
import { DeployAgent } from './agent.js'
import { recoverJournal } from './recover.js'
import { DeployJournal } from './state.js'

/** The cloud pieces the agent uses (the kernel's CloudConnection has them). */
export interface DeployCloud {
  join: { name: string }
  link: CloudLink
  outbox: Outbox
}

export interface DeploySettings {
  dataDir: string
  maxBundleBytes: number
  healthCheckMs: number
  downloadAttempts: number
}

/**
 * What the kernel wires, in its order: the journal exists before the task service (which must
 * spare the bundles it names), recovery runs before any task starts, and the agent starts only
 * once a cloud link exists. Without a cloud nothing here touches the network.
 */
export class Deployments {
  readonly journal: DeployJournal
  readonly #db: Db
  readonly #clock: Clock
  readonly #log: Logger

  constructor(db: Db, clock: Clock, log: Logger) {
    this.journal = new DeployJournal(db, clock)
    this.#db = db
    this.#clock = clock
    this.#log = log
  }

  /** For TaskServiceOptions.retainBundles. */
  readonly retainedBundles = (): string[] => this.journal.retainedDigests()

  /** Before TaskService.start(): an apply cut short by a crash is rolled back at the row level. */
  recover(): void {
    recoverJournal(this.journal, new TaskStore(this.#db), this.#log)
  }

  async startAgent(cloud: DeployCloud | null, tasks: TaskService, s: DeploySettings): Promise<DeployAgent | null> {
    if (cloud === null) return null
    const bundleDir = join(s.dataDir, 'bundles')
    return DeployAgent.start({
      thingName: cloud.join.name, link: cloud.link, outbox: cloud.outbox, tasks, store: new TaskStore(this.#db),
      files: new BundleFiles(bundleDir), journal: this.journal, tmpDir: join(bundleDir, 'tmp'),
      maxBundleBytes: s.maxBundleBytes, healthCheckMs: s.healthCheckMs, downloadAttempts: s.downloadAttempts,
      clock: this.#clock, log: this.#log,
    })
  }
}
