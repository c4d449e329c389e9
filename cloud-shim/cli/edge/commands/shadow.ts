import type { Command } from 'commander'
import { readJsonArg } from '../../../../coordinator/cli/common.js'
import { contextOf, path } from '../client.js'
import { printJson } from '../output.js'

interface ShadowOptions {
  name?: string
  payload?: string
  file?: string
}

/** `edge shadow`: the cloud copies of shadows, through the AWS IoT REST paths. */
export function register(program: Command): void {
  const shadow = program.command('shadow').description('read and change the cloud copies of shadows')
  const named = (cmd: Command): Command => cmd.option('-n, --name <shadow>', 'named shadow (default: the classic shadow)')
  named(shadow.command('get <thing>').description('print the shadow document'))
    .action((thing: string, opts: ShadowOptions, cmd: Command) => call(cmd, 'GET', thing, opts))
  named(shadow.command('update <thing>').description('apply an update request document, e.g. {"state":{"desired":{"on":true}}}'))
    .option('-p, --payload <json>', 'the update request document')
    .option('-f, --file <file>', 'read the update request document from a file (- for stdin)')
    .action((thing: string, opts: ShadowOptions, cmd: Command) => call(cmd, 'POST', thing, opts, readJsonArg(opts.payload, opts.file)))
  named(shadow.command('delete <thing>').description('delete the shadow (its version is kept)'))
    .action((thing: string, opts: ShadowOptions, cmd: Command) => call(cmd, 'DELETE', thing, opts))
}

async function call(cmd: Command, method: string, thing: string, opts: ShadowOptions, body?: string): Promise<void> {
  const { client } = contextOf(cmd)
  const query = opts.name === undefined ? '' : `?${new URLSearchParams({ name: opts.name }).toString()}`
  printJson(await client.call<unknown>(method, `${path`/things/${thing}/shadow`}${query}`, body))
}
