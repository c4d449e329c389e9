import type { TLSSocket } from 'node:tls'
import type { Client } from 'aedes'
// tokens.js directly: the pki index would also load the large X.509 library into every daemon.
import { verifyToken } from '../pki/tokens.js'
import type { DeviceRecord } from '../store/index.js'
import { isLoopbackHost } from '../config/index.js'
import type { Principal } from './policy.js'
import type { BackoffStarted, TokenThrottle } from './token-throttle.js'

/** How a client proved who it is; recorded for logs and the API. */
export type AuthMethod = 'certificate' | 'token' | 'anonymous-loopback'

export interface Identity {
  principal: Principal
  method: AuthMethod
  /** The verifier the client matched (certificate fingerprint or token hash); null when anonymous. */
  credential: string | null
}

export interface IdentityOptions {
  findDevice(name: string): DeviceRecord | undefined
  allowAnonymousLoopback: boolean
  anonymousPolicies: readonly string[]
  /** Told when a failed token check makes a client id or address wait. */
  onBackoff?: BackoffListener
  /** Back-off for failed token checks; tokens are checked without one only in tests. */
  tokenThrottle?: TokenThrottle
}

/** A refusal with the MQTT 3.1.1 CONNACK return code to send. */
export class AuthRefusal extends Error {
  constructor(readonly returnCode: 2 | 4 | 5, message: string) {
    super(message)
  }
}

/** What a client refused because every token-check slot and its queue were taken is told to wait. */
const BUSY_RETRY_MS = 1000

/** A token check refused unchecked: its client id or address is backing off, or every check slot is taken. */
export class ThrottledRefusal extends AuthRefusal {
  constructor(readonly clientId: string, readonly address: string, readonly waitMs: number, busy = false) {
    const retry = `retry in ${Math.ceil(waitMs / 1000)} s`
    super(4, busy ? `token checks busy, '${clientId}' from ${address} not checked: ${retry}` : `too many failed token checks for '${clientId}' from ${address}: ${retry}`)
  }
}

/** A failed token check that started or lengthened a wait, for the broker to log. */
export type BackoffListener = (clientId: string, address: string, started: readonly BackoffStarted[]) => void

/**
 * Decides who a connecting client is. The client id must be the thing name (the Greengrass
 * convention); a certificate or token proves it. The certificate fingerprint is compared with the
 * one issued, so removing or re-issuing a device revokes its old certificate.
 */
export async function identify(client: Client, password: Buffer | undefined, opts: IdentityOptions): Promise<Identity> {
  const peerCert = peerCertificate(client)
  if (peerCert !== null) return byCertificate(client.id, peerCert, opts)
  if (password !== undefined && password.length > 0) return byToken(client, password.toString('utf8'), opts)
  if (opts.allowAnonymousLoopback && isLoopbackHost(remoteAddress(client))) {
    const principal = { thingName: client.id, attributes: {}, policies: [...opts.anonymousPolicies] }
    return { principal, method: 'anonymous-loopback', credential: null }
  }
  throw new AuthRefusal(4, 'no credentials: present a client certificate or a token as the password')
}

function byCertificate(clientId: string, cert: { cn: string; fingerprint256: string }, opts: IdentityOptions): Identity {
  if (cert.cn !== clientId) {
    throw new AuthRefusal(5, `client id '${clientId}' does not match the certificate's thing name '${cert.cn}'`)
  }
  const device = opts.findDevice(clientId)
  if (device === undefined) throw new AuthRefusal(5, `device '${clientId}' is not registered`)
  if (device.certFingerprint !== cert.fingerprint256) {
    throw new AuthRefusal(5, `certificate of '${clientId}' is not the one issued to it (revoked or re-issued)`)
  }
  return { principal: principalOf(device), method: 'certificate', credential: device.certFingerprint }
}

/**
 * A throttled attempt is refused before scrypt runs; every other one runs it (against a decoy for
 * an unknown name), so the CONNACK comes as late for a name that does not exist as for one that does.
 */
