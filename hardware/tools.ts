/**
 * Running the command-line tools the real backends drive (gpiod's gpioset/gpioget/gpiomon, stty,
 * systemd-notify). A missing tool is reported by name with the package that provides it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { HardwareError } from './errors.js'

export interface ToolOptions {
  /** Directory the tool is run from; PATH lookup when absent (tests point it at fakes). */
  dir?: string | undefined
  /** Debian package named in the error when the tool is missing. */
  pkg: string
  timeoutMs?: number
  /** The tool's environment; the daemon's own when absent. */
  env?: NodeJS.ProcessEnv | undefined
}

const toolPath = (name: string, dir: string | undefined): string => (dir === undefined ? name : join(dir, name))

/** Runs a tool to completion; resolves with its stdout, rejects with COORD_HARDWARE_TOOL_MISSING or _IO. */
export function runTool(name: string, args: readonly string[], opts: ToolOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(toolPath(name, opts.dir), args, { timeout: opts.timeoutMs ?? 5000, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      if (err === null) return resolve(stdout)
      reject(toolError(name, args, opts.pkg, err, stderr))
    })
  })
}

/** Starts a long-running tool (a line holder, a monitor) with stdout piped. */
export function startTool(name: string, args: readonly string[], opts: ToolOptions): ChildProcess {
  return spawn(toolPath(name, opts.dir), args, { stdio: ['ignore', 'pipe', 'pipe'] })
}

export function toolError(name: string, args: readonly string[], pkg: string, err: Error & { code?: string | number | null }, stderr = ''): HardwareError {
  if (err.code === 'ENOENT') {
    return new HardwareError('COORD_HARDWARE_TOOL_MISSING', `'${name}' not found: install Debian's ${pkg} package (apt-get install ${pkg})`, { cause: err })
  }
  const detail = stderr.trim().split('\n').at(-1) || err.message
  const busy = /busy/i.test(detail)
  return new HardwareError(busy ? 'COORD_HARDWARE_BUSY' : 'COORD_HARDWARE_IO', `${name} ${args.join(' ')}: ${detail}`, { cause: err })
}

/** SIGTERM, then waits for the exit; resolves at once if it already exited. */
export function stopTool(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
  })
}
