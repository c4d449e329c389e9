/** The online commands: they talk to a running coordinator's local API. */
import { InvalidArgumentError as CommanderArgError, type Command } from 'commander'
import { CoordinatorClient } from './client.js'
import { coordinatorOption, jsonArg, print, readUserFile } from './common.js'
import { describeTask, formatLogLine, taskTable } from './format.js'

interface RemoteOptions {
  coordinator: string
}

export function registerRemote(program: Command): void {
  const remote = (spec: string, description: string): Command =>
    program.command(spec).description(description).addOption(coordinatorOption())
  remote('push <file>', 'install a bundle on the coordinator (replacing the task of the same name)')
    .option('--config <json>', "config overrides, merged over the manifest's defaults (e.g. '{\"setpoint\":20}')")
    .action(async (file: string, opts: RemoteOptions & { config?: string }) => {
      const config = opts.config === undefined ? undefined : jsonArg(opts.config, undefined, '{}')
      for (const line of describeTask(await client(opts).push(readUserFile(file, 'bundle'), config))) print(line)
    })
  remote('ls', 'list installed tasks').alias('list').option('--json', 'JSON output')
    .action(async (opts: RemoteOptions & { json?: boolean }) => {
      const tasks = await client(opts).list()
      if (opts.json === true) print(JSON.stringify(tasks, null, 2))
      else if (tasks.length === 0) print('no tasks installed')
      else for (const line of taskTable(tasks)) print(line)
    })
  remote('show <name>', 'show one task: state, triggers, metrics, last error').option('--json', 'JSON output')
    .action(async (name: string, opts: RemoteOptions & { json?: boolean }) => {
      const task = await client(opts).get(name)
      if (opts.json === true) print(JSON.stringify(task, null, 2))
      else for (const line of describeTask(task)) print(line)
    })
  remote('rm <name>', 'uninstall a task').alias('remove')
    .action(async (name: string, opts: RemoteOptions) => {
      await client(opts).act('DELETE', name)
      print(`removed ${name}`)
    })
  for (const action of ['stop', 'start'] as const) {
    remote(`${action} <name>`, action === 'stop' ? 'stop a task: its triggers stop firing' : 'start a stopped task')
      .action(async (name: string, opts: RemoteOptions) => {
        const task = await client(opts).act('POST', name, action)
        print(`${name}: ${task?.state ?? (action === 'stop' ? 'stopped' : 'running')}`)
      })
  }
  remote('invoke <name>', "call a task's handler with an invoke event and print its result")
    .option('-p, --payload <json>', 'the event payload (JSON; default null)')
    .option('-f, --file <file>', 'read the payload from a file (- for stdin)')
    .action(async (name: string, opts: RemoteOptions & { payload?: string; file?: string }) => {
      const result = await client(opts).invoke(name, jsonArg(opts.payload, opts.file, 'null'))
      print(JSON.stringify(result ?? null, null, 2))
    })
  remote('logs <name>', "print a task's log")
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('-n, --tail <n>', 'only the last N lines', parseCount)
    .action(async (name: string, opts: RemoteOptions & { follow?: boolean; tail?: number }) => {
      const entries = client(opts).logs(name, { follow: opts.follow === true, ...(opts.tail === undefined ? {} : { tail: opts.tail }) })
      for await (const entry of entries) print(typeof entry === 'string' ? entry : formatLogLine(entry))
    })
}

const client = (opts: RemoteOptions): CoordinatorClient => new CoordinatorClient(opts.coordinator)

function parseCount(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new CommanderArgError(`expected a number of lines, got '${value}'`)
  return n
}
