/**
 * In-memory GPIO chips: lines keep their level across requests (as pins do), an output's level is
 * what it was driven to, and an input's level is whatever the test (the "outside world") drives.
 * Requests are exclusive, like the character device's.
 */
import { HardwareError } from '../errors.js'
import { lineKey, type GpioBackend, type GpioLine, type GpioLineRequest } from './backend.js'

interface SimPin {
  level: boolean
  direction: 'in' | 'out'
  holder: SimulatedLine | undefined
  /** Every level an output was driven to, in order (tests read it). */
  writes: boolean[]
}

class SimulatedLine implements GpioLine {
  readonly #pin: SimPin
  readonly #edges: Array<(level: boolean) => void> = []
  #closed = false

  constructor(pin: SimPin) {
    this.#pin = pin
  }

  async read(): Promise<boolean> {
    return this.#pin.level
  }

  async write(level: boolean): Promise<void> {
    if (this.#closed) throw new HardwareError('COORD_HARDWARE_IO', 'line released')
    if (this.#pin.direction !== 'out') throw new HardwareError('COORD_HARDWARE_IO', 'cannot drive an input line')
    this.#pin.level = level
    this.#pin.writes.push(level)
  }

  onEdge(listener: (level: boolean) => void): void {
    this.#edges.push(listener)
  }

  /** A simulated line is never lost. */
  onLost(): void {}

  async close(): Promise<void> {
    this.#closed = true
    if (this.#pin.holder === this) this.#pin.holder = undefined
  }

  edge(level: boolean): void {
    for (const listener of this.#edges) listener(level)
  }
}

export class SimulatedGpioBackend implements GpioBackend {
  readonly name = 'simulated'
  readonly #pins = new Map<string, SimPin>()

  async open(req: GpioLineRequest): Promise<GpioLine> {
    const pin = this.#pin(req.chip, req.line)
    if (pin.holder !== undefined) throw new HardwareError('COORD_HARDWARE_BUSY', `${req.chip} line ${req.line} is already requested`)
    pin.direction = req.direction
    if (req.direction === 'out') {
      pin.level = req.initial
      pin.writes.push(req.initial)
    }
    const line = new SimulatedLine(pin)
    pin.holder = line
    return line
  }

  /** The pin's level; undefined for a line never touched. */
  level(chip: string, line: number): boolean | undefined {
    return this.#pins.get(lineKey(chip, line))?.level
  }

  /** Levels an output was driven to, oldest first. */
  writes(chip: string, line: number): readonly boolean[] {
    return this.#pins.get(lineKey(chip, line))?.writes ?? []
  }

  /** The outside world sets an input's level; a change is an edge for whoever holds the line. */
  drive(chip: string, line: number, level: boolean): void {
    const pin = this.#pin(chip, line)
    if (pin.level === level) return
    pin.level = level
    if (pin.direction === 'in') pin.holder?.edge(level)
  }

  #pin(chip: string, line: number): SimPin {
    const key = lineKey(chip, line)
    let pin = this.#pins.get(key)
    if (pin === undefined) {
      pin = { level: false, direction: 'in', holder: undefined, writes: [] }
      this.#pins.set(key, pin)
    }
    return pin
  }
}
