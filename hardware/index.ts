/**
 * The gateway's own hardware: board profiles and detection, adapters presenting GPIO lines and
 * serial sensors as devices with shadows, and systemd integration. The coordinator's composition
 * root (kernel, CLI) is the only importer; see README.md.
 */
export { detectBoard, boardLimits, boardConfigDefaults, storageBytesAt, profileOfModel, type Board, type DetectOptions } from './detect.js'
export { PROFILE_NAMES, profileLimits, nominalMemoryMb, memoryTag, type ProfileName, type ProfileLimits, type BoardResources } from './profiles.js'
export { HardwareRuntime, type HardwareSettings, type HardwareBackends, type HardwareRuntimeOptions, type GpioLineSettings, type SerialPortSettings } from './runtime.js'
export type { AdapterStatus, AdapterState, RetryPolicy } from './adapters/supervisor.js'
export type { ShadowAccess, ShadowChangeEvent, ShadowReply } from './adapters/shadow-port.js'
export { GpioAdapter, type GpioAdapterOptions } from './adapters/gpio-adapter.js'
export { SerialAdapter, type SerialAdapterOptions } from './adapters/serial-adapter.js'
export type { GpioBackend, GpioLine, GpioLineRequest } from './gpio/backend.js'
export { GpiodBackend, gpiodCommands, parseGpiodVersion, type GpiodVersion } from './gpio/gpiod.js'
export { SimulatedGpioBackend } from './gpio/simulated.js'
export type { SerialBackend, SerialConnection, SerialPortRequest, SerialFormat } from './serial/backend.js'
export { TtySerialBackend, sttyArgs } from './serial/tty.js'
export { SimulatedSerialBackend, SimulatedSerialPort, formatReading } from './serial/simulated.js'
export { parseKv, parseJsonLine, parseRawLine } from './serial/parsers.js'
export { LineSplitter } from './serial/lines.js'
export { SystemdNotifier, watchdogIntervalMs } from './service/sd-notify.js'
export { HardwareError, type HardwareErrorCode } from './errors.js'
