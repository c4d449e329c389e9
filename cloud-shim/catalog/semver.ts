/**
 * Semantic version precedence (semver 2.0.0 §11), for the versions the manifest schema admits
 * (MAJOR.MINOR.PATCH[-prerelease], no build metadata).
 */
export function compareVersions(a: string, b: string): number {
  const [coreA = '', preA] = splitOnce(a, '-')
  const [coreB = '', preB] = splitOnce(b, '-')
  const byCore = compareIdentifiers(coreA.split('.'), coreB.split('.'))
  if (byCore !== 0) return byCore
  // §11.3: a version without a pre-release ranks above the same version with one.
  if (preA === undefined || preB === undefined) return preA === preB ? 0 : preA === undefined ? 1 : -1
  return compareIdentifiers(preA.split('.'), preB.split('.'))
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep)
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)]
}

/** §11.4: numeric identifiers compare as numbers and rank below alphanumeric ones; a longer list wins a tie. */
function compareIdentifiers(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i]
    const y = b[i]
    if (x === undefined || y === undefined) return x === undefined ? -1 : 1
    const c = compareIdentifier(x, y)
    if (c !== 0) return c
  }
  return 0
}

function compareIdentifier(x: string, y: string): number {
  const nx = /^\d+$/.test(x)
  const ny = /^\d+$/.test(y)
  if (nx && ny) return Math.sign(Number(x) - Number(y))
  if (nx !== ny) return nx ? -1 : 1
  return x < y ? -1 : x > y ? 1 : 0
}
