/**
 * Every file in the repository must make sense to someone who has only the repository: no
 * citations of team-only notes or of design documents that are not in it, and no relative
 * markdown link to a file that does not exist. A reference is fine when it names a file the
 * repository itself holds.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, posix, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../../..')
/** This file's examples mention missing documents on purpose, so it is the one file not scanned for them. */
const SELF = relative(REPO, fileURLToPath(import.meta.url)).split(sep).join('/')

const SKIP_DIRS = new Set(['node_modules', 'dist', '.git'])

/** The repository's files (tracked, plus new ones not ignored), as repo-relative posix paths. */
function repoFiles(): string[] {
  let listed: string[]
  try {
    const out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: REPO,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    })
    listed = out.split('\0').filter((f) => f !== '')
  } catch {
    // No git (an unpacked tarball): walk the tree instead.
    listed = []
    const walk = (dir: string): void => {
      for (const entry of readdirSync(join(REPO, dir), { withFileTypes: true })) {
        if (SKIP_DIRS.has(entry.name)) continue
        const path = dir === '' ? entry.name : `${dir}/${entry.name}`
        if (entry.isDirectory()) walk(path)
        else if (entry.isFile()) listed.push(path)
      }
    }
    walk('')
  }
  // A tracked file deleted in the work tree is not there to read.
  return [...new Set(listed)].filter((f) => existsSync(join(REPO, f)) && statSync(join(REPO, f)).isFile()).sort()
}

/** Answers whether a repo-relative path is a file of the repository, or a directory holding one. */
type Exists = (repoPath: string) => boolean

function existsIn(files: readonly string[]): Exists {
  const set = new Set(files)
  const dirs = new Set<string>()
  for (const f of files) {
    for (let d = posix.dirname(f); d !== '.'; d = posix.dirname(d)) dirs.add(d)
  }
  return (p) => {
    const path = p.replace(/\/+$/, '')
    return path === '' || set.has(path) || dirs.has(path)
  }
}

/**
 * Resolves `target` as written in `file` to a repo-relative path, or undefined when it leaves the
 * repository. A leading `/` means the repository root (as GitHub renders it).
 */
function resolveIn(file: string, target: string): string | undefined {
  const joined = target.startsWith('/') ? posix.normalize(target.slice(1)) : posix.join(posix.dirname(file), target)
  const path = posix.normalize(joined)
  if (path === '..' || path.startsWith('../') || posix.isAbsolute(path)) return undefined
  return path === '.' ? '' : path
}

interface Problem {
  file: string
  line: number
  message: string
}

/** A path-like token: `../notes/x.md`, `docs/DESIGN.md`. */
const PATH_TOKEN = /[\w./~-]+/g

/**
 * Mentions, in one file's text, of a path that leaves the repository (`../x/...` above its root) or
 * of a markdown document (`*.md`) the repository does not hold: both point at something a reader
 * of the repository does not have.
 */
function outsideReferences(file: string, text: string, exists: Exists): Problem[] {
  const problems: Problem[] = []
  text.split(/\r?\n/).forEach((content, i) => {
    for (const m of content.matchAll(PATH_TOKEN)) {
      // A trailing dot ends the sentence, not the path.
      const token = m[0].replace(/\.+$/, '')
      const leaves = token.startsWith('../') && resolveIn(file, token) === undefined
      if (!leaves && !/\.md$/i.test(token)) continue
      // Compiled code runs from dist/, one level deeper, and resolves its paths from there.
      const candidates = [resolveIn(file, token), resolveIn(`dist/${file}`, token), resolveIn('', token.replace(/^\/+/, ''))]
      if (candidates.some((c) => c !== undefined && exists(c))) continue
      problems.push({ file, line: i + 1, message: `refers to "${token}", which is not in the repository` })
    }
  })
  return problems
}

