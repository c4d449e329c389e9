import { z } from 'zod'

/**
 * Everything a coordinator needs to join a cloud shim, in one file (`edge-cloud coordinators add`
 * writes it; `edge-coordinator start --join FILE` reads it).
 */
export interface JoinDocument {
  /** The coordinator's thing name: its MQTT client id and its certificate's subject CN. */
  name: string
  /** Where to connect over mutual TLS, e.g. mqtts://cloud.example:8884. */
  mqttUrl: string
  /** The cloud shim's HTTP API (bundle downloads). */
  httpUrl: string
  /** The cloud shim's CA: trust anchor for its server certificate. */
  caPem: string
  certPem: string
  keyPem: string
  /** Only when asked for: an MQTT password that works instead of the certificate. */
  token?: string
}

const pem = (kind: string) => z.string().includes(`-----BEGIN ${kind}`, { message: `expected a PEM ${kind.toLowerCase()}` })

const joinSchema = z.object({
  name: z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'expected a thing name (1-128 of a-z A-Z 0-9 : _ -)'),
  mqttUrl: z.string().regex(/^mqtts?:\/\/[^/]+$/, 'expected mqtt://host:port or mqtts://host:port'),
  httpUrl: z.string().regex(/^https?:\/\//, 'expected an http:// or https:// URL'),
  caPem: pem('CERTIFICATE'),
  certPem: pem('CERTIFICATE'),
  keyPem: pem('PRIVATE KEY'),
  token: z.string().min(1).optional(),
})

/** Validates a parsed join file; each error names the field. */
export function parseJoinDocument(json: unknown): { ok: true; join: JoinDocument } | { ok: false; errors: string[] } {
  const r = joinSchema.safeParse(json)
  if (r.success) return { ok: true, join: r.data }
  return { ok: false, errors: r.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`) }
}
