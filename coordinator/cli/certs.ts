import type { Command } from 'commander'
import { caFiles, defaultServerHosts, initCa, readServer } from '../pki/ca-files.js'
import { collect, configFrom, configOption, dataDirOption, type CommonOptions } from './common.js'

export function registerCerts(program: Command): void {
  const certs = program.command('certs').description("manage the coordinator's certificate authority")
  certs.command('init')
    .description('create the CA (if missing) and a server certificate for the given host names and addresses')
    .addOption(configOption()).addOption(dataDirOption())
    .option('--host <name-or-ip>', 'host name or IP devices use to reach the coordinator (repeatable)', collect)
    .action(async (opts: CommonOptions & { host?: string[] }) => {
      const config = configFrom(opts)
      const files = caFiles(config.dataDir)
      const hosts = defaultServerHosts([...(opts.host ?? []), ...config.auth.serverCertHosts, config.listeners.mqtts?.host ?? ''].filter(Boolean))
      const { createdCa } = await initCa(files, hosts)
      const { certificateInfo } = await import('../pki/index.js')
      const info = certificateInfo(readServer(files).certPem)
      process.stdout.write(`${createdCa ? 'created' : 'kept existing'} CA: ${files.caCert}\n`)
      process.stdout.write(`server certificate: ${files.serverCert}\n  names: ${info.sans.join(', ')}\n  valid until: ${info.notAfter.toISOString()}\n`)
      process.stdout.write('restart the coordinator to serve the new server certificate\n')
    })
}
