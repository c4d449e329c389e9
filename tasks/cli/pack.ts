/**
 * `edge-task pack`: task.json + the entry module and its npm dependencies -> one bundle file.
 *
 * esbuild bundles for the sandbox, which is plain V8: an IIFE assigning the module's exports to the
 * global `__edgeTask` (what the sandbox prelude binds the handler from), platform 'neutral' so no
 * Node.js shims or built-ins sneak in, and ES2022 (what the isolate runs).
 */
import { existsSync, statSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join, relative, resolve } from 'node:path'
import { build, type BuildFailure, type BuildOptions, type BuildResult, type Message, type Plugin } from 'esbuild'
import type { Command } from 'commander'
import { bundleDigest, encodeBundle, keyId, parseManifest, type TaskManifest } from '../../coordinator/protocol/index.js'
import { CliError, print, readUserFile, writeFileAtomic } from './common.js'

export interface PackOptions {
  /** Ed25519 private key PEM file to sign with. */
  key?: string
  minify?: boolean
}

export interface PackedTask {
  manifest: TaskManifest
  bytes: Uint8Array
  digest: string
  codeBytes: number
  /** keyId, or null when unsigned. */
  signer: string | null
}

export function registerPack(program: Command): void {
  program.command('pack <dir>')
    .description('validate DIR/task.json, bundle its entry with its npm dependencies and write a bundle file')
    .option('-o, --out <file>', 'bundle file to write (default <name>-<version>.bundle)')
    .option('-k, --key <file>', 'sign with this Ed25519 private key (PEM, from `edge-task keygen`)')
    .option('--minify', 'minify the bundled code')
    .action(async (dir: string, opts: PackOptions & { out?: string }) => {
      const packed = await packTask(dir, opts)
      const out = opts.out ?? defaultBundleFile(packed.manifest)
      writeFileAtomic(out, packed.bytes)
      printPacked(packed, out)
    })
}

export const defaultBundleFile = (m: TaskManifest): string => `${m.name}-${m.version}.bundle`

export async function packTask(dir: string, opts: PackOptions): Promise<PackedTask> {
  const manifest = readManifest(dir)
  const code = await bundleCode(dir, manifest, opts.minify === true)
  // The normalized manifest, defaults filled in: a bundle means the same on every coordinator version.
  const content = { manifestText: `${JSON.stringify(manifest, null, 2)}\n`, code }
  const privateKeyPem = opts.key === undefined ? undefined : readUserFile(opts.key, 'signing key').toString('utf8')
  let bytes: Uint8Array
  try {
    bytes = encodeBundle(content, privateKeyPem === undefined ? undefined : { privateKeyPem })
  } catch (err) {
    throw new CliError(`${opts.key ?? 'bundle'}: ${(err as Error).message}`)
  }
  return {
    manifest, bytes, digest: bundleDigest(content), codeBytes: Buffer.byteLength(code),
    signer: privateKeyPem === undefined ? null : keyId(privateKeyPem),
  }
}

export function printPacked(packed: PackedTask, file: string): void {
  print(`packed ${packed.manifest.name} ${packed.manifest.version} -> ${file}`)
  print(`  digest  ${packed.digest}`)
  print(`  size    ${packed.bytes.length} bytes (code ${packed.codeBytes} bytes)`)
  print(`  signer  ${packed.signer ?? 'unsigned'}`)
}

export function readManifest(dir: string): TaskManifest {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CliError(`${dir} is not a directory`)
  const file = join(dir, 'task.json')
  let json: unknown
  try {
    json = JSON.parse(readUserFile(file, 'manifest').toString('utf8'))
  } catch (err) {
    if (err instanceof CliError) throw err
    throw new CliError(`${file} is not valid JSON: ${(err as Error).message}`)
  }
  const parsed = parseManifest(json)
  if (!parsed.ok) throw new CliError(`${file} is invalid:\n  ${parsed.errors.join('\n  ')}`)
  return parsed.manifest
}

async function bundleCode(dir: string, manifest: TaskManifest, minify: boolean): Promise<string> {
  const root = resolve(dir)
  const entry = resolve(root, manifest.entry)
  if (!existsSync(entry)) throw new CliError(`entry "${manifest.entry}" (task.json) does not exist in ${dir}`)
  const common: BuildOptions = {
    entryPoints: [entry], absWorkingDir: root, bundle: true, write: false, logLevel: 'silent',
    platform: 'neutral', target: 'es2022', mainFields: ['module', 'main'], sourcemap: false,
    // npm packages often branch on process.env.NODE_ENV; the sandbox has no `process` at all.
    define: { 'process.env.NODE_ENV': '"production"' },
    plugins: [sandboxGuard()],
  }
  // The same graph as ESM first: only that output format reports the entry's export names.
  const esm = await runBuild({ ...common, format: 'esm', metafile: true })
  checkExports(manifest, Object.values(esm.metafile?.outputs ?? {})[0]?.exports ?? [], manifest.entry)
  const iife = await runBuild({ ...common, format: 'iife', globalName: '__edgeTask', minify })
  const code = iife.outputFiles?.[0]?.text
  if (code === undefined) throw new CliError(`esbuild produced no output for ${manifest.entry}`)
  return code
}

async function runBuild(options: BuildOptions): Promise<BuildResult> {
  try {
    return await build(options)
  } catch (err) {
    const errors = (err as Partial<BuildFailure>).errors
    if (errors === undefined) throw err
    throw new CliError(`cannot bundle the task:\n  ${errors.map((m) => describeMessage(m, options.absWorkingDir ?? '.')).join('\n  ')}`)
  }
}

function describeMessage(m: Message, root: string): string {
  const loc = m.location
  const where = loc === null ? '' : `${relative(root, resolve(root, loc.file))}:${loc.line}:${loc.column}: `
  return `${where}${m.text}`
}

/** What the sandbox binds: the handler for triggered calls, start for a long-lived task with none. */
function checkExports(m: TaskManifest, exported: readonly string[], entry: string): void {
  const triggered = m.mode === 'on-demand' || m.triggers.length > 0
  const needed = triggered ? m.handler : 'start'
  if (exported.includes(needed)) return
  const why = triggered ? 'the handler named in task.json' : 'a long-lived task without triggers runs only start'
  throw new CliError(`${entry} does not export "${needed}" (${why}); it exports: ${exported.join(', ') || 'nothing'}`)
}

const NODE_BUILTINS = new Set(builtinModules)
/** Marks the plugin's own look-up, so it does not intercept itself. */
const NESTED = { nested: true }

/**
 * Refuses Node.js built-ins by name, with a message that says why, instead of esbuild's "could not
 * resolve" and a hint to bundle for node. A bare name that an installed npm package provides
 * (e.g. `events`, `buffer` polyfills) is plain JavaScript and is bundled as usual.
 */
function sandboxGuard(): Plugin {
  return {
    name: 'edge-task-sandbox',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData === NESTED || !(args.path.startsWith('node:') || NODE_BUILTINS.has(args.path))) return undefined
        if (!args.path.startsWith('node:')) {
          const npm = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: NESTED })
          if (npm.errors.length === 0) return { path: npm.path, namespace: npm.namespace, external: npm.external, sideEffects: npm.sideEffects }
        }
        return { errors: [{ text: `imports "${args.path}", a Node.js built-in module: tasks run in a V8 sandbox without Node.js APIs (use ctx instead)` }] }
      })
    },
  }
}

