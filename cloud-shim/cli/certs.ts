import type { Command } from 'commander'
import { collect } from '../../coordinator/cli/common.js'
import { caFiles, certificateInfo, defaultServerHosts, initCa, readServer } from '../../coordinator/pki/index.js'
import { cloudConfigFrom, configOption, dataDirOption, print, type CommonOptions } from './common.js'

export function registerCerts(program: Command): void {
  const certs = program.command('certs').description("manage the cloud shim's certificate authority")
  certs.command('init')
    .description('create the CA (if missing) and a server certificate for the names coordinators connect to')
    .addOption(configOption()).addOption(dataDirOption())
    .option('--host <name-or-ip>', 'host name or IP coordinators use to reach the cloud shim (repeatable)', collect)
    .action(async (opts: CommonOptions & { host?: string[] }) => {
      const config = cloudConfigFrom(opts)
      const files = caFiles(config.dataDir)
      const hosts = defaultServerHosts([...(opts.host ?? []), ...config.auth.serverCertHosts, config.listeners.mqtts?.host ?? ''].filter(Boolean))
      const { createdCa } = await initCa(files, hosts)
      const info = certificateInfo(readServer(files).certPem)
      print(`${createdCa ? 'created' : 'kept existing'} CA: ${files.caCert}`)
      print(`server certificate: ${files.serverCert}\n  names: ${info.sans.join(', ')}\n  valid until: ${info.notAfter.toISOString()}`)
      print('restart the cloud shim to serve the new server certificate')
    })
}
