import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BundleFiles } from '../../../coordinator/tasks/bundle-files.js'
import { tempDir } from '../../helpers/tmp.js'

const A = 'a'.repeat(64)
const B = 'b'.repeat(64)

describe('BundleFiles', () => {
  let tmp: ReturnType<typeof tempDir>
  let files: BundleFiles
  beforeEach(() => {
    tmp = tempDir()
    files = new BundleFiles(join(tmp.dir, 'bundles'))
  })
  afterEach(() => tmp.remove())

  it('writes a bundle under its digest and reads it back', async () => {
    await files.write(A, new Uint8Array([1, 2, 3]))
    expect(readdirSync(join(tmp.dir, 'bundles'))).toEqual([`${A}.bundle`])
    expect([...(await files.read(A))]).toEqual([1, 2, 3])
  })

  it('reuses an existing file for the same digest', async () => {
    await files.write(A, new Uint8Array([1]))
    await files.write(A, new Uint8Array([9]))
    expect([...readFileSync(files.path(A))]).toEqual([1])
  })

  it('prunes files whose digest is not kept', async () => {
    await files.write(A, new Uint8Array([1]))
    await files.write(B, new Uint8Array([2]))
    expect(await files.prune(new Set([A]))).toEqual([`${B}.bundle`])
    expect(readdirSync(join(tmp.dir, 'bundles'))).toEqual([`${A}.bundle`])
  })

  it('removes temporaries left by a crash only when asked', async () => {
    writeFileSync(join(tmp.dir, 'bundles', `.${A}.123.tmp`), 'partial')
    await files.prune(new Set())
    expect(readdirSync(join(tmp.dir, 'bundles'))).toHaveLength(1)
    expect(await files.removeTemporaries()).toEqual([`.${A}.123.tmp`])
  })

  it('refuses a digest that could escape the directory', () => {
    expect(() => files.path('../../etc/passwd')).toThrow(/unexpected characters/)
  })
})
