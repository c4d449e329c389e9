/**
 * A serial port through its tty device file. `stty` sets the line (baud, 8N1, raw, no echo, modem
 * lines ignored) before the port is opened.
 *
 * The port is read through a tty handle (`tty.ReadStream`), not `fs.createReadStream`: an fs
 * stream reads a character device with blocking reads on libuv's thread pool (4 threads), so one
 * quiet sensor would hold a pool thread until it spoke, and closing the stream would wait for it.
 * A tty handle is read by the event loop with non-blocking I/O, like a socket.
 */
import { constants, open, stat } from 'node:fs'
import { promisify } from 'node:util'
import { ReadStream, isatty } from 'node:tty'
import type { Logger } from '../../coordinator/core/log.js'
import { HardwareError } from '../errors.js'
import { runTool } from '../tools.js'
import type { SerialBackend, SerialConnection, SerialPortRequest } from './backend.js'
import { LineSplitter } from './lines.js'

const openFile = promisify(open)
const statFile = promisify(stat)

export interface TtyBackendOptions {
  /** Directory holding `stty`; PATH lookup when absent. */
  toolDir?: string
  log?: Pick<Logger, 'warn'>
}

/** 8 data bits, no parity, 1 stop bit, no line editing or echo, DCD ignored (most sensors have no modem lines). */
export const sttyArgs = (path: string, baud: number): string[] => ['-F', path, String(baud), 'cs8', '-cstopb', '-parenb', 'clocal', 'raw', '-echo']

export class TtySerialBackend implements SerialBackend {
  readonly name = 'tty'
  readonly #o: TtyBackendOptions

  constructor(opts: TtyBackendOptions = {}) {
    this.#o = opts
  }

  async open(req: SerialPortRequest): Promise<SerialConnection> {
    await this.#checkDevice(req.path)
    await this.#configure(req)
    // O_NONBLOCK: without it, opening a port whose modem lines are down can block until carrier.
    const fd = await openFile(req.path, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
      throw new HardwareError(err.code === 'EBUSY' ? 'COORD_HARDWARE_BUSY' : 'COORD_HARDWARE_IO', `cannot open ${req.path}: ${err.code ?? err.message}`, { cause: err })
    })
    if (!isatty(fd)) throw new HardwareError('COORD_HARDWARE_IO', `${req.path} is not a terminal device`)
    return new TtyConnection(new ReadStream(fd))
  }

  async #checkDevice(path: string): Promise<void> {
    const s = await statFile(path).catch((err: NodeJS.ErrnoException) => {
      throw new HardwareError('COORD_HARDWARE_IO', `serial port ${path}: ${err.code ?? err.message}`, { cause: err })
    })
    if (!s.isCharacterDevice()) throw new HardwareError('COORD_HARDWARE_IO', `serial port ${path} is not a character device`)
  }

  /** Without stty the port keeps the settings it has (the kernel default is 9600 8N1 with echo). */
  async #configure(req: SerialPortRequest): Promise<void> {
    try {
      await runTool('stty', sttyArgs(req.path, req.baud), { dir: this.#o.toolDir, pkg: 'coreutils' })
    } catch (err) {
      if ((err as HardwareError).code !== 'COORD_HARDWARE_TOOL_MISSING') throw err
      this.#o.log?.warn({ path: req.path }, 'stty not found: the serial port keeps its current settings')
    }
  }
}

class TtyConnection implements SerialConnection {
  readonly #stream: ReadStream
  readonly #splitter: LineSplitter
  readonly #lines: Array<(line: string) => void> = []
  readonly #lost: Array<(err: Error) => void> = []
  #closed = false

  constructor(stream: ReadStream) {
    this.#stream = stream
    this.#splitter = new LineSplitter((line) => { for (const listener of this.#lines) listener(line) })
    stream.on('data', (chunk: Buffer) => this.#splitter.push(chunk))
    stream.on('error', (err) => this.#fail(new HardwareError('COORD_HARDWARE_IO', `serial read failed: ${err.message}`, { cause: err })))
    stream.on('close', () => this.#fail(new HardwareError('COORD_HARDWARE_IO', 'serial port closed')))
  }

  onLine(listener: (line: string) => void): void {
    this.#lines.push(listener)
  }

  onLost(listener: (err: Error) => void): void {
    this.#lost.push(listener)
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#closed = true
    return new Promise((resolve) => {
      this.#stream.once('close', () => resolve())
      this.#stream.destroy()
    })
  }

  #fail(err: Error): void {
    if (this.#closed) return
    this.#closed = true
    for (const listener of this.#lost) listener(err)
  }
}
