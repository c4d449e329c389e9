/**
 * The config files printed in the READMEs are what users copy: they must name every key with its
 * real default, so a key added to a schema without its README line fails here.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DEFAULTS } from '../../../coordinator/config/index.js'
import { CLOUD_DEFAULTS } from '../../../cloud-shim/config/index.js'

const ROOT = join(import.meta.dirname, '..', '..', '..')

/** The first ```json block after `heading` in a README. */
function configBlock(readme: string, heading: string): Record<string, unknown> {
  const text = readFileSync(join(ROOT, readme), 'utf8')
  const from = text.indexOf(heading)
  if (from < 0) throw new Error(`${readme} has no '${heading}'`)
  const block = /```json\n([\s\S]*?)\n```/.exec(text.slice(from))
  if (block?.[1] === undefined) throw new Error(`${readme} has no json block after '${heading}'`)
  return JSON.parse(block[1]) as Record<string, unknown>
}

describe('the config files in the READMEs', () => {
  it("README.md prints every coordinator key with its default (its policies are an example)", () => {
    const printed = configBlock('README.md', '## Config file')
    expect(printed['policies']).not.toEqual([])
    expect({ ...printed, policies: DEFAULTS.policies }).toEqual(DEFAULTS)
  })

  it('cloud-shim/README.md prints every cloud shim key with its default', () => {
    const printed = configBlock('cloud-shim/README.md', '```json')
    const { log, ...rest } = CLOUD_DEFAULTS as unknown as Record<string, unknown> & { log: Record<string, unknown> }
    const { log: printedLog, ...printedRest } = printed as Record<string, unknown> & { log: Record<string, unknown> }
    expect(printedRest).toEqual(rest)
    expect(log).toMatchObject(printedLog)
  })
})
