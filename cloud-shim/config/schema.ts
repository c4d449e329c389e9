import { z } from 'zod'
import { BROKER_LIMIT_DEFAULTS, brokerLimitsShape, webSection } from '../../coordinator/config/index.js'

const port = z.number().int().min(0).max(65535)
const host = z.string().min(1)
/** A listener; `null` in a config file turns it off. Port 0 picks a free port. */
const listener = z.object({ host, port }).strict()
const url = z.string().url()

export const cloudConfigSchema = z.object({
  /** Where cloud.db, the CA, broker sessions and bundle files live. */
  dataDir: z.string().min(1),
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    /** Human-readable logs; null: only when stdout is a terminal. */
    pretty: z.boolean().nullable(),
  }).strict(),
  /** The embedded broker's listeners (unused with `broker`) and the HTTP API. */
  listeners: z.object({
    /** MQTT over TCP (token or, on loopback, anonymous clients). */
    mqtt: listener.nullable(),
    /** MQTT over TLS with client certificates (mutual TLS): how coordinators connect. */
    mqtts: listener.nullable(),
    /** HTTP API (registry, groups, bundles, shadows, health). */
    http: listener.nullable(),
  }).strict(),
  /** Attach to an existing MQTT broker as a client instead of embedding one; null: embedded. */
  broker: z.object({
    /** mqtt://, mqtts://, ws:// or wss:// URL; user:password@ in it are used as credentials. */
    url,
    /** Fixed, with a persistent session, so requests queued while the shim restarts are served. */
    clientId: z.string().min(1).max(128).default('edge-cloud-shim'),
    /** PEM files for a TLS broker: its CA, and our client certificate and key if it asks for one. */
    caFile: z.string().min(1).nullable().default(null),
    certFile: z.string().min(1).nullable().default(null),
    keyFile: z.string().min(1).nullable().default(null),
  }).strict().nullable(),
  /** Bounds of the embedded broker's connections and sessions (unused with `broker`), as the coordinator's `broker` section. */
  brokerLimits: z.object(brokerLimitsShape).strict(),
  embeddedBroker: z.object({
    /** aedes' heartbeat; after a crash, the wills of clients that did not come back are published four heartbeats after start. */
    heartbeatIntervalMs: z.number().int().min(100).max(3_600_000),
  }).strict(),
  auth: z.object({
    /** Let loopback clients of the embedded broker connect without credentials; 'auto': only while every MQTT listener is on loopback. */
    allowAnonymousLoopback: z.union([z.boolean(), z.literal('auto')]),
    /** Host names put in the server certificate when the CA is created on first start. */
    serverCertHosts: z.array(z.string().min(1)),
  }).strict(),
  /** What web pages may do to the HTTP API (coordinator/core/web.ts); the advertised httpUrl's host is served too. */
  web: webSection,
  /** URLs written into coordinators' join files; null: derived from the listeners. */
  advertise: z.object({
    mqttUrl: url.nullable(),
    httpUrl: url.nullable(),
  }).strict(),
  shadow: z.object({
    /** Bytes of desired+reported JSON per shadow (AWS: 8192). */
    maxStateBytes: z.number().int().min(256).max(1_048_576),
    /** Nesting levels inside desired/reported (AWS: 6). */
    maxDepth: z.number().int().min(1).max(32),
    /** Shadow requests per second per thing before 429; 0 disables the limit. */
    maxRequestsPerSecondPerThing: z.number().min(0),
    /** Bytes of one request payload, answered 413 before it is parsed; null: 4 x maxStateBytes. */
    maxRequestBytes: z.number().int().min(256).max(16 * 1_048_576).nullable(),
    /** Bytes of a shadow's stored metadata (AWS does not count it; it grows 12x for arrays); null: 8 x maxStateBytes. */
    maxMetadataBytes: z.number().int().min(256).max(64 * 1_048_576).nullable(),
    /** Named shadows a thing may have (AWS: no cap); creating one more is refused with 400. */
    maxNamedShadowsPerThing: z.number().int().min(0).max(100_000),
  }).strict().refine((s) => s.maxRequestBytes === null || s.maxRequestBytes >= s.maxStateBytes, {
    path: ['maxRequestBytes'], message: 'must be at least shadow.maxStateBytes, or null',
  }),
  bundles: z.object({
    /** Ed25519 public keys (PEM) whose signatures the catalog accepts. */
    trustedKeys: z.array(z.string().min(1)),
    /** Development only: accept bundles that carry no signature. */
    allowUnsigned: z.boolean(),
    /** Largest bundle upload, in bytes. */
    maxBundleBytes: z.number().int().min(1024).max(256 * 1024 * 1024),
  }).strict(),
  store: z.object({
    /** cloud.db (registry, shadows, catalog): 'full' survives power loss, 'normal' a process crash. */
    synchronous: z.enum(['full', 'normal']),
    /** The embedded broker's sessions and queues (broker.db). */
    brokerSynchronous: z.enum(['full', 'normal']),
  }).strict(),
}).strict()

export type CloudConfig = z.infer<typeof cloudConfigSchema>

export const CLOUD_DEFAULTS: CloudConfig = {
  dataDir: './cloud-data',
  log: { level: 'info', pretty: null },
  // Beside a coordinator on the same host (1883/8883/8087) without a clash.
  listeners: {
    mqtt: { host: '127.0.0.1', port: 1884 },
    mqtts: { host: '127.0.0.1', port: 8884 },
    http: { host: '127.0.0.1', port: 8090 },
  },
  broker: null,
  brokerLimits: BROKER_LIMIT_DEFAULTS,
  embeddedBroker: { heartbeatIntervalMs: 60_000 },
  auth: { allowAnonymousLoopback: 'auto', serverCertHosts: [] },
  web: { allowedHosts: [], allowedOrigins: [] },
  advertise: { mqttUrl: null, httpUrl: null },
  shadow: { maxStateBytes: 8192, maxDepth: 6, maxRequestsPerSecondPerThing: 20, maxRequestBytes: null, maxMetadataBytes: null, maxNamedShadowsPerThing: 100 },
  bundles: { trustedKeys: [], allowUnsigned: false, maxBundleBytes: 5 * 1024 * 1024 },
  store: { synchronous: 'full', brokerSynchronous: 'normal' },
}
