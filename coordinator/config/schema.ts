import { z } from 'zod'

const port = z.number().int().min(0).max(65535)
const host = z.string().min(1)

/** A listener; `null` in a config file turns it off. Port 0 picks a free port. */
const listener = z.object({ host, port }).strict()
const wsListener = z.object({ host, port, path: z.string().startsWith('/') }).strict()

const policyStatement = z.object({
  effect: z.enum(['allow', 'deny']),
  actions: z.array(z.enum(['publish', 'subscribe'])).min(1),
  resources: z.array(z.string().min(1)).min(1),
}).strict()

const policy = z.object({ name: z.string().min(1), statements: z.array(policyStatement).min(1) }).strict()

export const configSchema = z.object({
  /** Where the SQLite file, the CA and issued credentials live. */
  dataDir: z.string().min(1),
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    /** Human-readable logs; null: only when stdout is a terminal. */
    pretty: z.boolean().nullable(),
  }).strict(),
  listeners: z.object({
    /** MQTT over TCP. */
    mqtt: listener.nullable(),
    /** MQTT over TLS with client certificates (mutual TLS). */
    mqtts: listener.nullable(),
    /** MQTT over WebSocket. */
    ws: wsListener.nullable(),
    /** Local HTTP API (health, shadows). */
    http: listener.nullable(),
  }).strict(),
  auth: z.object({
    /**
     * Let clients on loopback connect without credentials (development). 'auto' turns it on
     * only when every listener is bound to a loopback address.
     */
    allowAnonymousLoopback: z.union([z.boolean(), z.literal('auto')]),
    /** Extra policies given to anonymous loopback clients, by name. */
    anonymousPolicies: z.array(z.string().min(1)),
    /** Hosts put in the server certificate when the CA is created on first start. */
    serverCertHosts: z.array(z.string().min(1)),
  }).strict(),
  /** Named policies that devices can be given (`devices add --policy NAME`) on top of the default. */
  policies: z.array(policy),
  shadow: z.object({
    /** Bytes of desired+reported JSON per shadow (AWS: 8192). */
    maxStateBytes: z.number().int().min(256).max(1_048_576),
    /** Nesting levels inside desired/reported (AWS error text says 6). */
    maxDepth: z.number().int().min(1).max(32),
    /** Shadow requests per second per thing before 429 (AWS: 20); 0 disables the limit. */
    maxRequestsPerSecondPerThing: z.number().min(0),
  }).strict(),
  tasks: z.object({
    /** Ed25519 public keys whose signatures make a bundle installable: PEM text or a path to a PEM file. */
    trustedKeys: z.array(z.string().min(1)),
    /** Development only: install bundles that carry no signature. */
    allowUnsigned: z.boolean(),
    /** Task calls running at once across all tasks. */
    maxConcurrentCalls: z.number().int().min(1).max(1024),
    /** Largest bundle file accepted, in bytes. */
    maxBundleBytes: z.number().int().min(1024).max(256 * 1024 * 1024),
  }).strict(),
  cloud: z.object({
    /** Join file from `edge-cloud coordinators add`; null runs the coordinator on its own. */
    joinFile: z.string().min(1).nullable(),
    /** Local MQTT topic filters whose messages go upstream, durably, as cloud/{name}/{topic}. */
    forward: z.array(z.string().min(1)),
    outbox: z.object({
      /** Bytes of queued messages kept while the link is down. */
      maxBytes: z.number().int().min(1024),
      maxMessages: z.number().int().min(1),
      /** Older messages are dropped (counted and logged). */
      maxAgeMs: z.number().int().min(1000),
      /** When full: drop the oldest queued message, or refuse the new one. */
      dropPolicy: z.enum(['drop-oldest', 'reject-new']),
    }).strict(),
  }).strict(),
  store: z.object({
    /** Shadows: 'full' survives power loss; 'normal' survives a process crash with fewer fsyncs (SD wear). */
    synchronous: z.enum(['full', 'normal']),
    /**
     * Broker sessions, offline QoS 1 queues and retained messages (their own file). aedes writes
     * each of them separately, so 'full' costs an fsync per message per persistent subscriber.
     */
    brokerSynchronous: z.enum(['full', 'normal']),
  }).strict(),
}).strict()

export type CoordinatorConfig = z.infer<typeof configSchema>

export const DEFAULTS: CoordinatorConfig = {
  dataDir: './data',
  log: { level: 'info', pretty: null },
  listeners: {
    mqtt: { host: '127.0.0.1', port: 1883 },
    mqtts: { host: '127.0.0.1', port: 8883 },
    ws: { host: '127.0.0.1', port: 8083, path: '/mqtt' },
    http: { host: '127.0.0.1', port: 8087 },
  },
  auth: { allowAnonymousLoopback: 'auto', anonymousPolicies: [], serverCertHosts: [] },
  policies: [],
  shadow: { maxStateBytes: 8192, maxDepth: 6, maxRequestsPerSecondPerThing: 20 },
  tasks: { trustedKeys: [], allowUnsigned: false, maxConcurrentCalls: 8, maxBundleBytes: 5 * 1024 * 1024 },
  cloud: {
    joinFile: null,
    forward: [],
    outbox: { maxBytes: 64 * 1024 * 1024, maxMessages: 1_000_000, maxAgeMs: 7 * 24 * 3600_000, dropPolicy: 'drop-oldest' },
  },
  store: { synchronous: 'full', brokerSynchronous: 'normal' },
}
