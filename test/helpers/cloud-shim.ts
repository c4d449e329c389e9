import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { silentLogger } from '../../coordinator/core/log.js'
import { encodeBundle } from '../../coordinator/protocol/index.js'
import { loadCloudConfig } from '../../cloud-shim/config/index.js'
import { CloudShim, type CloudEndpoints } from '../../cloud-shim/kernel/index.js'
import { tempDir } from './tmp.js'

export const CLOUD_BIN = fileURLToPath(new URL('../../bin/edge-cloud.js', import.meta.url))
export const EDGE_BIN = fileURLToPath(new URL('../../bin/edge.js', import.meta.url))

export interface RunningCloudShim {
  shim: CloudShim
  dataDir: string
  endpoints: CloudEndpoints
  httpUrl: string
  /** Stops the shim and, unless kept, removes its data directory. */
  stop(opts?: { keepData?: boolean }): Promise<void>
}

/** An in-process cloud shim on 127.0.0.1 with every port picked by the OS. */
export async function startCloudShim(overrides: Record<string, unknown> = {}, opts: { dataDir?: string } = {}): Promise<RunningCloudShim> {
  const tmp = opts.dataDir === undefined ? tempDir('edge-cloud-') : { dir: opts.dataDir, remove: () => {} }
  const config = loadCloudConfig({
    // Listener overrides merge per listener, so overriding one port never brings back another's default.
    overrides: { dataDir: tmp.dir, ...overrides, listeners: { mqtt: { port: 0 }, mqtts: { port: 0 }, http: { port: 0 }, ...(overrides['listeners'] as object | undefined) } },
  })
  const shim = await CloudShim.start(config, silentLogger())
  return {
    shim,
    dataDir: tmp.dir,
    endpoints: shim.endpoints,
    httpUrl: `http://127.0.0.1:${shim.endpoints.http?.port ?? 0}`,
    stop: async ({ keepData = false } = {}) => {
      await shim.close()
      if (!keepData) tmp.remove()
    },
  }
}

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs a built bin (needs dist/) with --no-node-snapshot, as the project runs its binaries. */
export function runBin(bin: string, args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--no-node-snapshot', bin, ...args], { timeout: timeoutMs, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

export interface CloudDaemon {
  child: ChildProcess
  ready: Record<string, unknown>
  /** Every JSON log line seen so far (and after ready). */
  logs: Array<Record<string, unknown>>
  exited: Promise<number | null>
  stop(): Promise<void>
}

/** Starts `edge-cloud start ARGS` as a child process and waits for its 'cloud shim ready' line. */
export function startCloudDaemon(args: string[], timeoutMs = 15_000): Promise<CloudDaemon> {
  const child = spawn(process.execPath, ['--no-node-snapshot', CLOUD_BIN, 'start', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  const logs: Array<Record<string, unknown>> = []
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) child.kill('SIGTERM')
    await exited
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`cloud shim not ready after ${timeoutMs} ms; stderr: ${stderr}`))
    }, timeoutMs)
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`cloud shim exited with ${code} before ready; stderr: ${stderr}`))
    })
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>
      logs.push(entry)
      if (entry['msg'] !== 'cloud shim ready') return
      clearTimeout(timer)
      resolve({ child, ready: entry, logs, exited, stop })
    })
  })
}

/** An Ed25519 key pair in PEM, as `edge-task keygen` makes. */
export function signingKeys(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  }
}

/** A real bundle file; `padding` grows the code so downloads span several chunks. */
export function makeBundle(opts: { name: string; version: string; requires?: string[]; padding?: number; key?: string }): Uint8Array {
  const manifest = { name: opts.name, version: opts.version, entry: 'index.js', triggers: [{ type: 'invoke' }], requires: opts.requires ?? [] }
  const code = `export function handler() { return 1 }\n// ${'x'.repeat(opts.padding ?? 0)}\n`
  return encodeBundle({ manifestText: JSON.stringify(manifest), code }, opts.key === undefined ? undefined : { privateKeyPem: opts.key })
}
