import { existsSync, readFileSync } from 'node:fs'

/**
 * The version in the project's package.json, which every CLI reports with --version. This module is
 * two directories below package.json in the source tree and three in dist/.
 */
export function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    const file = new URL(up, import.meta.url)
    if (!existsSync(file)) continue
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown }
    if (pkg.name === 'edge-coordinator' && typeof pkg.version === 'string') return pkg.version
  }
  throw new Error('cannot find the edge-coordinator package.json to read its version')
}
