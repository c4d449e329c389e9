import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { writeFileAtomic } from '../../../coordinator/core/atomic-file.js'
import { tempDir } from '../../helpers/tmp.js'

describe('writeFileAtomic', () => {
  let tmp: ReturnType<typeof tempDir>
  beforeEach(() => {
    tmp = tempDir()
  })
  afterEach(() => tmp.remove())

  it('should write a secret 0600 by default, replacing a wider file whole, with no temporary file left', () => {
    const file = join(tmp.dir, 'api-token')
    writeFileSync(file, 'old\n', { mode: 0o644 })
    writeFileAtomic(file, 'new-token\n')
    expect(readFileSync(file, 'utf8')).toBe('new-token\n')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readdirSync(tmp.dir)).toEqual(['api-token'])
  })

  it('should give exactly the mode asked for, and clean up when the write fails', () => {
    const cert = join(tmp.dir, 'cert.pem')
    writeFileAtomic(cert, new Uint8Array([1, 2, 3]), 0o644)
    expect(statSync(cert).mode & 0o777).toBe(0o644)
    // The rename fails after the temporary file was written: a directory is in the way.
    mkdirSync(join(tmp.dir, 'key.pem'))
    expect(() => writeFileAtomic(join(tmp.dir, 'key.pem'), 'x')).toThrow(/EISDIR/)
    expect(readdirSync(tmp.dir).sort()).toEqual(['cert.pem', 'key.pem'])
  })
})
