import { readFileSync } from 'node:fs'
import { CommanderError, Option, InvalidArgumentError as CommanderArgError, type Command } from 'commander'
import { loadConfig, type CoordinatorConfig } from '../config/index.js'
import { InvalidArgumentError, hasCode } from '../core/errors.js'
import { boardConfigDefaults } from '../../hardware/index.js'
import { exitQuietlyOnClosedPipe } from './stdio.js'

export interface CommonOptions {
  config?: string
  dataDir?: string
}

export const configOption = (): Option => new Option('-c, --config <file>', 'JSON config file (defaults need none)')
export const dataDirOption = (): Option => new Option('-d, --data-dir <dir>', 'data directory (default ./data)')

/**
 * Loads the config file (if any) with the command-line overrides that every command shares, over
 * the defaults of the board it runs on (hardware.profile).
 */
export function configFrom(opts: CommonOptions, overrides: Record<string, unknown> = {}): Readonly<CoordinatorConfig> {
  return loadConfig({
    boardDefaults: boardConfigDefaults,
    ...(opts.config === undefined ? {} : { file: opts.config }),
    overrides: { ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir }), ...overrides },
  })
}

export function parsePort(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CommanderArgError(`expected a port number 0-65535, got '${value}'`)
  return n
}

/** `--attr k=v`, repeatable. */
export function collectKeyValue(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=')
  if (eq <= 0) throw new CommanderArgError(`expected key=value, got '${value}'`)
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) }
}

export const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

export function readJsonArg(inline: string | undefined, file: string | undefined): string {
  if (inline !== undefined && file !== undefined) throw new InvalidArgumentError('give either --payload or --file, not both')
  const text = inline ?? (file === undefined ? undefined : readFileSync(file === '-' ? 0 : file, 'utf8'))
  if (text === undefined) throw new InvalidArgumentError('a payload is required: --payload JSON or --file FILE (- for stdin)')
  try {
    JSON.parse(text)
  } catch (err) {
    throw new InvalidArgumentError(`payload is not valid JSON: ${(err as Error).message}`)
  }
  return text
}

/** Runs a CLI program; operational errors print one clear line and exit 1 instead of a stack trace. */
export async function runProgram(program: Command, argv: readonly string[]): Promise<void> {
  exitQuietlyOnClosedPipe()
  try {
    await program.exitOverride().parseAsync(argv as string[])
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode
      return
    }
    const message = (err as Error).message
    process.stderr.write(`${program.name()}: ${hasCode(err, 'COORD_CONFIG_INVALID') ? '' : 'error: '}${message}\n`)
    process.exitCode = 1
  }
}
