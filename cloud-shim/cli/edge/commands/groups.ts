import type { Command } from 'commander'
import { InvalidArgumentError } from '../../../../coordinator/core/errors.js'
import { contextOf, path } from '../client.js'
import { print, printJson, printTable } from '../output.js'
import { printThings, type ThingView } from '../things-table.js'

interface GroupView {
  name: string
  kind: 'static' | 'dynamic'
  query: string | null
  members: string[]
}

const definition = (g: GroupView): string => (g.kind === 'dynamic' ? g.query ?? '' : '(static)')

/** `edge groups`: static groups and dynamic groups defined by a query. */
export function register(program: Command): void {
  const groups = program.command('groups').description('list, create, inspect and remove groups of things')
  groups.command('ls', { isDefault: true }).alias('list').description('list groups').action(list)
  groups.command('create <name>').description('create a dynamic group (--query) or a static group (--members)')
    .option('--query <query>', 'e.g. \'attributes.site = "north" AND tags HAS gpio\'')
    .option('--members <names>', 'comma-separated thing names')
    .action(create)
  groups.command('show <name>').description('show a group and its members').action(show)
  groups.command('preview <query>').description('list the things a query matches now, without creating a group')
    .action(async (query: string, _opts: unknown, cmd: Command) => {
      const { client, json } = contextOf(cmd)
      const { things } = await client.call<{ things: ThingView[] }>('GET', `/v1/things?${new URLSearchParams({ query }).toString()}`)
      printThings(things, json)
    })
  groups.command('rm <name>').alias('remove').description('remove a group (its things stay)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const { client, json } = contextOf(cmd)
      const r = await client.call<unknown>('DELETE', path`/v1/groups/${name}`)
      if (json) printJson(r)
      else print(`removed ${name}`)
    })
}

async function list(_opts: unknown, cmd: Command): Promise<void> {
  const { client, json } = contextOf(cmd)
  const { groups } = await client.call<{ groups: GroupView[] }>('GET', '/v1/groups')
  if (json) return printJson(groups)
  if (groups.length === 0) return print('no groups')
  printTable(['name', 'kind', 'members', 'definition'], groups.map((g) => [g.name, g.kind, String(g.members.length), definition(g)]))
}

async function create(name: string, opts: { query?: string; members?: string }, cmd: Command): Promise<void> {
  if ((opts.query === undefined) === (opts.members === undefined)) throw new InvalidArgumentError('give exactly one of --query or --members')
  const { client, json } = contextOf(cmd)
  const body = opts.query !== undefined ? { name, query: opts.query } : { name, members: (opts.members ?? '').split(',').map((m) => m.trim()).filter(Boolean) }
  const g = await client.call<GroupView>('POST', '/v1/groups', body)
  if (json) printJson(g)
  else print(`created ${g.kind} group ${g.name} with ${g.members.length} member(s)`)
}

async function show(name: string, _opts: unknown, cmd: Command): Promise<void> {
  const { client, json } = contextOf(cmd)
  const g = await client.call<GroupView>('GET', path`/v1/groups/${name}`)
  if (json) return printJson(g)
  print(`${g.name} (${g.kind}) ${g.kind === 'dynamic' ? `query: ${g.query ?? ''}` : ''}`.trimEnd())
  print(`  members (${g.members.length}): ${g.members.join(', ') || '-'}`)
}
