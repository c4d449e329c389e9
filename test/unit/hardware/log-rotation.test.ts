import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../../coordinator/core/log.js'
import { RotatingFile } from '../../../coordinator/core/rotating-file.js'
import { tempDir } from '../../helpers/tmp.js'

const lines = (path: string): string[] => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : [])

describe('size-capped log file', () => {
  const tmp = tempDir('edge-log-')
  afterAll(() => tmp.remove())

  it('rotates past maxBytes and keeps maxFiles old files, so the log stays bounded', () => {
    const path = join(tmp.dir, 'a', 'coordinator.log')
    const file = new RotatingFile({ path, maxBytes: 1000, maxFiles: 2 })
    for (let i = 0; i < 100; i++) file.write(`${JSON.stringify({ i, msg: 'x'.repeat(80) })}\n`)
    expect(existsSync(`${path}.3`)).toBe(false)
    for (const f of [path, `${path}.1`, `${path}.2`]) expect(statSync(f).size).toBeLessThan(1000 + 100)
    const newest = lines(path).map((l) => (JSON.parse(l) as { i: number }).i)
    expect(newest.at(-1)).toBe(99)
    const older = lines(`${path}.1`).map((l) => (JSON.parse(l) as { i: number }).i)
    expect(older.at(-1)).toBe((newest[0] ?? 0) - 1)
  })

  it('counts what an existing file already holds', () => {
    const path = join(tmp.dir, 'existing.log')
    writeFileSync(path, 'y'.repeat(990))
    const file = new RotatingFile({ path, maxBytes: 1000, maxFiles: 1 })
    file.write('{"msg":"pushes it over"}\n')
    expect(readFileSync(`${path}.1`, 'utf8')).toMatch(/^y{990}\{"msg":"pushes it over"\}\n$/)
  })

  it('is what the logger writes to when log.file is set', async () => {
    const path = join(tmp.dir, 'daemon.log')
    const log = createLogger({ level: 'info', file: { path, maxBytes: 64 * 1024, maxFiles: 2 } })
    log.info({ thingName: 'relay-1' }, 'gpio line opened')
    await expect.poll(() => lines(path).length, { timeout: 3000 }).toBe(1)
    expect(JSON.parse(lines(path)[0] ?? '{}')).toMatchObject({ level: 30, msg: 'gpio line opened', thingName: 'relay-1' })
  })
})
