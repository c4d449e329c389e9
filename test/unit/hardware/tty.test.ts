import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { TtySerialBackend, sttyArgs } from '../../../hardware/index.js'
import { tempDir } from '../../helpers/tmp.js'

/** A pseudo-terminal pair: prints the device path, then copies stdin into the port (a "sensor"). */
const PTY_SENSOR = [
  'import os, sys',
  'master, slave = os.openpty()',
  'print(os.ttyname(slave), flush=True)',
  'for line in sys.stdin:',
  '    os.write(master, line.encode())',
].join('\n')

const hasPython = spawnSync('python3', ['-c', 'import os; os.openpty()']).status === 0

describe('TtySerialBackend', () => {
  const tmp = tempDir('edge-tty-')
  afterAll(() => tmp.remove())

  it('configures the line for 8N1 raw at the given rate', () => {
    expect(sttyArgs('/dev/ttyUSB0', 9600)).toEqual(['-F', '/dev/ttyUSB0', '9600', 'cs8', '-cstopb', '-parenb', 'clocal', 'raw', '-echo'])
  })

  it('refuses what is not a serial device, naming it', async () => {
    const file = join(tmp.dir, 'not-a-tty')
    writeFileSync(file, '')
    const backend = new TtySerialBackend()
    await expect(backend.open({ path: file, baud: 9600, format: 'kv' })).rejects.toMatchObject({ code: 'COORD_HARDWARE_IO', message: expect.stringMatching(/not a character device/) })
    await expect(backend.open({ path: join(tmp.dir, 'ttyUSB9'), baud: 9600, format: 'kv' })).rejects.toMatchObject({ message: expect.stringMatching(/ttyUSB9: ENOENT/) })
  })

  it.skipIf(!hasPython)('reads lines from a terminal device set up by stty, and notices when it goes away', async () => {
    const sensor = spawn('python3', ['-u', '-c', PTY_SENSOR], { stdio: ['pipe', 'pipe', 'inherit'] })
    const path = await new Promise<string>((resolve) => createInterface({ input: sensor.stdout! }).once('line', resolve))
    const connection = await new TtySerialBackend().open({ path, baud: 19200, format: 'kv' })
    try {
      expect(execFileSync('stty', ['-F', path]).toString()).toMatch(/speed 19200 baud/)
      const lines: string[] = []
      connection.onLine((line) => lines.push(line))
      const lost = new Promise<Error>((resolve) => connection.onLost(resolve))
      sensor.stdin!.write('T=21.5;H=40\r\nT=21.6;H=41\n')
      await expect.poll(() => lines, { timeout: 3000 }).toEqual(['T=21.5;H=40', 'T=21.6;H=41'])
      sensor.stdin!.end()
      expect((await lost).message).toMatch(/serial (read failed|port closed)/)
    } finally {
      await connection.close()
      sensor.kill()
    }
  })
})
