import { Command, CommanderError } from 'commander'
import { hasCode } from '../core/errors.js'
import { registerStart } from './start.js'
import { registerCerts } from './certs.js'
import { registerDevices } from './devices.js'
import { registerShadow } from './shadow.js'

export function buildProgram(): Command {
  const program = new Command('edge-coordinator')
    .description('Edge coordinator for IoT gateways: MQTT broker, AWS-compatible device shadows, local API')
    .showHelpAfterError()
  registerStart(program)
  registerCerts(program)
  registerDevices(program)
  registerShadow(program)
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
    process.stderr.write(`edge-coordinator: ${hasCode(err, 'COORD_CONFIG_INVALID') ? '' : 'error: '}${message}\n`)
    process.exitCode = 1
  }
}
