import { readFileSync } from 'node:fs'
import { Option } from 'commander'
import { writeFileAtomic as writeAtomic } from '../../coordinator/core/atomic-file.js'
import { DEFAULT_COORDINATOR_URL } from '../../coordinator/protocol/index.js'

/** An operational failure: main prints its message as one line, no stack. */
export class CliError extends Error {
  override readonly name = 'CliError'
}

export const print = (s: string): void => {
  process.stdout.write(`${s}\n`)
}

export const printError = (s: string): void => {
  process.stderr.write(`${s}\n`)
}

/** `--coordinator URL`, else $EDGE_COORDINATOR, else the local API's default address. */
export const coordinatorOption = (): Option =>
  new Option('--coordinator <url>', 'coordinator local API URL').env('EDGE_COORDINATOR').default(DEFAULT_COORDINATOR_URL)

/** Reads a file the user named, failing with what it was for instead of a bare ENOENT. */
export function readUserFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new CliError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** Write to a temporary sibling, fsync, then rename: a reader never sees half a bundle or key. */
export function writeFileAtomic(path: string, bytes: Uint8Array | string, mode = 0o644): void {
  try {
    writeAtomic(path, bytes, mode)
  } catch (err) {
    throw new CliError(`cannot write ${path}: ${(err as Error).message}`)
  }
}

/** The JSON text given inline or in a file ('-' for stdin), checked to parse. */
export function jsonArg(inline: string | undefined, file: string | undefined, fallback: string): string {
  if (inline !== undefined && file !== undefined) throw new CliError('give either --payload or --file, not both')
  const text = inline ?? (file === undefined ? fallback : file === '-' ? readFileSync(0, 'utf8') : readUserFile(file, 'payload file').toString('utf8'))
  try {
    JSON.parse(text)
  } catch (err) {
    throw new CliError(`payload is not valid JSON: ${(err as Error).message}`)
  }
  return text
}
