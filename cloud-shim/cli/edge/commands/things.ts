import type { Command } from 'commander'
import { collect, collectKeyValue } from '../../../../coordinator/cli/common.js'
import { contextOf, path } from '../client.js'
import { formatAttributes, print, printJson } from '../output.js'
import { printThings, type ThingView } from '../things-table.js'

interface SetOptions {
  attr?: Record<string, string>
  unset?: string[]
  tag?: string[]
  untag?: string[]
  coordinator?: string
}

interface AddOptions {
  kind: string
  coordinator?: string
  attr?: Record<string, string>
  tag?: string[]
}

/** `edge things`: the registry's coordinators and devices. */
export function register(program: Command): void {
  const things = program.command('things').description('list, inspect and change things (coordinators and devices)')
  listCommand(things)
  things.command('show <name>').description('show one thing and its groups').action(show)
  addCommand(things)
  setCommand(things)
  things.command('rm <name>').alias('remove').description('remove a thing (a coordinator loses its credentials)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const { client, json } = contextOf(cmd)
      const r = await client.call<unknown>('DELETE', path`/v1/things/${name}`)
      if (json) printJson(r)
      else print(`removed ${name}`)
    })
}

function listCommand(things: Command): void {
  things.command('ls', { isDefault: true }).alias('list').description('list things')
    .option('--kind <kind>', 'only coordinators or devices')
    .option('--coordinator <name>', 'only the devices of this coordinator')
    .option('--query <query>', 'only things matching a group query')
    .action(async (opts: { kind?: string; coordinator?: string; query?: string }, cmd: Command) => {
      const { client, json } = contextOf(cmd)
      const params = new URLSearchParams(Object.entries(opts).filter((e): e is [string, string] => typeof e[1] === 'string'))
      const { things: list } = await client.call<{ things: ThingView[] }>('GET', `/v1/things?${params.toString()}`)
      printThings(list, json)
    })
}

async function show(name: string, _opts: unknown, cmd: Command): Promise<void> {
  const { client, json } = contextOf(cmd)
  const t = await client.call<ThingView>('GET', path`/v1/things/${name}`)
  if (json) return printJson(t)
  print(`${t.name} (${t.kind}${t.coordinator === null ? '' : `, coordinator ${t.coordinator}`})`)
  print(`  attributes: ${formatAttributes(t.attributes) || '-'}\n  tags:       ${t.tags.join(', ') || '-'}\n  groups:     ${(t.groups ?? []).join(', ') || '-'}`)
}

function addCommand(things: Command): void {
  things.command('add <name>').description('register a device (coordinators: edge-cloud coordinators add)')
    .option('--kind <kind>', 'device or coordinator', 'device')
    .option('--coordinator <name>', 'the coordinator that serves this device')
    .option('--attr <key=value>', 'attribute (repeatable)', collectKeyValue)
    .option('--tag <tag>', 'capability tag (repeatable)', collect)
    .action(async (name: string, opts: AddOptions, cmd: Command) => {
      const { client, json } = contextOf(cmd)
      const body = { name, kind: opts.kind, attributes: opts.attr ?? {}, tags: opts.tag ?? [], ...(opts.coordinator === undefined ? {} : { coordinator: opts.coordinator }) }
      const t = await client.call<ThingView>('POST', '/v1/things', body)
      if (json) printJson(t)
      else print(`added ${t.name}`)
    })
}

function setCommand(things: Command): void {
  things.command('set <name>').description("change a thing's attributes, tags or coordinator")
    .option('--attr <key=value>', 'set an attribute (repeatable)', collectKeyValue)
    .option('--unset <key>', 'remove an attribute (repeatable)', collect)
    .option('--tag <tag>', 'add a tag (repeatable)', collect)
    .option('--untag <tag>', 'remove a tag (repeatable)', collect)
    .option('--coordinator <name>', 'move a device to this coordinator ("none": to no coordinator)')
    .action(async (name: string, opts: SetOptions, cmd: Command) => {
      const { client, json } = contextOf(cmd)
      const t = await client.call<ThingView>('PATCH', path`/v1/things/${name}`, patchOf(opts))
      if (json) printJson(t)
      else print(`updated ${t.name}: ${formatAttributes(t.attributes) || '(no attributes)'}; tags ${t.tags.join(',') || '-'}`)
    })
}

function patchOf(opts: SetOptions): Record<string, unknown> {
  const attributes: Record<string, string | null> = { ...opts.attr }
  for (const key of opts.unset ?? []) attributes[key] = null
  return {
    ...(Object.keys(attributes).length === 0 ? {} : { attributes }),
    ...(opts.tag === undefined ? {} : { addTags: opts.tag }),
    ...(opts.untag === undefined ? {} : { removeTags: opts.untag }),
    ...(opts.coordinator === undefined ? {} : { coordinator: opts.coordinator === 'none' ? null : opts.coordinator }),
  }
}
