import { Command } from 'commander'
import { packageVersion } from '../core/version.js'
import { runProgram } from './common.js'
import { registerStart } from './start.js'
import { registerCerts } from './certs.js'
import { registerDevices } from './devices.js'
import { registerShadow } from './shadow.js'

export function buildProgram(): Command {
  const program = new Command('edge-coordinator')
    .version(packageVersion())
    .description('Edge coordinator for IoT gateways: MQTT broker, AWS-compatible device shadows, local API')
    .showHelpAfterError()
  registerStart(program)
  registerCerts(program)
  registerDevices(program)
  registerShadow(program)
  return program
}

export async function main(argv: readonly string[]): Promise<void> {
  await runProgram(buildProgram(), argv)
}
