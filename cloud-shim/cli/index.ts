import { Command, CommanderError } from 'commander'
import { hasCode } from '../../coordinator/core/errors.js'
import { registerCerts } from './certs.js'
import { registerCoordinators } from './coordinators.js'
import { registerStart } from './start.js'

export function buildProgram(): Command {
  const program = new Command('edge-cloud')
    .description('Cloud shim for edge coordinators: registry and groups, cloud shadows, bundle catalog, HTTP API')
    .showHelpAfterError()
  registerStart(program)
  registerCoordinators(program)
  registerCerts(program)
  return program
}

/** Runs the CLI; operational errors print one clear line and exit 1 instead of a stack trace. */
export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram().exitOverride()
  try {
    await program.parseAsync(argv as string[])
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode
      return
    }
    const message = (err as Error).message
    process.stderr.write(`edge-cloud: ${hasCode(err, 'COORD_CONFIG_INVALID') ? '' : 'error: '}${message}\n`)
    process.exitCode = 1
  }
}
