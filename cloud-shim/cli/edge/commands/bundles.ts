import { basename } from 'node:path'
import type { Command } from 'commander'
import { contextOf, path } from '../client.js'
import { formatBytes, print, printJson, printTable } from '../output.js'
import { ProgressLine } from '../progress.js'
import { uploadFile } from '../upload.js'

interface BundleView {
  name: string
  version: string
  digest: string
  size: number
  signer: string | null
  requires: string[]
  uploadedAt: string
  created?: boolean
}

const short = (digest: string): string => digest.slice(0, 12)

/** `edge bundles`: the catalog of task bundles. */
export function register(program: Command): void {
  const bundles = program.command('bundles').description('push, list and inspect task bundles in the catalog')
  bundles.command('ls', { isDefault: true }).alias('list').description('list bundle names with their latest version')
    .action(async (_opts: unknown, cmd: Command) => {
      const { client, json } = contextOf(cmd)
      const { bundles: list } = await client.call<{ bundles: Array<{ name: string; versions: number; latest: BundleView }> }>('GET', '/v1/bundles')
      if (json) return printJson(list)
      if (list.length === 0) return print('no bundles')
      printTable(['name', 'latest', 'versions', 'digest', 'signer'], list.map((b) => [b.name, b.latest.version, String(b.versions), short(b.latest.digest), b.latest.signer ?? 'unsigned']))
    })
  bundles.command('push <file>').description('upload a bundle file (checked for digest and signature by the cloud shim)')
    .option('--progress', 'show the progress line even when stderr is not a terminal')
    .action(push)
  bundles.command('show <name>').description('list the versions of a bundle, newest first')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const { client, json } = contextOf(cmd)
      const { versions } = await client.call<{ versions: BundleView[] }>('GET', path`/v1/bundles/${name}`)
      if (json) return printJson(versions)
      printTable(['version', 'digest', 'size', 'signer', 'requires', 'uploaded'],
        versions.map((v) => [v.version, short(v.digest), formatBytes(v.size), v.signer ?? 'unsigned', v.requires.join(',') || '-', v.uploadedAt]))
    })
}

async function push(file: string, opts: { progress?: boolean }, cmd: Command): Promise<void> {
  const { client, json } = contextOf(cmd)
  const show = opts.progress === true || (process.stderr.isTTY && !json)
  let line: ProgressLine | undefined
  let sent = 0
  const { body } = await uploadFile(client, '/v1/bundles', file, (bytes, total) => {
    line ??= show ? new ProgressLine(`pushing ${basename(file)}`, total) : undefined
    sent = bytes
    line?.update(bytes)
  })
  line?.done(sent)
  const b = body as BundleView
  if (json) return printJson(b)
  print(`${b.created === false ? 'already catalogued' : 'pushed'} ${b.name}@${b.version}  digest ${b.digest}  ${formatBytes(b.size)}  ${b.signer === null ? 'unsigned' : `signed by ${b.signer}`}`)
}