/** Relative markdown links (`](path)` and `[label]: path`) in one file that point at no file of the repository. */
function brokenLinks(file: string, text: string, exists: Exists): Problem[] {
  const problems: Problem[] = []
  let fence: string | undefined
  text.split(/\r?\n/).forEach((raw, i) => {
    const opening = /^\s*(`{3,}|~{3,})/.exec(raw)
    if (fence !== undefined) {
      if (opening !== null && opening[1]!.startsWith(fence)) fence = undefined
      return
    }
    if (opening !== null) {
      fence = opening[1]!
      return
    }
    // Inline code is not a link.
    const content = raw.replace(/(`+)[^`]*?\1/g, (code) => ' '.repeat(code.length))
    const targets: string[] = []
    for (const m of content.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)) targets.push(m[1]!)
    const definition = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(content)
    if (definition !== null) targets.push(definition[1]!)
    for (const target of targets) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#') || target.startsWith('//')) continue
      let path = target.replace(/[#?].*$/, '')
      try {
        path = decodeURI(path)
      } catch {
        // Left as written.
      }
      const resolved = resolveIn(file, path)
      if (resolved === undefined) {
        problems.push({ file, line: i + 1, message: `links to "${target}", outside the repository` })
      } else if (!exists(resolved)) {
        problems.push({ file, line: i + 1, message: `links to "${target}", which does not exist (${resolved})` })
      }
    }
  })
  return problems
}

const show = (problems: Problem[]): string[] => problems.map((p) => `${p.file}:${p.line}: ${p.message}`)

/** Text files only: a NUL byte in the first 8 KiB marks a binary file. */
function readText(file: string): string | undefined {
  const bytes = readFileSync(join(REPO, file))
  return bytes.subarray(0, 8192).includes(0) ? undefined : bytes.toString('utf8')
}

describe('the scanners', () => {
  const exists = existsIn(['README.md', 'docs/benchmarks.md', 'docs/DESIGN.md', 'coordinator/sync/README.md'])

  it('flag mentions of outside documents, naming file and line', () => {
    const text = 'intro\nits rule: reference `team-pains.md` H33).\nsee ../notes/GUIDE.md and DESIGN.md.\n'
    expect(show(outsideReferences('coordinator/sync/README.md', text, exists))).toEqual([
      'coordinator/sync/README.md:2: refers to "team-pains.md", which is not in the repository',
      'coordinator/sync/README.md:3: refers to "../notes/GUIDE.md", which is not in the repository',
      'coordinator/sync/README.md:3: refers to "DESIGN.md", which is not in the repository',
    ])
    expect(show(outsideReferences('x.ts', ' * memory (../../../notes/pains §C11-C15)', exists))).toEqual([
      'x.ts:1: refers to "../../../notes/pains", which is not in the repository',
    ])
  })

  it('accept a mention of a document the repository holds, and relative paths inside it', () => {
    expect(outsideReferences('README.md', 'see docs/DESIGN.md.', exists)).toEqual([])
    expect(outsideReferences('docs/benchmarks.md', 'see [it](DESIGN.md)', exists)).toEqual([])
    expect(outsideReferences('coordinator/sync/README.md', 'see ../../docs/DESIGN.md', exists)).toEqual([])
    expect(outsideReferences('coordinator/sync/x.ts', "import { a } from '../core/a.js'", exists)).toEqual([])
  })

  it('flag relative links to missing files and leave URLs, anchors and code alone', () => {
    const text = [
      'Figures in [docs/benchmarks.md](docs/benchmarks.md) and [the sync module](coordinator/sync/README.md#rule).',
      '[upstream](https://github.com/aws-greengrass/aws-greengrass-nucleus/issues/1649), [up](#design-notes)',
      '[gone](docs/missing.md) and [away](../elsewhere/README.md "title")',
      '`[not](a-link.md)` is code',
      '```',
      'x[0](y.md)',
      '```',
      '[ref]: docs/nope.md',
    ].join('\n')
    expect(show(brokenLinks('README.md', text, exists))).toEqual([
      'README.md:3: links to "docs/missing.md", which does not exist (docs/missing.md)',
      'README.md:3: links to "../elsewhere/README.md", outside the repository',
      'README.md:8: links to "docs/nope.md", which does not exist (docs/nope.md)',
    ])
    expect(brokenLinks('coordinator/sync/README.md', '[top](../../README.md), [dir](../../docs/)', exists)).toEqual([])
  })
})

describe('the repository', () => {
  const files = repoFiles()
  const exists = existsIn(files)

  it('is listed', () => {
    expect(files).toContain('README.md')
    expect(files).toContain(SELF)
    expect(files.some((f) => f.startsWith('node_modules/') || f.startsWith('dist/'))).toBe(false)
  })

  it('refers to no document outside itself', () => {
    const problems: Problem[] = []
    for (const file of files) {
      if (file === SELF) continue
      const text = readText(file)
      if (text !== undefined) problems.push(...outsideReferences(file, text, exists))
    }
    expect(show(problems)).toEqual([])
  })

  it('has no broken relative markdown links', () => {
    const problems: Problem[] = []
    for (const file of files.filter((f) => f.toLowerCase().endsWith('.md'))) {
      const text = readText(file)
      if (text !== undefined) problems.push(...brokenLinks(file, text, exists))
    }
    expect(show(problems)).toEqual([])
  })
})
