import type { Command } from 'commander'
import { collect } from '../../coordinator/cli/common.js'
import { caFiles, certificateInfo, defaultServerHosts, initCa, readServer } from '../../coordinator/pki/index.js'
import { cloudConfigFrom, configOption, dataDirOption, print, type CommonOptions } from './common.js'

export function registerCerts(program: Command): void {
  const certs = program.command('certs').description("manage the cloud shim's certificate authority")
  certs.command('init')
    .description('create the CA (if missing) and a server certificate for the names coordinators connect to')
    .addOption(configOption()).addOption(dataDirOption())
    .option('--force', 'issue a new CA even if one exists or is damaged; the old pki/ is moved aside, and every device needs new credentials')
    .option('--host <name-or-ip>', 'host name or IP coordinators use to reach the cloud shim (repeatable)', collect)
    .action(async (opts: CommonOptions & { host?: string[]; force?: boolean }) => {
      const config = cloudConfigFrom(opts)
      const files = caFiles(config.dataDir)
      const hosts = defaultServerHosts([...(opts.host ?? []), ...config.auth.serverCertHosts, config.listeners.mqtts?.host ?? ''].filter(Boolean))
      const { createdCa, replaced } = await initCa(files, hosts, { force: opts.force === true })
      const info = certificateInfo(readServer(files).certPem)
      if (replaced !== undefined) print(`moved the old CA aside to ${replaced}: every coordinator needs a new join file`)
      print(`${createdCa ? 'created' : 'kept existing'} CA: ${files.caCert}`)
      print(`server certificate: ${files.serverCert}\n  names: ${info.sans.join(', ')}\n  valid until: ${info.notAfter.toISOString()}`)
      print('restart the cloud shim to serve the new server certificate')
    })
}
