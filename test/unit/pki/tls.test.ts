import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import * as tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCa, issueClientCert, issueServerCert, type KeyPairPem } from '../../../coordinator/pki/index.js'

interface MtlsServer {
  port: number
  /** Subject CNs of clients the server accepted, as getPeerCertificate() reports them. */
  peers: string[]
  server: tls.Server
}

interface Outcome {
  /** What the server wrote before closing; empty when it dropped the connection. */
  greeting: string
  error?: NodeJS.ErrnoException
}

interface Refusal {
  error: NodeJS.ErrnoException
  /** The chain verification result Node recorded before dropping the client. */
  authorizationError: string | undefined
}

const VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const

let ca: KeyPairPem
let serverPair: KeyPairPem
let clientPair: KeyPairPem
let rogueClient: KeyPairPem
let mtls: MtlsServer

beforeAll(async () => {
  ca = await createCa()
  serverPair = await issueServerCert(ca, { hosts: ['localhost', '127.0.0.1'] })
  clientPair = await issueClientCert(ca, { thingName: 'sensor-01' })
  rogueClient = await issueClientCert(await createCa({ commonName: 'Rogue CA' }), { thingName: 'rogue' })
  mtls = await startServer(serverPair, ca.certPem)
})

afterAll(async () => {
  mtls.server.close()
  await once(mtls.server, 'close')
})

async function startServer(pair: KeyPairPem, caPem: string): Promise<MtlsServer> {
  const peers: string[] = []
  const server = tls.createServer(
    { key: pair.keyPem, cert: pair.certPem, ca: [caPem], requestCert: true, rejectUnauthorized: true },
    (socket) => {
      const cn = String(socket.getPeerCertificate().subject.CN)
      peers.push(cn)
      socket.end(`hello ${cn}`)
    },
  )
  // Refused handshakes surface here; without a listener they would only be logged.
  server.on('tlsClientError', () => {})
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: (server.address() as AddressInfo).port, peers, server }
}

/**
 * Connects and reads until the socket closes. A refused TLS 1.3 client can finish its own
 * handshake and see only a close, so callers judge refusal by the missing greeting.
 */
function connect(options: tls.ConnectionOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    const outcome: Outcome = { greeting: '' }
    const socket = tls.connect({ host: '127.0.0.1', port: mtls.port, ca: [ca.certPem], ...options })
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => (outcome.greeting += chunk))
    socket.on('error', (error: NodeJS.ErrnoException) => (outcome.error = error))
    socket.on('close', () => resolve(outcome))
  })
}

/** Resolves with the server's next refused handshake. */
async function nextRefusal(): Promise<Refusal> {
  const [error, socket] = (await once(mtls.server, 'tlsClientError')) as [NodeJS.ErrnoException, tls.TLSSocket]
  // Typed as Error, but Node stores the OpenSSL verify code string there.
  const code: unknown = socket.authorizationError
  return { error, authorizationError: typeof code === 'string' ? code : undefined }
}

const asClient = (pair: KeyPairPem): tls.ConnectionOptions => ({ key: pair.keyPem, cert: pair.certPem })

describe('mutual TLS with issued certificates', () => {
  it.each(VERSIONS)('%s: the server accepts a client cert from its CA and sees its CN', async (version) => {
    const outcome = await connect({ ...asClient(clientPair), minVersion: version, maxVersion: version })
    expect(outcome.error).toBeUndefined()
    expect(outcome.greeting).toBe('hello sensor-01')
    expect(mtls.peers).toContain('sensor-01')
  })

  it.each(VERSIONS)('%s: the server refuses a client cert from a different CA', async (version) => {
    const refusal = nextRefusal()
    const outcome = await connect({ ...asClient(rogueClient), minVersion: version, maxVersion: version })
    expect(outcome.greeting).toBe('')
    expect((await refusal).authorizationError).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE')
    expect(mtls.peers).not.toContain('rogue')
  })

  it('the server refuses a client that presents no certificate', async () => {
    const refusal = nextRefusal()
    const outcome = await connect({})
    expect(outcome.greeting).toBe('')
    expect((await refusal).error.code).toBe('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE')
  })

  it('the server refuses a server certificate used as a client certificate (extendedKeyUsage)', async () => {
    const refusal = nextRefusal()
    const outcome = await connect(asClient(serverPair))
    expect(outcome.greeting).toBe('')
    expect((await refusal).authorizationError).toBe('INVALID_PURPOSE')
    expect(mtls.peers).not.toContain('localhost')
  })
})

describe('server identity checks on the client side', () => {
  it('connecting by IP 127.0.0.1 passes through the IP SAN', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: mtls.port, ca: [ca.certPem], ...asClient(clientPair) })
    await once(socket, 'secureConnect')
    expect(socket.authorized).toBe(true)
    expect(tls.checkServerIdentity('127.0.0.1', socket.getPeerCertificate())).toBeUndefined()
    socket.destroy()
  })

  it('servername localhost passes through the DNS SAN', async () => {
    const outcome = await connect({ ...asClient(clientPair), servername: 'localhost' })
    expect(outcome.error).toBeUndefined()
    expect(outcome.greeting).toBe('hello sensor-01')
  })

  it('a host that is not among the SANs fails verification', async () => {
    const outcome = await connect({ ...asClient(clientPair), servername: 'gateway.example.com' })
    expect(outcome.greeting).toBe('')
    expect(outcome.error?.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID')
  })

  it('a client that trusts a different CA rejects the server', async () => {
    const other = await createCa({ commonName: 'Other CA' })
    const outcome = await connect({ ...asClient(clientPair), ca: [other.certPem] })
    expect(outcome.greeting).toBe('')
    // Node's server sends its CA along with the leaf, so the untrusted root shows up in the chain.
    expect(outcome.error?.code).toBe('SELF_SIGNED_CERT_IN_CHAIN')
  })

  it('a client rejects a client certificate presented as a server certificate (extendedKeyUsage)', async () => {
    const impostor = await startServer(clientPair, ca.certPem)
    try {
      const socket = tls.connect({ host: '127.0.0.1', port: impostor.port, ca: [ca.certPem], ...asClient(clientPair) })
      const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException]
      expect(error.code).toBe('INVALID_PURPOSE')
    } finally {
      impostor.server.close()
    }
  })
})
