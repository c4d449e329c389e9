import { readdirSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
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
})
