import { readFileSync } from 'node:fs'

let cached: string | undefined

/**
 * The `version` of the repository's package.json. This module sits at
 * coordinator/core/version.ts in the source tree and at dist/coordinator/core/version.js
 * once built (tsconfig.build.json: rootDir ".", outDir "dist"), so package.json is
 * two or three directories up; the first one found that names a version wins.
 */
export function packageVersion(): string {
  if (cached !== undefined) return cached
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version?: unknown }
      if (typeof pkg.version === 'string') return (cached = pkg.version)
    } catch {
      // not here; try the next level up
    }
  }
  throw new Error('packageVersion: package.json not found above ' + import.meta.url)
}
