import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { writeFileAtomic } from '../core/atomic-file.js'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { InvalidArgumentError } from '../core/errors.js'
import { isValidThingName } from '../protocol/index.js'
import { caFiles, checkCa, defaultServerHosts, initCa, readCa } from '../pki/ca-files.js'
import { openDatabase, DeviceStore, type DeviceRecord } from '../store/index.js'
import { databaseFile } from '../kernel/coordinator.js'
import type { CoordinatorConfig } from '../config/index.js'
import { collect, collectKeyValue, configFrom, configOption, dataDirOption, type CommonOptions } from './common.js'

interface AddOptions extends CommonOptions {
  attr?: Record<string, string>
  policy?: string[]
  token?: boolean
  cert: boolean
  out?: string
}

export function registerDevices(program: Command): void {
  const devices = program.command('devices').description('register coordinated devices and issue their credentials')
  devices.command('add <name>')
    .description('register a device and issue its client certificate (and optionally a token)')
    .addOption(configOption()).addOption(dataDirOption())
    .option('--attr <key=value>', 'attribute (repeatable), usable in policies as ${attr.key}', collectKeyValue)
    .option('--policy <name>', 'extra policy from the config (repeatable)', collect)
    .option('--token', 'also issue a token for username/password clients (printed once)')
    .option('--no-cert', 'issue no certificate (token-only device)')
    .option('--out <dir>', 'where to write the credentials (default <data-dir>/devices/<name>)')
    .action(async (name: string, opts: AddOptions) => addDevice(name, opts))
  devices.command('list').alias('ls').description('list registered devices')
    .addOption(configOption()).addOption(dataDirOption()).option('--json', 'JSON output')
    .action((opts: CommonOptions & { json?: boolean }) => withStore(opts, (store) => {
      const all = store.list()
      if (opts.json === true) return print(JSON.stringify(all.map(publicView), null, 2))
      if (all.length === 0) return print('no devices registered')
      for (const d of all) print(`${d.name}\t${credentialKinds(d)}\t${formatAttrs(d.attributes)}`)
    }))
  devices.command('show <name>').description('show one device')
    .addOption(configOption()).addOption(dataDirOption())
    .action((name: string, opts: CommonOptions) => withStore(opts, (store) => {
      print(JSON.stringify(publicView(mustGet(store, name)), null, 2))
    }))
  devices.command('remove <name>').alias('rm').description('unregister a device; its certificate and token stop working')
    .addOption(configOption()).addOption(dataDirOption())
    .action((name: string, opts: CommonOptions) => withStore(opts, (store, config) => {
      mustGet(store, name)
      store.remove(name)
      rmSync(join(config.dataDir, 'devices', name), { recursive: true, force: true })
      print(`removed ${name}`)
    }))
}

async function addDevice(name: string, opts: AddOptions): Promise<void> {
  const { generateToken, hashToken } = await import('../pki/index.js')
  if (!isValidThingName(name)) throw new InvalidArgumentError(`device name '${name}' is invalid: expected 1-128 characters of a-z A-Z 0-9 : _ -`)
  if (!opts.cert && opts.token !== true) throw new InvalidArgumentError('a device needs a certificate or a token: drop --no-cert or add --token')
  const config = configFrom(opts)
  const known = new Set(config.policies.map((p) => p.name))
  for (const p of opts.policy ?? []) {
    if (!known.has(p)) throw new InvalidArgumentError(`policy '${p}' is not defined in the config's policies`)
  }
  const db = openDatabase(databaseFile(config.dataDir))
  try {
    const store = new DeviceStore(db)
    if (store.get(name) !== undefined) throw new InvalidArgumentError(`device '${name}' already exists (remove it first to re-issue)`)
    const outDir = resolve(opts.out ?? join(config.dataDir, 'devices', name))
    const fingerprint = opts.cert ? await writeCertificate(config, name, outDir) : null
    const token = opts.token === true ? generateToken() : null
    store.add({
      name, attributes: opts.attr ?? {}, policies: opts.policy ?? [], certFingerprint: fingerprint,
      tokenHash: token === null ? null : hashToken(token), createdAt: Date.now(),
    })
    print(`registered ${name}`)
    if (fingerprint !== null) print(`  certificate: ${join(outDir, 'cert.pem')}\n  key:         ${join(outDir, 'key.pem')}\n  CA:          ${join(outDir, 'ca.pem')}`)
    if (token !== null) print(`  token:       ${token}\n  (shown once; connect with client id '${name}' and this token as the MQTT password)`)
  } finally {
    db.close()
  }
}

async function writeCertificate(config: CoordinatorConfig, name: string, outDir: string): Promise<string> {
  const { certificateInfo, issueClientCert } = await import('../pki/index.js')
  const files = caFiles(config.dataDir)
  if (!checkCa(files)) await initCa(files, defaultServerHosts([config.listeners.mqtts?.host ?? '', ...config.auth.serverCertHosts].filter(Boolean)))
  const issued = await issueClientCert(readCa(files), { thingName: name })
  mkdirSync(outDir, { recursive: true, mode: 0o700 })
  writeFileAtomic(join(outDir, 'key.pem'), issued.keyPem)
  writeFileAtomic(join(outDir, 'cert.pem'), issued.certPem, 0o644)
  writeFileAtomic(join(outDir, 'ca.pem'), readFileSync(files.caCert), 0o644)
  return certificateInfo(issued.certPem).fingerprint256
}

function withStore(opts: CommonOptions, fn: (store: DeviceStore, config: Readonly<CoordinatorConfig>) => void): void {
  const config = configFrom(opts)
  const db = openDatabase(databaseFile(config.dataDir))
  try {
    fn(new DeviceStore(db), config)
  } finally {
    db.close()
  }
}

function mustGet(store: DeviceStore, name: string): DeviceRecord {
  const d = store.get(name)
  if (d === undefined) throw new InvalidArgumentError(`no device named '${name}'`)
  return d
}

/** What is safe to show: verifiers stay out of the output. */
function publicView(d: DeviceRecord): Record<string, unknown> {
  return {
    name: d.name, attributes: d.attributes, policies: d.policies, credentials: credentialKinds(d),
    certFingerprint: d.certFingerprint, createdAt: new Date(d.createdAt).toISOString(),
  }
}

const credentialKinds = (d: DeviceRecord): string =>
  [d.certFingerprint !== null ? 'certificate' : '', d.tokenHash !== null ? 'token' : ''].filter(Boolean).join('+')

const formatAttrs = (a: Record<string, string>): string => Object.entries(a).map(([k, v]) => `${k}=${v}`).join(' ')

const print = (s: string): void => {
  process.stdout.write(`${s}\n`)
}
