import { spawnSync } from 'node:child_process'
import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { DEFAULT_PORTS } from './no-default-ports.mjs'
import { loadConfig } from '../../coordinator/config/index.js'
import { loadCloudConfig } from '../../cloud-shim/config/index.js'

describe('the suite never binds a daemon default port', () => {
  it('covers every default listener port of both daemons', () => {
    const ports = [...Object.values(loadConfig({}).listeners), ...Object.values(loadCloudConfig({}).listeners)]
      .flatMap((l) => (l === null || l === undefined ? [] : [(l as { port: number }).port]))
    expect(ports.length).toBeGreaterThanOrEqual(7)
    for (const port of ports) expect(DEFAULT_PORTS.has(port), `default port ${port}`).toBe(true)
  })

  it('refuses a default port in a test worker', () => {
    for (const port of DEFAULT_PORTS) {
      expect(() => createServer().listen(port, '127.0.0.1'), `port ${port}`).toThrow(/listened on default port/)
      expect(() => createServer().listen({ port, host: '127.0.0.1' })).toThrow(/listened on default port/)
    }
  })

  it('refuses a default port in a Node child a test spawns', () => {
    const child = spawnSync(process.execPath, ['-e', "require('node:net').createServer().listen(8090, '127.0.0.1')"], { encoding: 'utf8' })
    expect(child.status).not.toBe(0)
    expect(child.stderr).toContain('a test listened on default port 8090')
  })

  it('leaves port 0 alone', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    expect((server.address() as { port: number }).port).toBeGreaterThan(0)
    await new Promise((resolve) => server.close(resolve))
  })
})
