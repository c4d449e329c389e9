/**
 * The hardware adapters configured under `hardware.gpio` and `hardware.serial`, each supervised,
 * sharing one backend instance per kind (simulated lines and ports are reachable for tests).
 */
import type { Logger } from '../coordinator/core/log.js'
import { GpioAdapter } from './adapters/gpio-adapter.js'
import { SerialAdapter } from './adapters/serial-adapter.js'
import type { ShadowAccess } from './adapters/shadow-port.js'
import { Supervised, type AdapterStatus, type RetryPolicy } from './adapters/supervisor.js'
import type { GpioBackend } from './gpio/backend.js'
import { GpiodBackend } from './gpio/gpiod.js'
import { SimulatedGpioBackend } from './gpio/simulated.js'
import type { SerialBackend, SerialFormat } from './serial/backend.js'
import { SimulatedSerialBackend } from './serial/simulated.js'
import { TtySerialBackend } from './serial/tty.js'

/** One `hardware.gpio` entry (coordinator/config/schema.ts). */
export interface GpioLineSettings {
  thing: string
  chip: string
  line: number
  direction: 'in' | 'out'
  activeLow: boolean
  initial: boolean
  backend: 'gpiod' | 'simulated'
}

/** One `hardware.serial` entry. */
export interface SerialPortSettings {
  thing: string
  path: string
  baud: number
  parser: SerialFormat
  backend: 'tty' | 'simulated'
  minIntervalMs: number
}

export interface HardwareSettings {
  gpio: readonly GpioLineSettings[]
  serial: readonly SerialPortSettings[]
}

export interface HardwareBackends {
  gpiod: GpioBackend
  simulatedGpio: SimulatedGpioBackend
  tty: SerialBackend
  simulatedSerial: SimulatedSerialBackend
}

export interface HardwareRuntimeOptions {
  shadows: ShadowAccess
  log: Logger
  /** Replaces the default backends (tests). */
  backends?: Partial<HardwareBackends>
  retry?: RetryPolicy
}

export class HardwareRuntime {
  readonly backends: HardwareBackends
  readonly #adapters: Supervised[]

  private constructor(backends: HardwareBackends, adapters: Supervised[]) {
    this.backends = backends
    this.#adapters = adapters
  }

  /** Starts every adapter; one that fails keeps retrying in the background and never stops the rest. */
  static async start(settings: HardwareSettings, opts: HardwareRuntimeOptions): Promise<HardwareRuntime> {
    const backends: HardwareBackends = {
      gpiod: new GpiodBackend(),
      simulatedGpio: new SimulatedGpioBackend(),
      tty: new TtySerialBackend({ log: opts.log }),
      simulatedSerial: new SimulatedSerialBackend(),
      ...opts.backends,
    }
    const common = { shadows: opts.shadows, log: opts.log }
    const adapters = [
      ...settings.gpio.map((g) => new GpioAdapter({ ...g, ...common, backend: g.backend === 'gpiod' ? backends.gpiod : backends.simulatedGpio })),
      ...settings.serial.map((s) => new SerialAdapter({ ...s, format: s.parser, ...common, backend: s.backend === 'tty' ? backends.tty : backends.simulatedSerial })),
    ].map((adapter) => new Supervised(adapter, opts.log, opts.retry))
    await Promise.all(adapters.map((a) => a.start()))
    return new HardwareRuntime(backends, adapters)
  }

  status(): AdapterStatus[] {
    return this.#adapters.map((a) => a.status())
  }

  /** Stops every adapter: outputs are released, ports closed, pending readings reported. */
  async close(): Promise<void> {
    await Promise.all(this.#adapters.map((a) => a.stop()))
  }
}
