import type { Command } from 'commander'
import { createLogger } from '../../coordinator/core/log.js'
import { parsePort } from '../../coordinator/cli/common.js'
import { CloudShim } from '../kernel/index.js'
import { cloudConfigFrom, configOption, dataDirOption, type CommonOptions } from './common.js'

interface StartOptions extends CommonOptions {
  mqttPort?: number
  mqttsPort?: number
  httpPort?: number
  broker?: string
}

/** Deadline for a graceful stop before the process exits anyway. */
const STOP_DEADLINE_MS = 10_000

export function registerStart(program: Command): void {
  program.command('start')
    .description('run the cloud shim daemon (broker or broker client, registry, cloud shadows, bundle catalog, HTTP API)')
    .addOption(configOption())
    .addOption(dataDirOption())
    .option('--mqtt-port <n>', 'embedded broker: MQTT over TCP port (0 picks a free port)', parsePort)
    .option('--mqtts-port <n>', 'embedded broker: MQTT over mutual TLS port (0 picks a free port)', parsePort)
    .option('--http-port <n>', 'HTTP API port (0 picks a free port)', parsePort)
    .option('--broker <url>', 'attach to this MQTT broker as a client instead of embedding one (mqtt://, mqtts://, ws://)')
    .action(async (opts: StartOptions) => {
      const config = cloudConfigFrom(opts, overrides(opts))
      const log = createLogger({ level: config.log.level, ...(config.log.pretty === null ? {} : { pretty: config.log.pretty }) })
      const shim = await CloudShim.start(config, log)
      const stop = (signal: string): void => {
        log.info({ signal }, 'stopping')
        setTimeout(() => process.exit(1), STOP_DEADLINE_MS).unref()
        shim.close().then(() => process.exit(0), (err: Error) => {
          log.error({ err: err.message }, 'unclean stop')
          process.exit(1)
        })
      }
      process.once('SIGTERM', () => stop('SIGTERM'))
      process.once('SIGINT', () => stop('SIGINT'))
    })
}

function overrides(opts: StartOptions): Record<string, unknown> {
  const listeners: Record<string, { port: number }> = {}
  if (opts.mqttPort !== undefined) listeners['mqtt'] = { port: opts.mqttPort }
  if (opts.mqttsPort !== undefined) listeners['mqtts'] = { port: opts.mqttsPort }
  if (opts.httpPort !== undefined) listeners['http'] = { port: opts.httpPort }
  return { listeners, ...(opts.broker === undefined ? {} : { broker: { url: opts.broker } }) }
}
