/**
 * Long-running commands in tests (the demo, `npm start`, `mosquitto_sub`, `edge-task logs -f`),
 * each in a process group of its own, as a shell runs a foreground job: a signal to the group is
 * what Ctrl-C in a terminal sends.
 */
import { spawn, type SpawnOptions } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

export interface Background {
  pid: number
  stdout(): string
  stderr(): string
  /** Resolves with the first match in stdout; rejects with what was printed when it does not come in time or the process ends. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  /** The exit code, or the signal's name when a signal ended it. */
  exited: Promise<number | string>
  /** Sends `signal` to the process group, like a terminal's Ctrl-C (SIGINT). */
  signal(signal: NodeJS.Signals): void
  /** Signals the group (SIGTERM by default) and waits for the exit; SIGKILL after `deadlineMs`. */
  stop(signal?: NodeJS.Signals, deadlineMs?: number): Promise<number | string>
}

export function background(command: string, args: string[], options: SpawnOptions = {}): Background {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const pid = child.pid ?? 0
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  let code: number | string | undefined
  const exited = new Promise<number | string>((resolve) => child.once('close', (c, s) => {
    code = c ?? s ?? 'unknown'
    resolve(code)
  }))
  const signal = (sig: NodeJS.Signals): void => {
    if (code !== undefined) return
    try {
      process.kill(-pid, sig)
    } catch {
      // The group is gone already.
    }
  }
  return {
    pid,
    stdout: () => out,
    stderr: () => err,
    exited,
    signal,
    async waitFor(pattern, timeoutMs = 30_000) {
      for (const deadline = Date.now() + timeoutMs; ; await sleep(50)) {
        const m = pattern.exec(out)
        if (m !== null) return m
        if (code !== undefined || Date.now() > deadline) {
          const why = code === undefined ? `not within ${timeoutMs} ms` : `it exited (${code})`
          throw new Error(`${command} ${args.join(' ')}: no ${pattern} in its output, ${why}\nstdout:\n${out}\nstderr:\n${err}`)
        }
      }
    },
    async stop(sig = 'SIGTERM', deadlineMs = 30_000) {
      signal(sig)
      const killer = setTimeout(() => signal('SIGKILL'), deadlineMs)
      const result = await exited
      clearTimeout(killer)
      return result
    },
  }
}

/** Every process whose parent chain leads to `pid`, from /proc (Linux). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue
    }
    // Fields after the command name, which is in parentheses and may hold spaces: state, ppid, ...
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
  }
  const found: number[] = []
  for (let queue = [pid]; queue.length > 0;) {
    const next = children.get(queue.shift() ?? 0) ?? []
    found.push(...next)
    queue.push(...next)
  }
  return found
}

/** Whether a process with this pid exists (a zombie counts: it has not been reaped). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
