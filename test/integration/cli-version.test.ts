import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CLOUD_BIN, EDGE_BIN, runBin } from '../helpers/cloud-shim.js'
import { BIN } from '../helpers/daemon.js'

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
const TASK_BIN = new URL('../../bin/edge-task.js', import.meta.url).pathname

describe('--version', () => {
  for (const [name, bin] of [['edge-coordinator', BIN], ['edge-cloud', CLOUD_BIN], ['edge-task', TASK_BIN], ['edge', EDGE_BIN]] as const) {
    it(`${name} --version and -V print the package version and exit 0`, async () => {
      for (const flag of ['--version', '-V']) {
        const r = await runBin(bin, [flag])
        expect(r.code, r.stderr).toBe(0)
        expect(r.stdout).toBe(`${version}\n`)
      }
    })
  }
})
