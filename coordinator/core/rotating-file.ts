/**
 * A size-capped log file: when the live file passes `maxBytes` it becomes `<file>.1` (older ones
 * shift to `.2` ... `.<maxFiles>`, the oldest is deleted) and a new live file is opened. The log
 * therefore never takes more than about maxBytes * (maxFiles + 1) on the card: Greengrass logs
 * have filled whole disks (Greengrass nucleus #1649).
 *
 * pino 10 has no size rotation of its own (pino-roll is a separate package, and a worker-thread
 * transport costs a thread and memory on a Pi Zero). Its destination, SonicBoom, supports
 * `reopen()` for external rotation, which is all this needs: rename, then reopen the path.
 */
import { renameSync, rmSync, statSync } from 'node:fs'
import { pino } from 'pino'

export interface RotatingFileOptions {
  path: string
  /** Bytes written to the live file before it is rotated. */
  maxBytes: number
  /** Rotated files kept. */
  maxFiles: number
}

export class RotatingFile {
  readonly #o: RotatingFileOptions
  readonly #sink: ReturnType<typeof pino.destination>
  #bytes: number

  constructor(opts: RotatingFileOptions) {
    if (!(opts.maxBytes >= 1) || !Number.isInteger(opts.maxFiles) || opts.maxFiles < 1) throw new RangeError('maxBytes must be >= 1 and maxFiles an integer >= 1')
    this.#o = opts
    this.#bytes = sizeOf(opts.path)
    // Synchronous writes: each line is in the file the byte count says when rotation renames it (an
    // asynchronous destination may still hold lines, or be opening, at that moment). At the default
    // level the daemon logs a few lines a minute; per-message logs are debug.
    this.#sink = pino.destination({ dest: opts.path, sync: true, mkdir: true })
  }

  /** pino's destination interface: one serialized log line per call. */
  write(line: string): boolean {
    const accepted = this.#sink.write(line)
    this.#bytes += Buffer.byteLength(line)
    if (this.#bytes >= this.#o.maxBytes) this.#tryRotate()
    return accepted
  }

  /** Logging never throws: a failed rotation is said on stderr and tried again after another maxBytes. */
  #tryRotate(): void {
    try {
      this.#rotate()
    } catch (err) {
      this.#bytes = 0
      process.stderr.write(`log rotation of ${this.#o.path} failed: ${(err as Error).message}\n`)
    }
  }

  #rotate(): void {
    const { path, maxFiles } = this.#o
    rmSync(`${path}.${maxFiles}`, { force: true })
    for (let i = maxFiles - 1; i >= 1; i--) renameIfExists(`${path}.${i}`, `${path}.${i + 1}`)
    renameIfExists(path, `${path}.1`)
    this.#sink.reopen()
    this.#bytes = 0
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    renameSync(from, to)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size
  } catch {
    return 0
  }
}
