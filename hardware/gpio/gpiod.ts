/**
 * GPIO through the Linux GPIO character device (/dev/gpiochipN) by way of libgpiod's command-line
 * tools (Debian package `gpiod`). Driving the v2 uAPI ioctls directly needs a native addon (Node has
 * no ioctl), and the sysfs interface is deprecated and missing from recent kernels; the tools speak
 * the character device and ship with Raspberry Pi OS.
 *
 * - An output is held by a long-running `gpioset` (a line requested over the character device is
 *   released when its holder exits). Changing the level restarts the holder: the line is released
 *   for the few milliseconds in between. On a Raspberry Pi the pin keeps its level meanwhile (the
 *   pin controller is not reset on release); on other boards put a pull resistor on the load's
 *   driver input so a released pin cannot switch it.
 * - An input is read once with `gpioget`, then followed with `gpiomon` (edges).
 * - Tools v1 (Debian 12, Raspberry Pi OS bookworm) and v2 (Debian 13) take different arguments;
 *   `gpioset --version` tells which.
 */
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { HardwareError } from '../errors.js'
import { runTool, startTool, stopTool, toolError } from '../tools.js'
import type { GpioBackend, GpioLine, GpioLineRequest } from './backend.js'

export type GpiodVersion = 1 | 2

interface Command {
  tool: 'gpioget' | 'gpioset' | 'gpiomon'
  args: string[]
}

/** The command lines for each tools version (v1: chip first; v2: `-c chip`). */
export function gpiodCommands(version: GpiodVersion): {
  get(chip: string, line: number): Command
  hold(chip: string, line: number, level: boolean): Command
  monitor(chip: string, line: number): Command
} {
  const value = (line: number, level: boolean): string => `${line}=${level ? 1 : 0}`
  if (version === 1) {
    return {
      get: (chip, line) => ({ tool: 'gpioget', args: [chip, String(line)] }),
      hold: (chip, line, level) => ({ tool: 'gpioset', args: ['--mode=signal', chip, value(line, level)] }),
      monitor: (chip, line) => ({ tool: 'gpiomon', args: ['--line-buffered', '--format=%e', chip, String(line)] }),
    }
  }
  return {
    get: (chip, line) => ({ tool: 'gpioget', args: ['--numeric', '-c', chip, String(line)] }),
    hold: (chip, line, level) => ({ tool: 'gpioset', args: ['-c', chip, value(line, level)] }),
    monitor: (chip, line) => ({ tool: 'gpiomon', args: ['--format=%e', '-c', chip, String(line)] }),
  }
}

/**
 * gpioget prints 1 for a high line, and gpiomon's `%e` prints 1 for a rising edge in both versions
 * (falling: 0 in v1, 2 in v2): '1' is high, anything else low.
 */
export const levelOf = (token: string): boolean => token.trim() === '1'

export function parseGpiodVersion(text: string): GpiodVersion {
  const major = /v(\d+)\./.exec(text)?.[1]
  if (major === '1' || major === '2') return Number(major) as GpiodVersion
  throw new HardwareError('COORD_HARDWARE_IO', `unsupported libgpiod tools version: ${text.trim() || '(no output)'}`)
}

export interface GpiodBackendOptions {
  /** Directory holding the tools; PATH lookup when absent. */
  toolDir?: string
  /** How long a fresh `gpioset` must stay up before its line counts as held; it exits at once on failure. */
  settleMs?: number
}

export class GpiodBackend implements GpioBackend {
  readonly name = 'gpiod'
  readonly #o: GpiodBackendOptions
  #version: Promise<GpiodVersion> | undefined

  constructor(opts: GpiodBackendOptions = {}) {
    this.#o = opts
  }

