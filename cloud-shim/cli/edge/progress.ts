import { formatBytes } from './output.js'

/** Redraws at most this often: a terminal cannot show more, and the rate needs an interval. */
const REDRAW_MS = 100
/** Without a terminal (logs, CI) one line per second is plenty. */
const LINE_MS = 1000

/**
 * A live "sent / total, percent, rate" line on stderr. On a terminal it redraws in place; on
 * anything else it prints a line now and then, so logs show progress without control characters.
 */
export class ProgressLine {
  readonly #label: string
  readonly #total: number
  readonly #out: NodeJS.WriteStream
  readonly #started = Date.now()
  #last = 0

  constructor(label: string, total: number, out: NodeJS.WriteStream = process.stderr) {
    this.#label = label
    this.#total = total
    this.#out = out
  }

  update(sent: number): void {
    const now = Date.now()
    if (now - this.#last < (this.#out.isTTY ? REDRAW_MS : LINE_MS)) return
    this.#last = now
    this.#draw(sent, now)
  }

  done(sent: number): void {
    this.#draw(sent, Date.now())
    if (this.#out.isTTY) this.#out.write('\n')
  }

  #draw(sent: number, now: number): void {
    const seconds = Math.max((now - this.#started) / 1000, 0.001)
    const percent = this.#total === 0 ? 100 : Math.floor((sent / this.#total) * 100)
    const line = `${this.#label}  ${formatBytes(sent)} / ${formatBytes(this.#total)}  ${percent}%  ${formatBytes(Math.round(sent / seconds))}/s`
    this.#out.write(this.#out.isTTY ? `\r${line}\u001b[K` : `${line}\n`)
  }
}
