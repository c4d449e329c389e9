import { existsSync, readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { InvalidArgumentError } from '../core/errors.js'
import { endpointsFile, type EndpointsFile } from '../kernel/coordinator.js'
import { configFrom, configOption, dataDirOption, readJsonArg, type CommonOptions } from './common.js'

interface ShadowOptions extends CommonOptions {
  name?: string
  url?: string
  payload?: string
  file?: string
}

/** Operator access to shadows through the running daemon, so devices see the same deltas. */
export function registerShadow(program: Command): void {
  const shadow = program.command('shadow').description('read and change device shadows through the running coordinator')
  const withCommon = (cmd: Command): Command => cmd
    .addOption(configOption()).addOption(dataDirOption())
    .option('-n, --name <shadow>', 'named shadow (default: the classic shadow)')
    .option('--url <url>', 'coordinator API URL (default: from the running daemon in the data directory)')
  withCommon(shadow.command('get <thing>').description('print the shadow document'))
    .action((thing: string, opts: ShadowOptions) => call('GET', thing, opts))
  withCommon(shadow.command('update <thing>').description('apply an update request document, e.g. {"state":{"desired":{"on":true}}}'))
    .option('-p, --payload <json>', 'the update request document')
    .option('-f, --file <file>', 'read the update request document from a file (- for stdin)')
    .action((thing: string, opts: ShadowOptions) => call('POST', thing, opts, readJsonArg(opts.payload, opts.file)))
  withCommon(shadow.command('delete <thing>').description('delete the shadow (its version is kept)'))
    .action((thing: string, opts: ShadowOptions) => call('DELETE', thing, opts))
}

async function call(method: string, thing: string, opts: ShadowOptions, body?: string): Promise<void> {
  const base = opts.url ?? apiUrlFromDataDir(opts)
  const url = new URL(`/things/${encodeURIComponent(thing)}/shadow`, base)
  if (opts.name !== undefined) url.searchParams.set('name', opts.name)
  let res: Response
  try {
    res = await fetch(url, { method, ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }) })
  } catch (err) {
    throw new Error(`cannot reach the coordinator at ${base}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`)
  }
  const text = await res.text()
  process.stdout.write(`${formatJson(text)}\n`)
  if (!res.ok) process.exitCode = 1
}

function apiUrlFromDataDir(opts: ShadowOptions): string {
  const config = configFrom(opts)
  const file = endpointsFile(config.dataDir)
  if (!existsSync(file)) throw new InvalidArgumentError(`the coordinator does not seem to run with data directory ${config.dataDir} (no ${file}); start it or pass --url`)
  const http = (JSON.parse(readFileSync(file, 'utf8')) as EndpointsFile).endpoints.http
  if (http === undefined) throw new InvalidArgumentError('the running coordinator has its HTTP API turned off; pass --url')
  const host = http.host.includes(':') ? `[${http.host}]` : http.host
  return `http://${host}:${http.port}`
}

function formatJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2)
  } catch {
    return text
  }
}