  async open(req: GpioLineRequest): Promise<GpioLine> {
    const commands = gpiodCommands(await this.version())
    const run = (c: Command): Promise<string> => runTool(c.tool, c.args, { dir: this.#o.toolDir, pkg: 'gpiod' })
    if (req.direction === 'out') {
      const line = new GpiodOutput((level) => this.#hold(commands.hold(req.chip, req.line, level)))
      await line.write(req.initial)
      return line
    }
    const level = levelOf(await run(commands.get(req.chip, req.line)))
    const monitor = commands.monitor(req.chip, req.line)
    return new GpiodInput(level, startTool(monitor.tool, monitor.args, { dir: this.#o.toolDir, pkg: 'gpiod' }))
  }

  /** Asked once; a failed probe (the tools not installed yet) is tried again at the next open. */
  version(): Promise<GpiodVersion> {
    this.#version ??= runTool('gpioset', ['--version'], { dir: this.#o.toolDir, pkg: 'gpiod' }).then(parseGpiodVersion).catch((err: unknown) => {
      this.#version = undefined
      throw err
    })
    return this.#version
  }

  /** Starts a holder and resolves once it has survived the settle time (a refused request exits at once). */
  #hold(c: Command): Promise<ChildProcess> {
    const child = startTool(c.tool, c.args, { dir: this.#o.toolDir, pkg: 'gpiod' })
    child.stdout?.resume()
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    return new Promise((resolve, reject) => {
      const settled = setTimeout(() => {
        child.off('exit', onExit)
        resolve(child)
      }, this.#o.settleMs ?? 100)
      const onExit = (code: number | null): void => {
        clearTimeout(settled)
        reject(toolError(c.tool, c.args, 'gpiod', new Error(`exited with ${code}`), stderr))
      }
      child.once('error', (err) => {
        clearTimeout(settled)
        reject(toolError(c.tool, c.args, 'gpiod', err))
      })
      child.once('exit', onExit)
    })
  }
}

/** An output held by a gpioset process; a new level replaces the process. */
class GpiodOutput implements GpioLine {
  readonly #hold: (level: boolean) => Promise<ChildProcess>
  readonly #lost: Array<(err: Error) => void> = []
  #holder: ChildProcess | undefined
  #level = false
  #closed = false

  constructor(hold: (level: boolean) => Promise<ChildProcess>) {
    this.#hold = hold
  }

  async read(): Promise<boolean> {
    return this.#level
  }

  async write(level: boolean): Promise<void> {
    if (this.#closed) throw new HardwareError('COORD_HARDWARE_IO', 'line released')
    if (this.#holder !== undefined && level === this.#level) return
    await this.#release()
    const holder = await this.#hold(level)
    this.#holder = holder
    this.#level = level
    holder.once('exit', (code, signal) => {
      if (this.#holder !== holder) return
      this.#holder = undefined
      const err = new HardwareError('COORD_HARDWARE_IO', `gpioset holding the line exited (${signal ?? code})`)
      for (const listener of this.#lost) listener(err)
    })
  }

  /** Outputs have no edges. */
  onEdge(): void {}

  onLost(listener: (err: Error) => void): void {
    this.#lost.push(listener)
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.#release()
  }

  async #release(): Promise<void> {
    const holder = this.#holder
    this.#holder = undefined
    if (holder !== undefined) await stopTool(holder)
  }
}

/** An input followed by a gpiomon process printing one edge per line. */
class GpiodInput implements GpioLine {
  readonly #monitor: ChildProcess
  readonly #edges: Array<(level: boolean) => void> = []
  readonly #lost: Array<(err: Error) => void> = []
  #level: boolean
  #closed = false

  constructor(level: boolean, monitor: ChildProcess) {
    this.#level = level
    this.#monitor = monitor
    let stderr = ''
    monitor.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    createInterface({ input: monitor.stdout! }).on('line', (text) => this.#edge(levelOf(text)))
    monitor.once('error', (err) => this.#fail(toolError('gpiomon', [], 'gpiod', err)))
    monitor.once('exit', (code, signal) => this.#fail(new HardwareError('COORD_HARDWARE_IO', `gpiomon exited (${signal ?? code}): ${stderr.trim()}`)))
  }

  async read(): Promise<boolean> {
    return this.#level
  }

  async write(): Promise<void> {
    throw new HardwareError('COORD_HARDWARE_IO', 'cannot drive an input line')
  }

  onEdge(listener: (level: boolean) => void): void {
    this.#edges.push(listener)
  }

  onLost(listener: (err: Error) => void): void {
    this.#lost.push(listener)
  }

  async close(): Promise<void> {
    this.#closed = true
    await stopTool(this.#monitor)
  }

  #edge(level: boolean): void {
    this.#level = level
    for (const listener of this.#edges) listener(level)
  }

  #fail(err: Error): void {
    if (this.#closed) return
    this.#closed = true
    for (const listener of this.#lost) listener(err)
  }
}
