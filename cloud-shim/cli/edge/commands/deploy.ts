import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { InvalidArgumentError } from '../../../../coordinator/core/errors.js'
import { contextOf, path, type CloudClient } from '../client.js'
import { isSettled, parseBundleSpec, parseDuration, parseThreshold, statusLines, type DeploymentView } from '../deploy-view.js'
import { print, printJson, printTable } from '../output.js'

interface CreateOptions {
  target: string
  bundle: string[]
  maxConcurrent?: string
  failureThreshold?: string
  timeout?: string
  onFailure?: string
  watch?: boolean
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

/** `edge deploy`: fleet deployments (create, status with a live display, list, cancel) and group snapshots. */
export function register(program: Command): void {
  const deploy = program.command('deploy').description('deploy bundles to a coordinator or a group, follow and cancel rollouts')
  deploy.command('create').description('start a deployment')
    .requiredOption('--target <target>', 'group:NAME or thing:NAME')
    .requiredOption('--bundle <spec>', 'name@version[:config.json] (repeatable)', collect)
    .option('--max-concurrent <n>', 'coordinators working at once')
    .option('--failure-threshold <n|p%>', 'abort at this many failures, or this share of the coordinators (e.g. 1 or 20%)')
    .option('--timeout <duration>', 'per-coordinator timeout (e.g. 60s, 5m)')
    .option('--on-failure <what>', 'rollback or leave')
    .option('--watch', 'follow the rollout until it settles')
    .action(create)
  deploy.command('status <id>').description('a deployment, per coordinator and in total')
    .option('--watch', 'redraw until the rollout settles; exits 1 unless it succeeded')
    .option('--interval <duration>', 'how often --watch polls', '1s')
    .action(async (id: string, opts: { watch?: boolean; interval: string }, cmd: Command) => {
      const { client, json } = contextOf(cmd)
      if (opts.watch === true) return watch(client, id, json, parseDuration(opts.interval, '--interval'))
      const d = await client.call<DeploymentView>('GET', path`/v1/deployments/${id}`)
      if (json) printJson(d)
      else statusLines(d).forEach((l) => print(l))
    })
  deploy.command('ls', { isDefault: true }).alias('list').description('list deployments, newest first').action(list)
  deploy.command('cancel <id>').description('stop starting coordinators; those already moved stay unless --rollback')
    .option('--rollback', 'also move the coordinators already moved back to their previous task set')
    .action(async (id: string, opts: { rollback?: boolean }, cmd: Command) => {
      const { client, json } = contextOf(cmd)
      const d = await client.call<DeploymentView>('POST', path`/v1/deployments/${id}/cancel`, { rollback: opts.rollback === true })
      if (json) printJson(d)
      else print(`${d.id} ${d.status}${d.reason === null ? '' : ` (${d.reason})`}`)
    })
  registerSnapshot(deploy)
}

async function create(opts: CreateOptions, cmd: Command): Promise<void> {
  const { client, json } = contextOf(cmd)
  const d = await client.call<DeploymentView>('POST', '/v1/deployments', createBody(opts))
  if (opts.watch === true) return watch(client, d.id, json, 1000)
  if (json) return printJson(d)
  print(`created ${d.id}: ${d.targetLabel}, ${d.coordinators?.length ?? 0} coordinator(s); follow it with \`edge deploy status ${d.id} --watch\``)
}

function createBody(opts: CreateOptions): Record<string, unknown> {
  const m = /^(group|thing):(.+)$/.exec(opts.target)
  if (m === null) throw new InvalidArgumentError(`--target ${JSON.stringify(opts.target)}: expected group:NAME or thing:NAME`)
  const bundles = opts.bundle.map((spec) => {
    const { name, version, configFile } = parseBundleSpec(spec)
    return configFile === undefined ? { name, version } : { name, version, config: readConfig(configFile) }
  })
  const rollout: Record<string, unknown> = {}
  if (opts.maxConcurrent !== undefined) rollout['maxConcurrent'] = Number(opts.maxConcurrent)
  if (opts.failureThreshold !== undefined) rollout['failureThreshold'] = parseThreshold(opts.failureThreshold)
  if (opts.timeout !== undefined) rollout['perCoordinatorTimeoutMs'] = parseDuration(opts.timeout, '--timeout')
  if (opts.onFailure !== undefined) rollout['onFailure'] = opts.onFailure
  return { target: { [m[1] ?? 'group']: m[2] }, bundles, rollout }
}

function readConfig(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new InvalidArgumentError(`config file ${file}: ${(err as Error).message}`)
  }
}

