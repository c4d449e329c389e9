/** The offline commands: keygen, sign, inspect. */
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { decodeBundle, keyId, signBundle, type DecodedBundle } from '../../coordinator/protocol/index.js'
import { CliError, print, readUserFile, writeFileAtomic } from './common.js'
import { describeManifest } from './format.js'

const PRIVATE_KEY_FILE = 'signing-key.pem'
const PUBLIC_KEY_FILE = 'signing-key.pub.pem'

export function registerLocal(program: Command): void {
  program.command('keygen')
    .description(`create an Ed25519 signing key pair (${PRIVATE_KEY_FILE}, ${PUBLIC_KEY_FILE})`)
    .option('-o, --out <dir>', 'directory to write the keys to', '.')
    .action((opts: { out: string }) => keygen(opts.out))
  program.command('sign <file>')
    .description('sign a bundle (replacing any signature); its digest does not change')
    .requiredOption('-k, --key <file>', 'Ed25519 private key (PEM)')
    .option('-o, --out <file>', 'where to write the signed bundle (default: in place)')
    .action((file: string, opts: { key: string; out?: string }) => sign(file, opts.key, opts.out ?? file))
  program.command('inspect <file>')
    .description('show a bundle: manifest, digest, signer; checks that the signature matches')
    .option('--json', 'JSON output')
    .action((file: string, opts: { json?: boolean }) => inspect(file, opts.json === true))
}

function keygen(dir: string): void {
  const privatePath = resolve(dir, PRIVATE_KEY_FILE)
  const publicPath = resolve(dir, PUBLIC_KEY_FILE)
  // A key that signed deployed bundles cannot be recreated: never overwrite one.
  if (existsSync(privatePath)) throw new CliError(`${privatePath} already exists; move it away to create a new key`)
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  mkdirSync(dir, { recursive: true })
  writeFileAtomic(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600)
  writeFileAtomic(publicPath, publicPem)
  print(`key id   ${keyId(publicPem)}`)
  print(`private  ${privatePath} (keep it secret: it signs bundles)`)
  print(`public   ${publicPath} (add it to the coordinator's tasks.trustedKeys)`)
}

function sign(file: string, keyFile: string, out: string): void {
  const privateKeyPem = readUserFile(keyFile, 'signing key').toString('utf8')
  let signed: Uint8Array
  try {
    signed = signBundle(readUserFile(file, 'bundle'), privateKeyPem)
  } catch (err) {
    throw new CliError(`cannot sign ${file}: ${(err as Error).message}`)
  }
  writeFileAtomic(out, signed)
  const decoded = decodeOrThrow(signed, out)
  print(`signed ${decoded.manifest.name} ${decoded.manifest.version} -> ${out}`)
  print(`  digest  ${decoded.digest}`)
  print(`  signer  ${decoded.signer?.keyId ?? 'unsigned'}`)
}

function inspect(file: string, json: boolean): void {
  const bytes = readUserFile(file, 'bundle')
  const b = decodeOrThrow(bytes, file)
  const codeBytes = Buffer.byteLength(b.code)
  if (json) {
    print(JSON.stringify({
      name: b.manifest.name, version: b.manifest.version, digest: b.digest, signer: b.signer?.keyId ?? null,
      signerPublicKey: b.signer?.publicKeyPem ?? null, bundleBytes: bytes.length, codeBytes, manifest: b.manifest,
    }, null, 2))
    return
  }
  print(`${b.manifest.name} ${b.manifest.version}`)
  print(`  digest       ${b.digest}`)
  print(`  signer       ${b.signer === undefined ? 'unsigned' : `${b.signer.keyId} (signature valid)`}`)
  print(`  size         ${bytes.length} bytes (code ${codeBytes} bytes)`)
  for (const line of describeManifest(b.manifest)) print(line)
}

/** Inspecting is not installing: no size limit here, the coordinator applies its own. */
function decodeOrThrow(bytes: Uint8Array, file: string): DecodedBundle {
  const decoded = decodeBundle(bytes, { maxBytes: Number.MAX_SAFE_INTEGER })
  if (!decoded.ok) throw new CliError(`${file}: ${decoded.error.message}`)
  return decoded.bundle
}
