import { Command } from 'commander'
import { packageVersion } from '../../coordinator/core/version.js'
import { runProgram } from '../../coordinator/cli/common.js'
import { registerCerts } from './certs.js'
import { registerCoordinators } from './coordinators.js'
import { registerStart } from './start.js'

export function buildProgram(): Command {
  const program = new Command('edge-cloud')
    .description('Cloud shim for edge coordinators: registry and groups, cloud shadows, bundle catalog, HTTP API')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .showHelpAfterError()
  registerStart(program)
  registerCoordinators(program)
  registerCerts(program)
  return program
}

export async function main(argv: readonly string[]): Promise<void> {
  await runProgram(buildProgram(), argv)
}
