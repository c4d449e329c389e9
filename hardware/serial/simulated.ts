/**
 * Simulated serial sensors: each opened port prints a temperature/humidity reading every
 * `intervalMs` in the format the config expects (`T=21.5;H=40.2`, a JSON object, or a bare
 * number), the first one at once. Readings drift slowly with a little noise, from a seeded source
 * so runs repeat. Tests can also inject any line with `emit`.
 */
import { HardwareError } from '../errors.js'
import type { SerialBackend, SerialConnection, SerialFormat, SerialPortRequest } from './backend.js'

export interface SimulatedSerialOptions {
  /** Time between readings; default 1000 ms; 0: none, only lines given to `emit`. */
  intervalMs?: number
  /** Seed of the readings; default 1. */
  seed?: number
}

/** mulberry32: small, fast and good enough for plausible sensor noise. */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const round1 = (n: number): number => Math.round(n * 10) / 10

class SensorModel {
  readonly #random: () => number
  #temperature = 21.5
  #humidity = 40

  constructor(seed: number) {
    this.#random = seeded(seed)
  }

  /** A random walk held near room conditions. */
  next(): { temperature: number; humidity: number } {
    const step = (): number => (this.#random() - 0.5) * 0.2
    this.#temperature = Math.min(30, Math.max(15, this.#temperature + step()))
    this.#humidity = Math.min(70, Math.max(20, this.#humidity + step() * 5))
    return { temperature: round1(this.#temperature), humidity: round1(this.#humidity) }
  }
}

export function formatReading(format: SerialFormat, r: { temperature: number; humidity: number }): string {
  switch (format) {
    case 'kv': return `T=${r.temperature};H=${r.humidity}`
    case 'json': return JSON.stringify(r)
    case 'lines': return String(r.temperature)
  }
}

export class SimulatedSerialPort implements SerialConnection {
  readonly #lines: Array<(line: string) => void> = []
  readonly #timer: NodeJS.Timeout | undefined
  readonly #first: NodeJS.Immediate | undefined
  readonly #release: () => void
  #closed = false

  constructor(format: SerialFormat, model: SensorModel, intervalMs: number, release: () => void) {
    const print = (): void => this.emit(formatReading(format, model.next()))
    if (intervalMs > 0) {
      this.#first = setImmediate(print)
      this.#timer = setInterval(print, intervalMs)
    }
    this.#release = release
  }

  /** Delivers a line as if the device had sent it. */
  emit(line: string): void {
    if (this.#closed) return
    for (const listener of this.#lines) listener(line)
  }

  onLine(listener: (line: string) => void): void {
    this.#lines.push(listener)
  }

  /** A simulated port is never unplugged. */
  onLost(): void {}

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearImmediate(this.#first)
    clearInterval(this.#timer)
    this.#release()
  }
}

export class SimulatedSerialBackend implements SerialBackend {
  readonly name = 'simulated'
  readonly #o: SimulatedSerialOptions
  readonly #ports = new Map<string, SimulatedSerialPort>()
  #opened = 0

  constructor(opts: SimulatedSerialOptions = {}) {
    this.#o = opts
  }

  async open(req: SerialPortRequest): Promise<SerialConnection> {
    if (this.#ports.has(req.path)) throw new HardwareError('COORD_HARDWARE_BUSY', `${req.path} is already open`)
    const model = new SensorModel((this.#o.seed ?? 1) + this.#opened++)
    const port = new SimulatedSerialPort(req.format, model, this.#o.intervalMs ?? 1000, () => this.#ports.delete(req.path))
    this.#ports.set(req.path, port)
    return port
  }

  /** The open port at `path`, to inject lines in tests. */
  port(path: string): SimulatedSerialPort | undefined {
    return this.#ports.get(path)
  }
}