async function list(_opts: unknown, cmd: Command): Promise<void> {
  const { client, json } = contextOf(cmd)
  const { deployments } = await client.call<{ deployments: DeploymentView[] }>('GET', '/v1/deployments')
  if (json) return printJson(deployments)
  if (deployments.length === 0) return print('no deployments')
  printTable(['id', 'target', 'status', 'bundles', 'coordinators', 'created'], deployments.map((d) => [
    d.id, d.targetLabel, d.status, d.bundles.map((b) => `${b.name}@${b.version}`).join(','),
    `${d.totals['succeeded'] ?? 0}/${d.totals['targets'] ?? 0} ok`, d.createdAt,
  ]))
}

/**
 * Live progress: on a terminal the display is redrawn in place; otherwise (logs, pipes) it is
 * printed again only when it changed, and with --json one JSON line per change.
 */
async function watch(client: CloudClient, id: string, json: boolean, intervalMs: number): Promise<void> {
  const tty = process.stdout.isTTY && !json
  let drawn = 0
  let last = ''
  for (;;) {
    const d = await client.call<DeploymentView>('GET', path`/v1/deployments/${id}`)
    const lines = json ? [JSON.stringify(d)] : statusLines(d)
    const key = json ? JSON.stringify({ ...d, updatedAt: undefined }) : statusLines(d, 0).join('\n')
    if (tty) {
      process.stdout.write(`${drawn > 0 ? `\u001b[${drawn}A\u001b[J` : ''}${lines.join('\n')}\n`)
      drawn = lines.length
    } else if (key !== last) {
      lines.forEach((l) => print(l))
    }
    last = key
    if (isSettled(d)) {
      process.exitCode = d.status === 'succeeded' ? 0 : 1
      return
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

function registerSnapshot(deploy: Command): void {
  const snapshot = deploy.command('snapshot').description("freeze the bundle versions a group may receive (approved-version snapshot)")
  snapshot.command('set <group>').description('allow only these versions until a time')
    .requiredOption('--bundle <name@version>', 'an approved version (repeatable)', collect)
    .requiredOption('--until <time>', 'an ISO 8601 time, or a duration from now (e.g. 2h, 7d)')
    .action(async (group: string, opts: { bundle: string[]; until: string }, cmd: Command) => {
      const { client, json } = contextOf(cmd)
      const until = /^\d+(\.\d+)?(ms|s|m|h|d)?$/.test(opts.until) ? Date.now() + parseDuration(opts.until, '--until') : opts.until
      const s = await client.call<{ group: string; bundles: string[]; until: string }>('POST', path`/v1/groups/${group}/snapshot`, { bundles: opts.bundle, until })
      if (json) printJson(s)
      else print(`group ${s.group} frozen until ${s.until} to ${s.bundles.join(', ')}`)
    })
  snapshot.command('show <group>').action(async (group: string, _opts: unknown, cmd: Command) => {
    const { client, json } = contextOf(cmd)
    const s = await client.call<{ group: string; bundles: string[]; until: string }>('GET', path`/v1/groups/${group}/snapshot`)
    if (json) printJson(s)
    else print(`group ${s.group}: ${s.bundles.join(', ')} until ${s.until}`)
  })
  snapshot.command('rm <group>').alias('remove').description('lift the freeze').action(async (group: string, _opts: unknown, cmd: Command) => {
    const { client, json } = contextOf(cmd)
    const r = await client.call<unknown>('DELETE', path`/v1/groups/${group}/snapshot`)
    if (json) printJson(r)
    else print(`group ${group} is no longer frozen`)
  })
}
