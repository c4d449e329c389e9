import { Option } from 'commander'
import { loadCloudConfig, type CloudConfig } from '../config/index.js'

export interface CommonOptions {
  config?: string
  dataDir?: string
}

export const configOption = (): Option => new Option('-c, --config <file>', 'JSON config file (defaults need none)')
export const dataDirOption = (): Option => new Option('-d, --data-dir <dir>', 'data directory (default ./cloud-data)')

/** The config file (if any) with the command-line overrides every command shares. */
export function cloudConfigFrom(opts: CommonOptions, overrides: Record<string, unknown> = {}): Readonly<CloudConfig> {
  return loadCloudConfig({
    ...(opts.config === undefined ? {} : { file: opts.config }),
    overrides: { ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir }), ...overrides },
  })
}

export const print = (s: string): void => {
  process.stdout.write(`${s}\n`)
}
