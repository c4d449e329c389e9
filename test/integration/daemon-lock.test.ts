import { readdirSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { startCloudDaemon, type CloudDaemon } from '../helpers/cloud-shim.js'
import { killHard, startDaemon, type Daemon } from '../helpers/daemon.js'
import { connect } from '../helpers/mqtt.js'
import { tempDir } from '../helpers/tmp.js'

describe('one daemon per data directory', () => {
  const running: Daemon[] = []
  const dirs: Array<{ remove(): void }> = []
  afterEach(async () => {
    for (const d of running.splice(0)) await killHard(d)
    for (const d of dirs.splice(0)) d.remove()
  })

  it('refuses a second daemon on the same data dir, naming the first; the first keeps serving', async () => {
    const tmp = tempDir()
    dirs.push(tmp)
    const first = await startDaemon(['--data-dir', tmp.dir])
    running.push(first)
    const before = readdirSync(tmp.dir).sort()

    await expect(startDaemon(['--data-dir', tmp.dir])).rejects.toThrow(
      new RegExp(`data dir ${tmp.dir} is in use by pid ${first.child.pid} \\(mqtt 127.0.0.1:${first.endpoints.mqtt.port}`),
    )

    expect(readdirSync(tmp.dir).sort()).toEqual(before)
    const client = await connect(`mqtt://127.0.0.1:${first.endpoints.mqtt.port}`)
    await client.endAsync()
  })

  it('a daemon killed with SIGKILL leaves no stale lock', async () => {
    const tmp = tempDir()
    dirs.push(tmp)
    await killHard(await startDaemon(['--data-dir', tmp.dir]))
    const second = await startDaemon(['--data-dir', tmp.dir])
    running.push(second)
    expect(second.child.pid).toBeGreaterThan(0)
  })

  describe('edge-cloud start', () => {
    const shims: CloudDaemon[] = []
    afterEach(async () => {
      for (const s of shims.splice(0)) {
        s.child.kill('SIGKILL')
        await s.exited
      }
    })
    const args = (dir: string): string[] => ['--data-dir', dir, '--mqtt-port', '0', '--mqtts-port', '0', '--http-port', '0']
    const port = (s: CloudDaemon, name: string): number => ((s.ready['endpoints'] as Record<string, { port: number }>)[name] as { port: number }).port

    it('refuses a second cloud shim on the same data dir, naming the first; the first keeps serving', async () => {
      const tmp = tempDir()
      dirs.push(tmp)
      const first = await startCloudDaemon(args(tmp.dir))
      shims.push(first)
      const before = readdirSync(tmp.dir).sort()

      await expect(startCloudDaemon(args(tmp.dir))).rejects.toThrow(
        new RegExp(`data dir ${tmp.dir} is in use by pid ${first.child.pid} \\(mqtt 127.0.0.1:${port(first, 'mqtt')}`),
      )

      expect(readdirSync(tmp.dir).sort()).toEqual(before)
      const client = await connect(`mqtt://127.0.0.1:${port(first, 'mqtt')}`)
      await client.endAsync()
    })

    it('a cloud shim killed with SIGKILL leaves no stale lock', async () => {
      const tmp = tempDir()
      dirs.push(tmp)
      const first = await startCloudDaemon(args(tmp.dir))
      first.child.kill('SIGKILL')
      await first.exited
      const second = await startCloudDaemon(args(tmp.dir))
      shims.push(second)
      expect(second.child.pid).toBeGreaterThan(0)
    })
  })
})
