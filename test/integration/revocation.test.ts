import { afterAll, describe, expect, it } from 'vitest'
import { addDevice, runCli } from '../helpers/devices-cli.js'
import { startCoordinator } from '../helpers/coordinator.js'
import { connect } from '../helpers/mqtt.js'
import { tempDir } from '../helpers/tmp.js'

describe('device revocation', () => {
  const tmp = tempDir()
  afterAll(() => tmp.remove())

  it('disconnects a connected device once it is removed with the CLI, and refuses it afterwards', async () => {
    const device = await addDevice(tmp.dir, 'meter-9', ['--token', '--no-cert'])
    const run = await startCoordinator({ auth: { allowAnonymousLoopback: false } }, { dataDir: tmp.dir })
    try {
      const opts = { clientId: 'meter-9', username: 'meter-9', password: device.token ?? '' }
      const client = await connect(run.mqttUrl, opts)
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
      expect((await runCli(['devices', 'remove', 'meter-9', '--data-dir', tmp.dir])).code).toBe(0)
      await closed
      client.end(true)
      await expect(connect(run.mqttUrl, opts)).rejects.toThrow(/Bad username or password|Not authorized/)
    } finally {
      await run.stop({ keepData: true })
    }
  })
})
