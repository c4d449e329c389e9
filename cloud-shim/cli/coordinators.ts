import { resolve } from 'node:path'
import type { Command } from 'commander'
import { collect, collectKeyValue } from '../../coordinator/cli/common.js'
import { systemClock } from '../../coordinator/core/clock.js'
import { silentLogger } from '../../coordinator/core/log.js'
import { openDatabase } from '../../coordinator/store/index.js'
import type { CloudConfig } from '../config/index.js'
import { CredentialStore, provisionCoordinator, writeJoinFile } from '../identity/index.js'
import { advertisedUrls, cloudDatabaseFile, ensureCa, readEndpointsFile, requireUrl, type CloudEndpoints } from '../kernel/index.js'
import { Registry } from '../registry/index.js'
import { cloudConfigFrom, configOption, dataDirOption, print, type CommonOptions } from './common.js'

interface AddOptions extends CommonOptions {
  attr?: Record<string, string>
  tag?: string[]
  url?: string
  httpUrl?: string
  token?: boolean
  out?: string
}

/**
 * Provisioning works on the data directory directly, like the coordinator's `devices add`, so it
 * works whether or not the daemon runs; a running daemon picks the change up within a second.
 */
export function registerCoordinators(program: Command): void {
  const coordinators = program.command('coordinators').description('provision coordinators: registry entry, identity and join file')
  coordinators.command('add <name>')
    .description('register a coordinator, issue its client certificate and write <name>.join.json')
    .addOption(configOption()).addOption(dataDirOption())
    .option('--attr <key=value>', 'attribute (repeatable), usable in group queries', collectKeyValue)
    .option('--tag <tag>', 'capability tag (repeatable), e.g. gpio, camera, arch:arm64', collect)
    .option('--url <mqtts-url>', 'MQTT URL the coordinator connects to (default: advertise.mqttUrl or the mqtts listener)')
    .option('--http-url <url>', 'HTTP API URL for bundle downloads (default: advertise.httpUrl or the http listener)')
    .option('--token', 'also issue a token (an MQTT password usable instead of the certificate)')
    .option('--out <dir>', 'where to write the join file (default: the current directory)')
    .action((name: string, opts: AddOptions) => addCoordinator(name, opts))
  coordinators.command('list').alias('ls').description('list coordinators').option('--json', 'JSON output')
    .addOption(configOption()).addOption(dataDirOption())
    .action((opts: CommonOptions & { json?: boolean }) => withRegistry(opts, ({ registry }) => {
      const all = registry.listThings({ kind: 'coordinator' })
      if (opts.json === true) return print(JSON.stringify(all, null, 2))
      if (all.length === 0) return print('no coordinators registered')
      for (const c of all) print(`${c.name}\t${c.tags.join(',')}\t${Object.entries(c.attributes).map(([k, v]) => `${k}=${v}`).join(' ')}`)
    }))
  coordinators.command('remove <name>').alias('rm').description('remove a coordinator; its certificate and token stop working at once')
    .addOption(configOption()).addOption(dataDirOption())
    .action((name: string, opts: CommonOptions) => withRegistry(opts, ({ registry }) => {
      registry.removeThing(name)
      print(`removed ${name}`)
    }))
}

async function addCoordinator(name: string, opts: AddOptions): Promise<void> {
  const config = cloudConfigFrom(opts)
  const ca = await ensureCa(config, silentLogger())
  const urls = readEndpointsFile(config.dataDir)?.advertised ?? advertisedUrls(config, configuredEndpoints(config))
  await withRegistry(opts, async ({ registry, credentials }) => {
    const doc = await provisionCoordinator({ registry, credentials, ca, clock: systemClock }, {
      name,
      attributes: opts.attr ?? {},
      tags: opts.tag ?? [],
      mqttUrl: opts.url ?? requireUrl(urls.mqttUrl, 'MQTT', '--url'),
      httpUrl: opts.httpUrl ?? requireUrl(urls.httpUrl, 'HTTP', '--http-url'),
      token: opts.token === true,
    })
    const file = writeJoinFile(resolve(opts.out ?? '.'), doc)
    print(`registered coordinator ${name}\n  join file: ${file} (owner-read-only: it holds the private key)\n  mqtt: ${doc.mqttUrl}\n  http: ${doc.httpUrl}`)
    if (doc.token !== undefined) print('  token: in the join file (field "token")')
  })
}

/** While the daemon is down: the configured listeners, unless their port is left to the OS. */
function configuredEndpoints(config: CloudConfig): CloudEndpoints {
  const fixed = (l: { host: string; port: number } | null): { host: string; port: number } | undefined => (l === null || l.port === 0 ? undefined : l)
  const mqtts = config.broker === null ? fixed(config.listeners.mqtts) : undefined
  const http = fixed(config.listeners.http)
  return { ...(mqtts === undefined ? {} : { mqtts }), ...(http === undefined ? {} : { http }) }
}

async function withRegistry(opts: CommonOptions, fn: (s: { registry: Registry; credentials: CredentialStore }) => void | Promise<void>): Promise<void> {
  const config = cloudConfigFrom(opts)
  const db = openDatabase(cloudDatabaseFile(config.dataDir), { synchronous: config.store.synchronous })
  try {
    const registry = new Registry({ db, clock: systemClock, log: silentLogger() })
    await fn({ registry, credentials: new CredentialStore(db) })
  } finally {
    db.close()
  }
}
