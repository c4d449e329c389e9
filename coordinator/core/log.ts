import { pino, type Logger as PinoLogger, type LevelWithSilent } from 'pino'
import { RotatingFile, type RotatingFileOptions } from './rotating-file.js'

/** The logging surface services depend on; pino is chosen only here and in main. */
export type Logger = Pick<PinoLogger, 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'child' | 'level'>

export interface LoggerOptions {
  level?: LevelWithSilent
  /** Human-readable output; defaults to whether stdout is a terminal. */
  pretty?: boolean
  /** Where JSON lines go (fd). Defaults to stdout. */
  destination?: number
  /** JSON lines to a size-capped rotating file instead (pretty is ignored). */
  file?: RotatingFileOptions
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info'
  if (opts.file !== undefined) return pino({ level, base: { pid: process.pid } }, new RotatingFile(opts.file))
  const pretty = opts.pretty ?? process.stdout.isTTY === true
  if (pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', destination: opts.destination ?? 1 } },
    })
  }
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd: opts.destination ?? 1, sync: false }))
}

/** A logger that drops everything; for tests and library use without a sink. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}

/** Field names used across modules, so log queries stay stable. */
export const K = {
  clientId: 'clientId',
  thingName: 'thingName',
  shadowName: 'shadowName',
  topic: 'topic',
  listener: 'listener',
  err: 'err',
} as const
