/**
 * Running the package's own CLIs from the demo: one-shot commands (`edge-task pack`, `edge deploy
 * create`, ...) and the two daemons (`edge-cloud start`, `edge-coordinator start`). They are the
 * same files `npx edge-task ...` runs, so the demo does nothing a person could not do by hand.
 */
import { execFile, spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

export type Bin = 'edge-coordinator' | 'edge-cloud' | 'edge-task' | 'edge'

const binFile = (name: Bin): string => fileURLToPath(new URL(`../../bin/${name}.js`, import.meta.url))

/** `--no-node-snapshot`, as the bins' own shebang lines start them (isolated-vm needs it on Node 20). */
const NODE_ARGS = ['--no-node-snapshot']

/** Runs `name args...` to completion and resolves with its stdout; rejects with what it printed when it fails. */
export function cli(name: Bin, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...NODE_ARGS, binFile(name), ...args], (err, stdout, stderr) => {
      if (err === null) return resolve(stdout)
      const said = stderr.trim() || stdout.trim().split('\n').at(-1) || err.message
      reject(new Error(`${name} ${args[0] ?? ''} failed: ${said}`))
    })
  })
}

export interface ListenAddress {
  host: string
  port: number
}

export interface Daemon {
  pid: number
  /** What the daemon wrote to `<dataDir>/endpoints.json` once every listener was up. */
  endpoints: Record<string, ListenAddress>
  /** Resolves when the process ends, for whatever reason: its exit code, or the signal that ended it. */
  exited: Promise<number | NodeJS.Signals>
  /** SIGTERM (a graceful stop), then SIGKILL if it is not gone after `deadlineMs`. */
  stop(deadlineMs?: number): Promise<number | NodeJS.Signals>
}

const READY_TIMEOUT_MS = 60_000

/**
 * Daemons still running. Being detached, they would outlive a demo that dies of an unexpected
 * error, so they are killed on the way out whatever the reason.
 */
const daemons = new Set<number>()
process.on('exit', () => {
  for (const pid of daemons) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // Already gone: it exited before its 'exit' event was handled.
    }
  }
})

/**
 * Starts `name start args...` with its output in `logFile`, and resolves once it has written
 * `<dataDir>/endpoints.json`, which both daemons do when they are ready.
 *
 * The daemon gets a process group of its own (`detached`), so a Ctrl-C in the terminal reaches only
 * the demo, which then stops the pieces in order: devices first, then the coordinator, then the
 * cloud shim. The log goes straight to the file, so the daemon never writes into a pipe the demo
 * may no longer read.
 */
export async function startDaemon(name: Bin, args: string[], dataDir: string, logFile: string): Promise<Daemon> {
  const log = openSync(logFile, 'a')
  const child = spawn(process.execPath, [...NODE_ARGS, binFile(name), 'start', '--data-dir', dataDir, ...args], { stdio: ['ignore', log, log], detached: true })
  closeSync(log)
  const pid = child.pid ?? 0
  daemons.add(pid)
  const exited = new Promise<number | NodeJS.Signals>((resolve) => child.once('exit', (code, signal) => {
    daemons.delete(pid)
    // Node sets exactly one of the two.
    resolve(code ?? (signal as NodeJS.Signals))
  }))
  const alive = (): boolean => child.exitCode === null && child.signalCode === null
  const stop = async (deadlineMs = 15_000): Promise<number | NodeJS.Signals> => {
    if (alive()) child.kill('SIGTERM')
    const killer = setTimeout(() => child.kill('SIGKILL'), deadlineMs)
    const code = await exited
    clearTimeout(killer)
    return code
  }
  const file = join(dataDir, 'endpoints.json')
  for (const deadline = Date.now() + READY_TIMEOUT_MS; Date.now() < deadline && alive(); await sleep(100)) {
    const endpoints = readEndpoints(file)
    if (endpoints !== undefined) return { pid, endpoints, exited, stop }
  }
  await stop(1000)
  throw new Error(`${name} did not start; its log is ${logFile}:\n${tail(logFile)}`)
}

/** The endpoints, or undefined while the file is missing or half written. */
function readEndpoints(file: string): Record<string, ListenAddress> | undefined {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { endpoints: Record<string, ListenAddress> }).endpoints
  } catch {
    return undefined
  }
}

const tail = (file: string): string => readFileSync(file, 'utf8').trim().split('\n').slice(-5).join('\n')