async function byToken(client: Client, token: string, opts: IdentityOptions): Promise<Identity> {
  const clientId = client.id
  const address = remoteAddress(client)
  const keys = [`id:${clientId}`, `addr:${address}`]
  const waitMs = opts.tokenThrottle?.admit(keys) ?? null
  if (waitMs !== null) throw new ThrottledRefusal(clientId, address, waitMs)
  const device = opts.findDevice(clientId)
  const ok = await derivedCheck(opts.tokenThrottle, () => verifyToken(token, device?.tokenHash ?? null))
  if (ok === undefined) {
    opts.tokenThrottle?.release(keys)
    throw new ThrottledRefusal(clientId, address, BUSY_RETRY_MS, true)
  }
  const started = opts.tokenThrottle?.settle(keys, ok, [`id:${clientId}`]) ?? []
  if (started.length > 0) opts.onBackoff?.(clientId, address, started)
  // Re-read: the device may have been removed or re-issued while scrypt ran.
  const current = opts.findDevice(clientId)
  if (!ok || current === undefined || current.tokenHash !== device?.tokenHash) throw new AuthRefusal(4, `bad token for '${clientId}'`)
  return { principal: principalOf(current), method: 'token', credential: current.tokenHash }
}

/** The check's answer, or undefined when every derivation slot and its queue are taken. */
async function derivedCheck(throttle: TokenThrottle | undefined, check: () => Promise<boolean>): Promise<boolean | undefined> {
  if (throttle === undefined) return check()
  const result = await throttle.inSlot(check)
  return result.ran ? result.value : undefined
}

/** Whether an authenticated client's device is still registered with the credential it used. */
export function stillValid(identity: Identity, device: DeviceRecord | undefined): boolean {
  if (identity.method === 'anonymous-loopback') return true
  if (device === undefined) return false
  return identity.credential === (identity.method === 'certificate' ? device.certFingerprint : device.tokenHash)
}

/**
 * The principal an identity has now, from the registry: undefined when its device is gone or its
 * credential re-issued, or, for an anonymous identity, when anonymous access is off.
 */
export function currentPrincipal(identity: Identity, opts: IdentityOptions): Principal | undefined {
  const { thingName } = identity.principal
  if (identity.method === 'anonymous-loopback') {
    return opts.allowAnonymousLoopback ? { thingName, attributes: {}, policies: [...opts.anonymousPolicies] } : undefined
  }
  const device = opts.findDevice(thingName)
  return device !== undefined && stillValid(identity, device) ? principalOf(device) : undefined
}

/**
 * The client id for a CONNECT that sent an empty one. MQTT 3.1.1 allows that only with a clean
 * session [MQTT-3.1.3-8]; the server then assigns the id: a certificate names its thing, an
 * anonymous development client keeps the id aedes generated, and a token names no thing at all.
 */
export function clientIdForEmpty(client: Client, clean: boolean, password: Buffer | undefined): string {
  if (!clean) throw new AuthRefusal(2, 'an empty client id needs a clean session (MQTT 3.1.1 [MQTT-3.1.3-8])')
  const cert = peerCertificate(client)
  if (cert !== null) return cert.cn
  if (password !== undefined && password.length > 0) throw new AuthRefusal(2, 'a token needs the thing name as client id')
  return client.id
}

const principalOf = (d: DeviceRecord): Principal => ({ thingName: d.name, attributes: d.attributes, policies: d.policies })

/**
 * The peer certificate of a TLS connection, or null when none was presented. A certificate that
 * does not chain to our CA is refused outright rather than treated as no credentials.
 */
function peerCertificate(client: Client): { cn: string; fingerprint256: string } | null {
  const socket = client.conn as Partial<TLSSocket>
  if (typeof socket.getPeerCertificate !== 'function') return null
  const cert = socket.getPeerCertificate()
  if (cert === null || Object.keys(cert).length === 0) return null
  if (socket.authorized !== true) {
    throw new AuthRefusal(5, `client certificate not trusted: ${String(socket.authorizationError ?? 'unknown reason')}`)
  }
  const cn = cert.subject?.CN
  if (typeof cn !== 'string') throw new AuthRefusal(5, 'client certificate has no subject common name')
  return { cn, fingerprint256: cert.fingerprint256 }
}

function remoteAddress(client: Client): string {
  const conn = client.conn as { remoteAddress?: string }
  const raw = client.req?.socket.remoteAddress ?? conn.remoteAddress ?? ''
  return raw.startsWith('::ffff:') ? raw.slice('::ffff:'.length) : raw
}
