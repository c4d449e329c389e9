import type { Command } from 'commander'
import type { CoordinatorConfig } from '../config/index.js'
import { createLogger, type LoggerOptions } from '../core/log.js'
import { Coordinator } from '../kernel/coordinator.js'
import { SystemdNotifier } from '../../hardware/index.js'
import { configFrom, configOption, dataDirOption, parsePort, type CommonOptions } from './common.js'

interface StartOptions extends CommonOptions {
  join?: string
  mqttPort?: number
  mqttsPort?: number
  wsPort?: number
  httpPort?: number
}

/**
 * What a stop may take beyond draining task calls (tasks.drainTimeoutMs): closing listeners,
 * committing queued shadow work, closing the broker and the databases. The unit's
 * TimeoutStopSec (20 s) must stay above the drain plus this; past it the process exits anyway.
 */
const STOP_MARGIN_MS = 10_000

export function registerStart(program: Command): void {
  program.command('start')
    .description('run the coordinator daemon (broker, shadows, local API)')
    .addOption(configOption())
    .addOption(dataDirOption())
    .option('--mqtt-port <n>', 'MQTT over TCP port (0 picks a free port)', parsePort)
    .option('--mqtts-port <n>', 'MQTT over mutual TLS port (0 picks a free port)', parsePort)
    .option('--ws-port <n>', 'MQTT over WebSocket port (0 picks a free port)', parsePort)
    .option('--http-port <n>', 'local HTTP API port (0 picks a free port)', parsePort)
    .option('--join <file>', 'join file from `edge-cloud coordinators add`: connect to that cloud shim')
    .action(async (opts: StartOptions) => {
      const config = configFrom(opts, { listeners: listenerOverrides(opts), ...(opts.join === undefined ? {} : { cloud: { joinFile: opts.join } }) })
      const log = createLogger(loggerOptions(config))
      const coordinator = await Coordinator.start(config, log)
      // Under systemd (Type=notify): ready once listening, then watchdog pings until stopping.
      const systemd = SystemdNotifier.fromEnv({ log })
      const stop = (signal: string): void => {
        void systemd?.stopping()
        log.info({ signal }, 'stopping')
        setTimeout(() => {
          log.error({ deadlineMs: config.tasks.drainTimeoutMs + STOP_MARGIN_MS }, 'stop deadline passed; exiting uncleanly')
          process.exit(1)
        }, config.tasks.drainTimeoutMs + STOP_MARGIN_MS).unref()
        coordinator.close().then(() => process.exit(0), (err: Error) => {
          log.error({ err: err.message }, 'unclean stop')
          process.exit(1)
        })
      }
      process.once('SIGTERM', () => stop('SIGTERM'))
      process.once('SIGINT', () => stop('SIGINT'))
      await systemd?.ready('listening')
      systemd?.startWatchdog()
    })
}

/** JSON to a size-capped rotating file when `log.file` is set, else to stdout (the journal under systemd). */
function loggerOptions(config: Readonly<CoordinatorConfig>): LoggerOptions {
  const { level, pretty, file, maxBytes, maxFiles } = config.log
  if (file !== null) return { level, file: { path: file, maxBytes, maxFiles } }
  return { level, ...(pretty === null ? {} : { pretty }) }
}

function listenerOverrides(opts: StartOptions): Record<string, { port: number }> {
  const out: Record<string, { port: number }> = {}
  if (opts.mqttPort !== undefined) out['mqtt'] = { port: opts.mqttPort }
  if (opts.mqttsPort !== undefined) out['mqtts'] = { port: opts.mqttsPort }
  if (opts.wsPort !== undefined) out['ws'] = { port: opts.wsPort }
  if (opts.httpPort !== undefined) out['http'] = { port: opts.httpPort }
  return out
}
