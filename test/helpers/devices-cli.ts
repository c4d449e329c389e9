import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const BIN = fileURLToPath(new URL('../../bin/edge-coordinator.js', import.meta.url))

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs the built CLI (`bin/edge-coordinator.js`, needs dist/) and resolves with its exit code and output. */
export function runCli(args: string[], timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--no-node-snapshot', BIN, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

export interface IssuedDevice {
  name: string
  /** Present unless `--no-cert`. */
  certPath: string
  keyPath: string
  caPath: string
  /** Present with `--token`. */
  token?: string
}

/** `edge-coordinator devices add NAME --data-dir DIR [extra...]`, failing loudly if the CLI does. */
export async function addDevice(dataDir: string, name: string, extra: string[] = []): Promise<IssuedDevice> {
  const r = await runCli(['devices', 'add', name, '--data-dir', dataDir, ...extra])
  if (r.code !== 0) throw new Error(`devices add ${name} exited ${r.code}: ${r.stderr}${r.stdout}`)
  const dir = join(dataDir, 'devices', name)
  const token = /^\s*token:\s*(\S+)\s*$/m.exec(r.stdout)?.[1]
  return {
    name,
    certPath: join(dir, 'cert.pem'),
    keyPath: join(dir, 'key.pem'),
    caPath: join(dir, 'ca.pem'),
    ...(token === undefined ? {} : { token }),
  }
}

export async function removeDevice(dataDir: string, name: string): Promise<void> {
  const r = await runCli(['devices', 'remove', name, '--data-dir', dataDir])
  if (r.code !== 0) throw new Error(`devices remove ${name} exited ${r.code}: ${r.stderr}${r.stdout}`)
}
