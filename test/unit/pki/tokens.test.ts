import { describe, expect, it } from 'vitest'
import { generateToken, hashToken, verifyToken } from '../../../coordinator/pki/index.js'

describe('generateToken', () => {
  it('is 32 random bytes in base64url', () => {
    const tokens = Array.from({ length: 20 }, generateToken)
    for (const token of tokens) {
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(Buffer.from(token, 'base64url')).toHaveLength(32)
    }
    expect(new Set(tokens).size).toBe(tokens.length)
  })
})

describe('hashToken / verifyToken', () => {
  const token = generateToken()
  const stored = hashToken(token)

  it('stores a self-describing scrypt string that verifies the token', async () => {
    expect(stored).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/)
    expect(stored).not.toContain(token)
    expect(await verifyToken(token, stored)).toBe(true)
  })

  it('rejects a wrong token, including one differing in a single character', async () => {
    expect(await verifyToken(generateToken(), stored)).toBe(false)
    const flipped = (token.startsWith('A') ? 'B' : 'A') + token.slice(1)
    expect(await verifyToken(flipped, stored)).toBe(false)
    expect(await verifyToken('', stored)).toBe(false)
  })

  it('salts: two hashes of the same token differ and both verify', async () => {
    const again = hashToken(token)
    expect(again).not.toBe(stored)
    expect(await verifyToken(token, again)).toBe(true)
  })

  it('uses the parameters recorded in the stored string', async () => {
    const [, , , , salt, hash] = stored.split('$')
    expect(await verifyToken(token, ['scrypt', 8192, 8, 1, salt, hash].join('$'))).toBe(false)
  })

  it('refuses to hash an empty token', () => {
    expect(() => hashToken('')).toThrow(expect.objectContaining({ code: 'COORD_INVALID_ARG' }))
  })

  const [, , , , salt, hash] = stored.split('$')
  it.each([
    ['empty', ''],
    ['not scrypt at all', 'hunter2'],
    ['another scheme', `bcrypt$16384$8$1$${salt}$${hash}`],
    ['too few fields', `scrypt$16384$8$1$${salt}`],
    ['too many fields', `${stored}$extra`],
    ['non-numeric cost', `scrypt$abc$8$1$${salt}$${hash}`],
    ['cost not a power of two', `scrypt$10000$8$1$${salt}$${hash}`],
    ['cost that would need gigabytes', `scrypt$1073741824$8$1$${salt}$${hash}`],
    ['zero parallelism', `scrypt$16384$8$0$${salt}$${hash}`],
    ['salt with invalid characters', `scrypt$16384$8$1$${salt}!$${hash}`],
    ['truncated hash', `scrypt$16384$8$1$${salt}$${hash?.slice(0, 10)}`],
    ['empty hash', `scrypt$16384$8$1$${salt}$`],
  ])('returns false, without throwing, for a malformed stored string: %s', async (_label, malformed) => {
    expect(await verifyToken(token, malformed)).toBe(false)
  })

  it('returns false for non-string input from untyped callers', async () => {
    expect(await verifyToken(token, undefined as unknown as string)).toBe(false)
    expect(await verifyToken(null as unknown as string, stored)).toBe(false)
  })

  it('derives off the event loop, for an unknown device (no stored hash) as for a known one', async () => {
    let settled = 0
    const count = <T>(p: Promise<T>): Promise<T> => p.then((v) => { settled++; return v })
    const pending = [count(verifyToken(token, stored)), count(verifyToken(token, null)), count(verifyToken(token, stored)), count(verifyToken('guess', null))]
    await new Promise<void>((resolve) => setImmediate(resolve))
    expect(settled).toBe(0)
    expect(await Promise.all(pending)).toEqual([true, false, true, false])
  })
})
