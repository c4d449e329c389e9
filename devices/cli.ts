/**
 * The swarm runner: `node dist/devices/cli.js --coordinator URL --count 100 --kind sensor ...`.
 * Prints a status line every few seconds; Ctrl-C (or SIGTERM) stops every device cleanly, a second
 * Ctrl-C exits at once.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { isSimKind, SIM_KINDS } from './sim/index.js'
import { planSwarm, type SwarmCliOptions } from './swarm/plan.js'
import { RateMeter, Swarm, type SwarmKind } from './swarm/index.js'

interface CliOptions extends SwarmCliOptions {
  statusMs: number
  anonymous?: boolean
}

function integer(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got '${value}'`)
    return n
  }
}

function kind(value: string): SwarmKind {
  if (value === 'mixed' || isSimKind(value)) return value
  throw new InvalidArgumentError(`expected one of ${[...SIM_KINDS, 'mixed'].join(', ')}, got '${value}'`)
}

function buildProgram(): Command {
  return new Command('devices')
    .description('Run a swarm of simulated devices (sensors, plugs, thermostats, locks, lights) against a coordinator')
    .requiredOption('--coordinator <url>', 'broker URL (mqtt://, mqtts://, ws://, wss://), or the coordinator API URL (http://) to discover it')
    .option('--count <n>', 'number of devices', integer(1), 1)
    .option('--kind <kind>', `${SIM_KINDS.join(' | ')} | mixed`, kind, 'sensor')
    .option('--prefix <prefix>', 'thing names are PREFIX1 .. PREFIXn', 'sim-')
    .option('--interval-ms <ms>', 'simulation tick and telemetry period', integer(1), 1000)
    .option('--seed <n>', 'base random seed; device i uses seed + i', integer(0), 1)
    .addOption(new Option('--token-file <file>', 'one "THING_NAME TOKEN" per line (from `edge-coordinator devices add NAME --token`)').conflicts('anonymous'))
    .addOption(new Option('--cert-dir <dir>', 'per-device DIR/NAME/{cert,key,ca}.pem, as `devices add` writes under <dataDir>/devices').conflicts('anonymous'))
    .option('--anonymous', 'no credentials (the coordinator allows this on loopback); the default without --token-file or --cert-dir')
    .option('--api-token-file <file>', 'bearer token for discovery from another machine (<dataDir>/api-token)')
    .option('--status-ms <ms>', 'status line period', integer(100), 5000)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
}

/** Resolves on the first SIGINT/SIGTERM; a second one exits at once. */
function firstSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.once('SIGINT', () => process.exit(130)).once('SIGTERM', () => process.exit(143))
      resolve(signal)
    }
    process.once('SIGINT', onSignal).once('SIGTERM', onSignal)
  })
}

async function run(opts: CliOptions): Promise<void> {
  const plan = await planSwarm(opts)
  const stopped = firstSignal()
  const swarm = new Swarm(plan.options)
  console.log(plan.summary)
  swarm.start()
  const meter = new RateMeter(swarm.sample(), Date.now())
  const status = setInterval(() => console.log(meter.line(swarm.sample(), Date.now())), opts.statusMs)
  const signal = await stopped
  clearInterval(status)
  console.log(`${signal}: stopping ${opts.count} device(s)`)
  await swarm.stop()
  console.log(`stopped; ${meter.line(swarm.sample(), Date.now())}`)
}

async function main(argv: string[]): Promise<void> {
  try {
    const program = buildProgram()
    program.parse(argv)
    await run(program.opts<CliOptions>())
  } catch (err) {
    // Commander has already printed its own message for usage errors.
    if (!(err instanceof CommanderError)) process.stderr.write(`devices: error: ${(err as Error).message}\n`)
    process.exitCode = err instanceof CommanderError ? err.exitCode : 1
  }
}

await main(process.argv)
