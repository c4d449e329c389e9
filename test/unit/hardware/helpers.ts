import { join } from 'node:path'
import type { LocalBus } from '../../../coordinator/broker/index.js'
import { systemClock } from '../../../coordinator/core/clock.js'
import { silentLogger } from '../../../coordinator/core/log.js'
import type { JsonObject } from '../../../coordinator/protocol/index.js'
import { ShadowService } from '../../../coordinator/shadow/index.js'
import { ShadowStore, openDatabase } from '../../../coordinator/store/index.js'
import { tempDir } from '../../helpers/tmp.js'

/** The coordinator's own shadow service on a temp SQLite file; nothing listens on its bus. */
export async function shadowHarness(): Promise<{
  shadows: ShadowService
  update(thing: string, state: JsonObject): Promise<void>
  state(thing: string): Promise<{ desired?: JsonObject; reported?: JsonObject; delta?: JsonObject } | undefined>
  close(): Promise<void>
}> {
  const tmp = tempDir('edge-hw-')
  const db = openDatabase(join(tmp.dir, 'coordinator.db'), { synchronous: 'normal' })
  const bus: LocalBus = { publish: async () => {}, subscribe: async () => async () => {} }
  const shadows = new ShadowService({
    store: new ShadowStore(db), bus, limits: { maxStateBytes: 8192, maxDepth: 6, maxClientTokenBytes: 64 },
    maxRequestsPerSecondPerThing: 0, clock: systemClock, log: silentLogger(),
  })
  await shadows.start()
  return {
    shadows,
    update: async (thing, state) => {
      const r = await shadows.update({ thingName: thing }, Buffer.from(JSON.stringify({ state })))
      if (!r.accepted) throw new Error(`update refused: ${JSON.stringify(r.body)}`)
    },
    state: async (thing) => {
      const r = await shadows.get({ thingName: thing })
      return r.accepted ? (r.body['state'] as { desired?: JsonObject; reported?: JsonObject; delta?: JsonObject }) : undefined
    },
    close: async () => {
      await shadows.close()
      db.close()
      tmp.remove()
    },
  }
}

/** Awaits `check()` returning true, polling every 5 ms. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
