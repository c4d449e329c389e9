import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Endpoints } from '../../coordinator/kernel/coordinator.js'

export const BIN = fileURLToPath(new URL('../../bin/edge-coordinator.js', import.meta.url))

export interface Daemon {
  child: ChildProcess
  endpoints: Required<Endpoints>
  /** Every JSON log line seen so far. */
  logs: Array<Record<string, unknown>>
  exited: Promise<number | null>
}

/** Starts the built daemon as a child process on free ports and waits for its ready line. */
export function startDaemon(args: string[], timeoutMs = 15_000, env: NodeJS.ProcessEnv = process.env): Promise<Daemon> {
  const child = spawn(process.execPath, ['--no-node-snapshot', BIN, 'start', '--mqtt-port', '0', '--mqtts-port', '0', '--ws-port', '0', '--http-port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  })
  const logs: Array<Record<string, unknown>> = []
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`daemon not ready after ${timeoutMs} ms; stderr: ${stderr}`))
    }, timeoutMs)
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`daemon exited with ${code} before ready; stderr: ${stderr}`))
    })
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>
      logs.push(entry)
      if (entry['msg'] === 'coordinator ready') {
        clearTimeout(timer)
        resolve({ child, endpoints: entry['endpoints'] as Required<Endpoints>, logs, exited })
      }
    })
  })
}

/** SIGKILL, the way a power cut or the OOM killer would end it. */
export async function killHard(d: Daemon): Promise<void> {
  d.child.kill('SIGKILL')
  await d.exited
}
