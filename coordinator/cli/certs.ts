import type { Command } from 'commander'
import { caFiles, defaultServerHosts, initCa, readServer } from '../pki/ca-files.js'
import { collect, configFrom, configOption, dataDirOption, type CommonOptions } from './common.js'

export function registerCerts(program: Command): void {
  const certs = program.command('certs').description("manage the coordinator's certificate authority")
  certs.command('init')
    .description('create the CA (if missing) and a server certificate for the given host names and addresses')
    .addOption(configOption()).addOption(dataDirOption())
    .option('--force', 'issue a new CA even if one exists or is damaged; the old pki/ is moved aside, and every device needs new credentials')
    .option('--host <name-or-ip>', 'host name or IP devices use to reach the coordinator (repeatable)', collect)
    .action(async (opts: CommonOptions & { host?: string[]; force?: boolean }) => {
      const config = configFrom(opts)
      const files = caFiles(config.dataDir)
      const hosts = defaultServerHosts([...(opts.host ?? []), ...config.auth.serverCertHosts, config.listeners.mqtts?.host ?? ''].filter(Boolean))
      const { createdCa, replaced } = await initCa(files, hosts, { force: opts.force === true })
      const { certificateInfo } = await import('../pki/index.js')
      const info = certificateInfo(readServer(files).certPem)
      if (replaced !== undefined) process.stdout.write(`moved the old CA aside to ${replaced}: every device needs new credentials\n`)
      process.stdout.write(`${createdCa ? 'created' : 'kept existing'} CA: ${files.caCert}\n`)
      process.stdout.write(`server certificate: ${files.serverCert}\n  names: ${info.sans.join(', ')}\n  valid until: ${info.notAfter.toISOString()}\n`)
      process.stdout.write('restart the coordinator to serve the new server certificate\n')
    })
}
