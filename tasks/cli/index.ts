/**
 * `edge-task`: the task author's tool. Offline: keygen, pack, sign, inspect. Online, against a
 * coordinator's local API: push, ls, show, rm, stop, start, invoke, logs, and dev (the watch loop).
 */
import { Command, CommanderError } from 'commander'
import { packageVersion } from '../../coordinator/core/version.js'
import { exitQuietlyOnClosedPipe } from '../../coordinator/cli/stdio.js'
import { registerDev } from './dev.js'
import { registerLocal } from './local.js'
import { registerPack } from './pack.js'
import { registerRemote } from './remote.js'

export function buildProgram(): Command {
  const program = new Command('edge-task')
    .description('Build, sign and deploy edge coordinator tasks')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .showHelpAfterError()
  registerPack(program)
  registerLocal(program)
  registerRemote(program)
  registerDev(program)
  return program
}

/** Runs the CLI; operational errors print one clear line (or the list of manifest errors) and exit 1. */
export async function main(argv: readonly string[]): Promise<void> {
  exitQuietlyOnClosedPipe()
  const program = buildProgram().exitOverride()
  try {
    await program.parseAsync(argv as string[])
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode
      return
    }
    process.stderr.write(`edge-task: error: ${(err as Error).message}\n`)
    process.exitCode = 1
  }
}
