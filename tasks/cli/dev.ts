/**
 * `edge-task dev DIR`: pack + push, then again on every save, until Ctrl-C. The loop a task author
 * lives in, so a failed pack or push prints one line and the watch goes on.
 */
import { watch, readdirSync, type FSWatcher } from 'node:fs'
import { join, resolve, sep } from 'node:path'
import type { Command } from 'commander'
import { CoordinatorClient } from './client.js'
import { coordinatorOption, print, printError, writeFileAtomic } from './common.js'
import { defaultBundleFile, packTask, type PackOptions } from './pack.js'

/** Editors save in bursts (temp file, rename, chmod): one push per burst. */
const DEBOUNCE_MS = 200

interface DevOptions extends PackOptions {
  coordinator: string
  out?: string
}

export function registerDev(program: Command): void {
  program.command('dev <dir>')
    .description('pack and push DIR, then re-pack and re-push on every change until Ctrl-C')
    .addOption(coordinatorOption())
    .option('-k, --key <file>', 'sign with this Ed25519 private key (PEM)')
    .option('-o, --out <file>', 'bundle file to keep (default <name>-<version>.bundle)')
    .option('--minify', 'minify the bundled code')
    .action((dir: string, opts: DevOptions) => dev(dir, opts))
}

async function dev(dir: string, opts: DevOptions): Promise<void> {
  const client = new CoordinatorClient(opts.coordinator)
  const outputs = new Set<string>()
  const cycle = coalesced(async () => {
    try {
      const packed = await packTask(dir, opts)
      const out = resolve(opts.out ?? defaultBundleFile(packed.manifest))
      outputs.add(out)
      writeFileAtomic(out, packed.bytes)
      const task = await client.push(packed.bytes)
      const problem = task.lastError === null ? '' : `: ${task.lastError}`
      print(`${clock()} pushed ${task.name} ${task.version} ${task.digest.slice(0, 12)} (${task.state}${problem})`)
    } catch (err) {
      printError(`${clock()} ${(err as Error).message}`)
    }
  })
  await cycle()
  const root = resolve(dir)
  print(`watching ${root} (Ctrl-C stops)`)
  const stop = watchTree(root, (path) => outputs.has(path) || isIgnored(root, path), () => void cycle())
  await new Promise<void>((done) => process.once('SIGINT', done))
  stop()
}

/** Hidden files (editor swap files, .git) and node_modules; dependency changes show in the lockfile. */
function isIgnored(root: string, path: string): boolean {
  return path.slice(root.length + 1).split(sep).some((segment) => segment.startsWith('.') || segment === 'node_modules')
}

/**
 * The task directory's top level, plus each top-level subdirectory recursively except hidden ones
 * and node_modules: a recursive watch of node_modules costs thousands of watches for nothing.
 */
function watchTree(root: string, ignore: (path: string) => boolean, onChange: () => void): () => void {
  let timer: NodeJS.Timeout | undefined
  const changed = (path: string): void => {
    if (ignore(path)) return
    clearTimeout(timer)
    timer = setTimeout(onChange, DEBOUNCE_MS)
  }
  const watchDir = (dir: string, recursive: boolean): FSWatcher =>
    watch(dir, { recursive }, (_event, file) => changed(file === null ? dir : join(dir, file)))
      .on('error', (err) => printError(`${clock()} watching ${dir} failed: ${err.message}`))
  const subdirs = readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !ignore(join(root, e.name)))
  const watchers = [watchDir(root, false), ...subdirs.map((e) => watchDir(join(root, e.name), true))]
  return () => {
    clearTimeout(timer)
    for (const w of watchers) w.close()
  }
}

/** Calls made while one runs collapse into a single rerun after it, so pushes never overlap. */
function coalesced(run: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined
  let again = false
  const loop = async (): Promise<void> => {
    do {
      again = false
      await run()
    } while (again)
    running = undefined
  }
  return () => {
    if (running !== undefined) {
      again = true
      return running
    }
    running = loop()
    return running
  }
}

const clock = (): string => new Date().toISOString().slice(11, 19)
