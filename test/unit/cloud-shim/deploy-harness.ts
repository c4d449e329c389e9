/**
 * The deployment service on a real SQLite file, registry and catalog, with a recording delivery
 * instead of shadows and a hand-moved clock: the orchestrator's rules without processes.
 */
import { join } from 'node:path'
import type { Clock } from '../../../coordinator/core/clock.js'
import { silentLogger } from '../../../coordinator/core/log.js'
import { DEFAULT_SHADOW_LIMITS, type DeployStatus, type DesiredDeployment } from '../../../coordinator/protocol/index.js'
import { openDatabase, type Db } from '../../../coordinator/store/index.js'
import { Catalog } from '../../../cloud-shim/catalog/index.js'
import { DeploymentService, type CreateRequest, type DeploymentDetail } from '../../../cloud-shim/deploy/index.js'
import { Registry } from '../../../cloud-shim/registry/index.js'
import { makeBundle } from '../../helpers/cloud-shim.js'
import { tempDir } from '../../helpers/tmp.js'

export interface Write {
  coordinator: string
  desired: DesiredDeployment
}

export interface DeployHarness {
  db: Db
  clock: Clock & { t: number }
  registry: Registry
  service: DeploymentService
  writes: Write[]
  coordinator(name: string, attributes?: Record<string, string>, tags?: string[]): void
  create(req: Partial<CreateRequest> & Pick<CreateRequest, 'target'>): DeploymentDetail
  /** The last desired document written to `coordinator`. */
  last(coordinator: string): DesiredDeployment
  /** Reports `status` for the coordinator's last desired revision. */
  report(coordinator: string, status: DeployStatus, error?: string): void
  states(id: string): Record<string, string>
  restart(): Promise<void>
  close(): void
}

const log = silentLogger()

export async function deployHarness(): Promise<DeployHarness> {
  const tmp = tempDir('edge-deploy-unit-')
  const clock = { t: 1_700_000_000_000, now() { return this.t } }
  let db = openDatabase(join(tmp.dir, 'cloud.db'))
  let registry = new Registry({ db, clock, log })
  const catalog = (): Catalog => new Catalog({ db, dir: join(tmp.dir, 'bundles'), trust: { trustedKeys: [], allowUnsigned: true }, maxBundleBytes: 1 << 20, clock, log })
  for (const [name, version, requires] of [['hello', '1.0.0', []], ['hello', '2.0.0', []], ['cam', '1.0.0', ['camera']]] as const) {
    await catalog().upload(makeBundle({ name, version, requires: [...requires] }))
  }
  const writes: Write[] = []
  const build = (): DeploymentService => new DeploymentService({
    db, registry, catalog: catalog(), reports: () => () => {}, limits: DEFAULT_SHADOW_LIMITS, httpUrl: () => 'http://cloud.test:8090',
    clock, log, tickMs: 3_600_000,
    delivery: {
      write: async (coordinator, desired) => {
        writes.push({ coordinator, desired })
        return null
      },
      read: async () => ({ desiredRevision: null, report: null }),
    },
  })
  const h: DeployHarness = {
    db, clock, registry, writes, service: build(),
    coordinator: (name, attributes = { site: 'north' }, tags = []) => void registry.createThing({ name, kind: 'coordinator', attributes, tags }),
    create: (req) => h.service.create({ bundles: [{ name: 'hello', version: '1.0.0' }], ...req }),
    last: (coordinator) => {
      const w = writes.filter((x) => x.coordinator === coordinator).at(-1)
      if (w === undefined) throw new Error(`nothing was written to ${coordinator}`)
      return w.desired
    },
    report: (coordinator, status, error) => {
      const d = h.last(coordinator)
      h.service.handleReport(coordinator, { deploymentId: d.deploymentId, revision: d.revision, status, tasks: [], at: new Date(clock.t).toISOString(), ...(error === undefined ? {} : { error }) })
    },
    states: (id) => Object.fromEntries(h.service.get(id).targets.map((t) => [t.coordinator, t.state])),
    restart: async () => {
      h.service.close()
      db.close()
      db = h.db = openDatabase(join(tmp.dir, 'cloud.db'))
      registry = h.registry = new Registry({ db, clock, log })
      h.service = build()
      await h.service.start()
    },
    close: () => {
      h.service.close()
      db.close()
      tmp.remove()
    },
  }
  await h.service.start()
  return h
}
