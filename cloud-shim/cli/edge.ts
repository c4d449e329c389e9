/**
 * `edge`: the operator and task-author CLI, a client of the cloud shim's HTTP API.
 *
 * Each command group is one module in ./edge/commands/ exporting `register(program)`; they are
 * found by listing that directory, so adding a group (`edge deploy`) is adding one file.
 */
import { readdirSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { packageVersion } from '../../coordinator/core/version.js'
import { exitQuietlyOnClosedPipe } from '../../coordinator/cli/stdio.js'
import { ApiError, DEFAULT_CLOUD_URL } from './edge/client.js'

const COMMANDS = new URL('./edge/commands/', import.meta.url)

interface CommandModule {
  register?: (program: Command) => void
}

export async function buildEdgeProgram(): Promise<Command> {
  const program = new Command('edge')
    .description('Operate an edge fleet through the cloud shim: things, groups, bundles, deployments, shadows')
    .option('--cloud <url>', `cloud shim API URL (default: $EDGE_CLOUD or ${DEFAULT_CLOUD_URL})`)
    .option('--token <token>', 'API token, needed from other machines (default: $EDGE_CLOUD_TOKEN)')
    .option('--json', 'JSON output for scripts')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .showHelpAfterError()
  // Compiled modules in dist/, TypeScript sources when run from the source tree.
  const files = readdirSync(COMMANDS).filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith('.d.ts')).sort()
  for (const file of files) {
    const mod = (await import(new URL(file, COMMANDS).href)) as CommandModule
    if (typeof mod.register !== 'function') throw new Error(`edge command module ${file} exports no register(program)`)
    mod.register(program)
  }
  return program
}

/** Runs the CLI; errors print one line and exit 1. */
export async function main(argv: readonly string[]): Promise<void> {
  exitQuietlyOnClosedPipe()
  const program = (await buildEdgeProgram()).exitOverride()
  try {
    await program.parseAsync(argv as string[])
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode
      return
    }
    const prefix = err instanceof ApiError ? `error (${err.status}): ` : 'error: '
    process.stderr.write(`edge: ${prefix}${(err as Error).message}\n`)
    process.exitCode = 1
  }
}
