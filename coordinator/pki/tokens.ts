/**
 * Bearer tokens for MQTT clients that authenticate with username/password instead of a cert.
 * Only the scrypt hash is stored, in a self-describing string so parameters can be raised
 * later without invalidating existing tokens: 'scrypt$N$r$p$salt$hash' (salt/hash base64url).
 */
import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto'
import { InvalidArgumentError } from '../core/errors.js'

/** N=2^14, r=8 needs 16 MiB and tens of milliseconds even on a Raspberry Pi. */
const N = 16_384
const R = 8
const P = 1
const SALT_BYTES = 16
const HASH_BYTES = 32
/** Bounds on parameters read back from storage, so a corrupt row cannot demand gigabytes. */
const MAX_N = 1 << 20
const MAX_R = 32
const MAX_P = 16
const MAX_SCRYPT_MEM = 64 * 1024 * 1024

interface ScryptParams {
  N: number
  r: number
  p: number
  salt: Buffer
  hash: Buffer
}

export function generateToken(): string {
  return randomBytes(32).toString('base64url')
}

export function hashToken(token: string): string {
  if (typeof token !== 'string' || token.length === 0) throw new InvalidArgumentError('token must be a non-empty string')
  const salt = randomBytes(SALT_BYTES)
  const hash = derive(token, { N, r: R, p: P, salt }, HASH_BYTES)
  return ['scrypt', N, R, P, salt.toString('base64url'), hash.toString('base64url')].join('$')
}

/**
 * False for a wrong token, for a stored string that does not parse and for `null` (no such device,
 * or one without a token); never rejects. scrypt runs on libuv's thread pool, so a flood of wrong
 * tokens does not stall the event loop, and it runs for every answer (against a decoy hash when
 * there is nothing to compare with) so an unknown name takes as long as a known one.
 */
export async function verifyToken(token: string, stored: string | null): Promise<boolean> {
  if (typeof token !== 'string' || token.length === 0) return false
  const params = stored === null ? undefined : parseStored(stored)
  const against = params ?? DECOY
  try {
    const derived = await deriveAsync(token, against, against.hash.length)
    return params !== undefined && timingSafeEqual(derived, params.hash)
  } catch {
    return false
  }
}

/** Compared with when there is no stored hash: the default parameters, so it costs the same. */
const DECOY: ScryptParams = { N, r: R, p: P, salt: randomBytes(SALT_BYTES), hash: randomBytes(HASH_BYTES) }

function derive(token: string, params: Omit<ScryptParams, 'hash'>, length: number): Buffer {
  return scryptSync(token, params.salt, length, scryptOptions(params))
}

function deriveAsync(token: string, params: Omit<ScryptParams, 'hash'>, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(token, params.salt, length, scryptOptions(params), (err, key) => (err ? reject(err) : resolve(key)))
  })
}

function scryptOptions({ N: cost, r, p }: Omit<ScryptParams, 'hash' | 'salt'>): { N: number; r: number; p: number; maxmem: number } {
  // Node's default maxmem (32 MiB) is below what larger stored parameters legitimately need.
  return { N: cost, r, p, maxmem: scryptMemory(cost, r, p) + 1024 * 1024 }
}

/** Bytes scrypt allocates for these parameters (OpenSSL's own estimate). */
function scryptMemory(cost: number, r: number, p: number): number {
  return 128 * r * (cost + p + 2)
}

function parseStored(stored: unknown): ScryptParams | undefined {
  if (typeof stored !== 'string') return undefined
  const parts = stored.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined
  const [cost, r, p] = parts.slice(1, 4).map(parseSmallInt)
  const salt = decodeB64url(parts[4])
  const hash = decodeB64url(parts[5])
  if (cost === undefined || r === undefined || p === undefined || !salt || !hash) return undefined
  if (!isValidCost(cost) || r > MAX_R || p > MAX_P || scryptMemory(cost, r, p) > MAX_SCRYPT_MEM) return undefined
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return undefined
  return { N: cost, r, p, salt, hash }
}

function isValidCost(cost: number): boolean {
  return cost >= 2 && cost <= MAX_N && (cost & (cost - 1)) === 0
}

function parseSmallInt(text: string | undefined): number | undefined {
  if (text === undefined || !/^[1-9][0-9]{0,7}$/.test(text)) return undefined
  return Number(text)
}

/** Strict: Buffer.from(…, 'base64url') silently skips invalid characters. */
function decodeB64url(text: string | undefined): Buffer | undefined {
  if (text === undefined || !/^[A-Za-z0-9_-]+$/.test(text)) return undefined
  return Buffer.from(text, 'base64url')
}
