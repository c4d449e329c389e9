/**
 * A lost or damaged CA is never replaced silently: every device certificate hangs off it. Start-up
 * stops naming the file and both ways out; `certs init --force` recovers, keeping the old pki/ aside.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { CLOUD_BIN, runBin, startCloudDaemon } from '../helpers/cloud-shim.js'
import { BIN, killHard, startDaemon } from '../helpers/daemon.js'
import { tempDir } from '../helpers/tmp.js'

describe('an unusable CA stops start-up', () => {
  const dirs: Array<{ remove(): void }> = []
  afterEach(() => { for (const d of dirs.splice(0)) d.remove() })

  const initialised = async (): Promise<string> => {
    const tmp = tempDir()
    dirs.push(tmp)
    await killHard(await startDaemon(['--data-dir', tmp.dir]))
    return tmp.dir
  }

  it('refuses when the CA key is gone, naming the file and both fixes; certs init --force recovers', async () => {
    const dir = await initialised()
    const oldCa = readFileSync(join(dir, 'pki', 'ca.pem'), 'utf8')
    rmSync(join(dir, 'pki', 'ca.key'))

    const refused = startDaemon(['--data-dir', dir])
    await expect(refused).rejects.toThrow(`the CA is unusable: ${join(dir, 'pki', 'ca.key')} is missing (its certificate is there)`)
    await expect(refused).rejects.toThrow('Restore it from a backup, or run `certs init --force`')
    expect(readFileSync(join(dir, 'pki', 'ca.pem'), 'utf8')).toBe(oldCa)

    const init = await runBin(BIN, ['certs', 'init', '--force', '--data-dir', dir])
    expect(init.code, init.stderr).toBe(0)
    expect(init.stdout).toMatch(/moved the old CA aside to .*pki\.replaced-.*: every device needs new credentials/)
    const aside = readdirSync(dir).filter((f) => f.startsWith('pki.replaced-'))
    expect(aside).toHaveLength(1)
    expect(readFileSync(join(dir, aside[0] as string, 'ca.pem'), 'utf8')).toBe(oldCa)
    expect(readFileSync(join(dir, 'pki', 'ca.pem'), 'utf8')).not.toBe(oldCa)
    await killHard(await startDaemon(['--data-dir', dir]))
  })

  it('refuses a CA certificate that does not parse, and one whose key belongs to another CA', async () => {
    const dir = await initialised()
    const caPem = join(dir, 'pki', 'ca.pem')
    const good = readFileSync(caPem, 'utf8')
    writeFileSync(caPem, good.slice(0, 200))
    await expect(startDaemon(['--data-dir', dir])).rejects.toThrow(`the CA is unusable: ${caPem} is not a PEM certificate`)

    const other = await initialised()
    writeFileSync(caPem, readFileSync(join(other, 'pki', 'ca.pem')))
    await expect(startDaemon(['--data-dir', dir])).rejects.toThrow(`${join(dir, 'pki', 'ca.key')} does not belong to the certificate in ${caPem}`)
    writeFileSync(caPem, good)
    await killHard(await startDaemon(['--data-dir', dir]))
  })

  it('edge-cloud start refuses the same way', async () => {
    const tmp = tempDir()
    dirs.push(tmp)
    const args = ['--data-dir', tmp.dir, '--mqtt-port', '0', '--mqtts-port', '0', '--http-port', '0']
    const first = await startCloudDaemon(args)
    await first.stop()
    rmSync(join(tmp.dir, 'pki', 'ca.key'))
    await expect(startCloudDaemon(args)).rejects.toThrow(`the CA is unusable: ${join(tmp.dir, 'pki', 'ca.key')} is missing`)
    expect(existsSync(join(tmp.dir, 'pki', 'ca.pem'))).toBe(true)
    const init = await runBin(CLOUD_BIN, ['certs', 'init', '--force', '--data-dir', tmp.dir])
    expect(init.code, init.stderr).toBe(0)
    await (await startCloudDaemon(args)).stop()
  })
})
