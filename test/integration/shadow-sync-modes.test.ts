import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCloudShim, type RunningCloudShim } from '../helpers/cloud-shim.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { deleteShadow, provision, stateAt, until, untilState, updateShadow } from '../helpers/sync.js'
import { tempDir } from '../helpers/tmp.js'

const SYNC_MS = 15_000
/** Long enough for a change to have crossed if it were going to. */
const QUIET_MS = 1500

const settle = async (gw: RunningCoordinator): Promise<void> => {
  await new Promise((resolve) => setTimeout(resolve, QUIET_MS))
  await gw.coordinator.sync?.idle()
}

describe('shadow sync: one direction, and a restarted coordinator', () => {
  const tmp = tempDir()
  let cloud: RunningCloudShim
  const running: RunningCoordinator[] = []

  async function joined(name: string, sync: Record<string, unknown>, dataDir?: string): Promise<RunningCoordinator> {
    const joinFile = join(tmp.dir, `${name}.join.json`)
    const gw = await startCoordinator({ cloud: { joinFile, sync } }, { dataDir: dataDir ?? join(tmp.dir, name) })
    running.push(gw)
    await until(() => gw.coordinator.cloud?.link.state === 'connected', SYNC_MS, `${name} link up`)
    return gw
  }

  beforeAll(async () => {
    cloud = await startCloudShim({}, { dataDir: join(tmp.dir, 'cloud') })
    for (const name of ['gw-to', 'gw-from']) await provision(cloud, name, tmp.dir)
    await provision(cloud, 'gw-restart', tmp.dir, ['meter-1'])
  })
  afterAll(async () => {
    for (const gw of running) await gw.stop()
    await cloud.stop()
    tmp.remove()
  })

  it("to-cloud: sends local changes, ignores the cloud's, and overwrites them at the next sync", async () => {
    const gw = await joined('gw-to', { direction: 'to-cloud' })
    await updateShadow(gw, 'gw-to', { reported: { a: 1 } })
    await untilState(cloud, 'gw-to', { reported: { a: 1 } }, SYNC_MS)
    await updateShadow(cloud, 'gw-to', { desired: { x: 1 } })
    await settle(gw)
    expect(await stateAt(gw, 'gw-to')).toEqual({ reported: { a: 1 } })
    await updateShadow(gw, 'gw-to', { reported: { a: 2 } })
    await untilState(cloud, 'gw-to', { reported: { a: 2 } }, SYNC_MS)
  })

  it("from-cloud: applies the cloud's changes, never sends local ones, and overwrites them at the next sync", async () => {
    const gw = await joined('gw-from', { direction: 'from-cloud' })
    await updateShadow(cloud, 'gw-from', { desired: { x: 1 } })
    await untilState(gw, 'gw-from', { desired: { x: 1 } }, SYNC_MS)
    await updateShadow(gw, 'gw-from', { reported: { a: 1 } })
    await settle(gw)
    expect(await stateAt(cloud, 'gw-from')).toEqual({ desired: { x: 1 } })
    await updateShadow(cloud, 'gw-from', { desired: { x: 2 } })
    await untilState(gw, 'gw-from', { desired: { x: 2 } }, SYNC_MS)
  })

  it('resumes from its sync records after a restart: changes made while it was down merge against them', async () => {
    const dataDir = join(tmp.dir, 'gw-restart')
    const sync = { shadows: [{ thing: 'meter-1', classic: true, named: ['cfg'] }] }
    const first = await joined('gw-restart', sync, dataDir)
    await updateShadow(first, 'meter-1', { reported: { kwh: 1, old: true } })
    await updateShadow(first, 'meter-1', { reported: { rate: 5 } }, 'cfg')
    await untilState(cloud, 'meter-1', { reported: { kwh: 1, old: true } }, SYNC_MS)
    await untilState(cloud, 'meter-1', { reported: { rate: 5 } }, SYNC_MS, 'cfg')
    await first.coordinator.sync?.idle()
    await first.stop({ keepData: true })
    running.splice(running.indexOf(first), 1)

    // While the coordinator is down an operator removes a field and a named shadow. Without the
    // records a restart would take both for local additions and push them back to the cloud.
    await updateShadow(cloud, 'meter-1', { desired: { limit: 10 }, reported: { old: null } })
    await deleteShadow(cloud, 'meter-1', 'cfg')

    const second = await joined('gw-restart', sync, dataDir)
    await untilState(second, 'meter-1', { desired: { limit: 10 }, reported: { kwh: 1 } }, SYNC_MS)
    await untilState(second, 'meter-1', null, SYNC_MS, 'cfg')
    await settle(second)
    expect(await stateAt(cloud, 'meter-1')).toEqual({ desired: { limit: 10 }, reported: { kwh: 1 } })
    expect(await stateAt(cloud, 'meter-1', 'cfg')).toBeNull()
  })
})
