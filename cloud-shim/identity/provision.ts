import { join } from 'node:path'
import { writeFileAtomic } from '../../coordinator/core/atomic-file.js'
import type { Clock } from '../../coordinator/core/clock.js'
import { ConflictError } from '../../coordinator/core/errors.js'
import { certificateInfo, generateToken, hashToken, issueClientCert, type KeyPairPem } from '../../coordinator/pki/index.js'
import type { JoinDocument } from '../../coordinator/protocol/index.js'
import { checkName, type Registry } from '../registry/index.js'
import type { CredentialStore } from './credential-store.js'

export type { JoinDocument } from '../../coordinator/protocol/index.js'

export interface ProvisionRequest {
  name: string
  attributes?: Record<string, string>
  tags?: string[]
  mqttUrl: string
  httpUrl: string
  /** Also issue a token. */
  token?: boolean
}

export interface ProvisionContext {
  registry: Registry
  credentials: CredentialStore
  ca: KeyPairPem
  clock: Clock
}

/**
 * Registers the coordinator thing and issues its identity. The thing is committed before its
 * credentials (they reference it); a crash between the two leaves a coordinator that cannot
 * connect, which `remove` then `add` repairs.
 */
export async function provisionCoordinator(ctx: ProvisionContext, req: ProvisionRequest): Promise<JoinDocument> {
  const name = checkName(req.name, 'coordinator')
  if (ctx.registry.getThing(name) !== undefined) throw new ConflictError(`thing ${JSON.stringify(name)} already exists (remove it first to re-issue its identity)`)
  const issued = await issueClientCert(ctx.ca, { thingName: name })
  const token = req.token === true ? generateToken() : undefined
  ctx.registry.createThing({ name, kind: 'coordinator', attributes: req.attributes ?? {}, tags: req.tags ?? [] })
  ctx.credentials.add({
    name,
    certFingerprint: certificateInfo(issued.certPem).fingerprint256,
    tokenHash: token === undefined ? null : hashToken(token),
    createdAt: ctx.clock.now(),
  })
  return {
    name, mqttUrl: req.mqttUrl, httpUrl: req.httpUrl, caPem: ctx.ca.certPem, certPem: issued.certPem, keyPem: issued.keyPem,
    ...(token === undefined ? {} : { token }),
  }
}

export const joinFileName = (name: string): string => `${name}.join.json`

/** It holds the coordinator's private key: owner-read-only from the first byte, written atomically. */
export function writeJoinFile(dir: string, doc: JoinDocument): string {
  const file = join(dir, joinFileName(doc.name))
  writeFileAtomic(file, `${JSON.stringify(doc, null, 2)}\n`)
  return file
}
