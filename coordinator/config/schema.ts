import { z } from 'zod'
import { SHADOW_NAME_PATTERN, THING_NAME_PATTERN } from '../protocol/index.js'

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

/** `Host` names and page origins browsers may use; IP literals and the daemon's own names are always served. */
export const webSection = z.object({
  /** Host names (no port) the HTTP API and WebSocket listener answer to, besides localhost, this host's name and auth.serverCertHosts. */
  allowedHosts: z.array(z.string().min(1).regex(/^[A-Za-z0-9.-]+$/, 'expected a host name without scheme or port, like gateway.local')),
  /** Page origins allowed to make state-changing API requests and WebSocket upgrades, besides the same origin. */
  allowedOrigins: z.array(z.string().refine((o) => URL.canParse(o) && new URL(o).origin === o, "expected an origin like 'http://console.local:8080' (scheme, host, port; no path)")),
}).strict()

const policy = z.object({ name: z.string().min(1), statements: z.array(policyStatement).min(1) }).strict()

/** Board profiles hardware/profiles.ts knows; 'auto' detects the board at start. */
export const BOARD_PROFILES = ['auto', 'pi-zero-2w', 'pi3', 'pi4', 'pi5', 'generic'] as const
/** Line rates a Linux tty accepts (stty); anything else fails only at open, so refuse it here. */
const BAUD_RATES = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600] as const

const thingName = z.string().regex(THING_NAME_PATTERN, 'expected a thing name (1-128 characters of a-z A-Z 0-9 : _ -)')
const shadowName = z.string().regex(SHADOW_NAME_PATTERN, 'expected a shadow name (1-64 characters of a-z A-Z 0-9 : _ - $)')

/** One thing's shadows to sync (cloud.sync.shadows); at least one of them. */
const syncedShadows = z.object({
  thing: thingName,
  /** Its classic (unnamed) shadow. */
  classic: z.boolean().default(true),
  /** Its named shadows. */
  named: z.array(shadowName).default([]),
}).strict().refine((s) => s.classic || s.named.length > 0, { message: 'names no shadow: set classic to true or list named shadows' })

/** A GPIO line presented as a device: its shadow's `on` is the line's logical level. */
const gpioLine = z.object({
  thing: thingName,
  chip: z.string().regex(/^gpiochip\d+$/, "expected a chip name like 'gpiochip0'"),
  line: z.number().int().min(0).max(1023),
  direction: z.enum(['in', 'out']),
  /** The line is on when its pin is low (relay boards driven through a transistor often are). */
  activeLow: z.boolean().default(false),
  /** An output's level at start when its shadow holds no desired `on`. */
  initial: z.boolean().default(false),
  backend: z.enum(['gpiod', 'simulated']).default('gpiod'),
}).strict()

/** A serial sensor presented as a device: each parsed line becomes its reported state. */
const serialPort = z.object({
  thing: thingName,
  path: z.string().startsWith('/'),
  baud: z.number().int().refine((b) => (BAUD_RATES as readonly number[]).includes(b), `expected one of ${BAUD_RATES.join(', ')}`),
  parser: z.enum(['kv', 'json', 'lines']),
  backend: z.enum(['tty', 'simulated']).default('tty'),
  /** Readings arriving faster are coalesced (the newest wins): each report is an SD-card write. */
  minIntervalMs: z.number().int().min(0).max(3_600_000).default(1000),
}).strict()

const hardware = z.object({
  /** Which board's default limits apply; 'auto' reads the device tree, /proc/cpuinfo and /proc/meminfo. */
  profile: z.enum(BOARD_PROFILES),
  /** Where /proc, /sys and /dev are read from for detection ('/' except in tests). */
  root: z.string().min(1),
  gpio: z.array(gpioLine),
  serial: z.array(serialPort),
}).strict().superRefine((hw, ctx) => {
  const seen = new Map<string, string>()
  const claim = (key: string, where: string, path: (string | number)[], what: string): void => {
    const first = seen.get(key)
    if (first === undefined) return void seen.set(key, where)
    ctx.addIssue({ code: 'custom', path, message: `${what} is already used by hardware.${first}` })
  }
  hw.gpio.forEach((g, i) => {
    claim(`thing:${g.thing}`, `gpio.${i}`, ['gpio', i, 'thing'], `thing '${g.thing}'`)
    claim(`line:${g.chip}:${g.line}`, `gpio.${i}`, ['gpio', i, 'line'], `${g.chip} line ${g.line}`)
  })
  hw.serial.forEach((s, i) => {
    claim(`thing:${s.thing}`, `serial.${i}`, ['serial', i, 'thing'], `thing '${s.thing}'`)
    claim(`path:${s.path}`, `serial.${i}`, ['serial', i, 'path'], `port ${s.path}`)
  })
})

/**
 * Bounds of an embedded broker, per connection and per session, checked before the work they bound
 * (the coordinator's `broker` section and the cloud shim's `brokerLimits`).
 */
export const brokerLimitsShape = {
  /** Largest MQTT packet in bytes, header included; a bigger one closes its connection before its payload is read. */
  maxPacketBytes: z.number().int().min(1024).max(268_435_460),
  /** A connection that has not finished its TLS handshake, its WebSocket upgrade or sent CONNECT in this time is closed. */
  connectTimeoutMs: z.number().int().min(100).max(600_000),
  /** Subscriptions one connection may hold; SUBACK 0x80 for the ones beyond. */
  maxSubscriptionsPerClient: z.number().int().min(1).max(100_000),
  /** QoS 1/2 messages kept for one persistent session (queued while offline or awaiting PUBACK); newer ones are dropped. */
  maxQueuedPerClient: z.number().int().min(1).max(1_000_000),
  /** Inbound QoS 2 messages of one connection awaiting PUBREL. */
  maxInflightPerClient: z.number().int().min(1).max(65_535),
  /** Failed token checks per client id and per source address before each further one waits (doubling). */
  tokenBackoff: z.object({
    freeFailures: z.number().int().min(1).max(1000),
    baseMs: z.number().int().min(1).max(3_600_000),
    maxMs: z.number().int().min(1).max(86_400_000),
    /** Token checks (scrypt, a core each) running at once; others wait (32 per slot), beyond that are refused. */
    maxConcurrentChecks: z.number().int().min(1).max(64),
  }).strict().refine((b) => b.maxMs >= b.baseMs, { message: 'maxMs must be at least baseMs', path: ['maxMs'] }),
}

export const BROKER_LIMIT_DEFAULTS = {
  maxPacketBytes: 1024 * 1024,
  connectTimeoutMs: 10_000,
  maxSubscriptionsPerClient: 100,
  maxQueuedPerClient: 1000,
  maxInflightPerClient: 100,
  tokenBackoff: { freeFailures: 5, baseMs: 1000, maxMs: 60_000, maxConcurrentChecks: 1 },
}

export type BrokerLimits = z.infer<z.ZodObject<typeof brokerLimitsShape>>

export const configSchema = z.object({
  /** Where the SQLite file, the CA and issued credentials live. */
  dataDir: z.string().min(1),
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    /** Human-readable logs; null: only when stdout is a terminal. */
    pretty: z.boolean().nullable(),
    /** Write JSON logs to this file (rotated by size) instead of stdout; null: stdout (the journal under systemd). */
    file: z.string().min(1).nullable(),
    /** Bytes per log file before it is rotated. */
    maxBytes: z.number().int().min(64 * 1024),
    /** Rotated files kept beside the live one; the log never takes more than maxBytes * (maxFiles + 1). */
    maxFiles: z.number().int().min(1).max(20),
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
  broker: z.object({
    /** Messages the broker delivers at once (aedes `concurrency`); each holds memory until delivered. */
    concurrency: z.number().int().min(10).max(10_000),
    /** aedes' heartbeat; after a crash, the wills of clients that did not come back are published four heartbeats after start. */
    heartbeatIntervalMs: z.number().int().min(100).max(3_600_000),
    ...brokerLimitsShape,
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
  /** What web pages may do (coordinator/core/web.ts): the HTTP API and the MQTT-over-WebSocket listener. */
  web: webSection,
  /** Named policies that devices can be given (`devices add --policy NAME`) on top of the default. */
  policies: z.array(policy),
  shadow: z.object({
    /** Bytes of desired+reported JSON per shadow (AWS: 8192). */
    maxStateBytes: z.number().int().min(256).max(1_048_576),
    /** Nesting levels inside desired/reported (AWS error text says 6). */
    maxDepth: z.number().int().min(1).max(32),
    /** Shadow requests per second per thing before 429 (AWS: 20); 0 disables the limit. */
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
  tasks: z.object({
    /** Ed25519 public keys whose signatures make a bundle installable: PEM text or a path to a PEM file. */
    trustedKeys: z.array(z.string().min(1)),
    /** Development only: install bundles that carry no signature. */
    allowUnsigned: z.boolean(),
    /** Task calls running at once across all tasks. */
    maxConcurrentCalls: z.number().int().min(1).max(1024),
    /** Largest bundle file accepted, in bytes. */
    maxBundleBytes: z.number().int().min(1024).max(256 * 1024 * 1024),
    /** Installed tasks (one isolate each); an install beyond it is refused. */
    maxTasks: z.number().int().min(1).max(1024),
    /** The largest `limits.memoryMb` a task may ask for (its isolate heap, in MB). */
    maxMemoryMb: z.number().int().min(8).max(512),
    /** A manifest's other limits are requests, each granted up to its cap here. */
    caps: z.object({
      /** Calls of one task at once, and so the global slots one task may hold; null: half of maxConcurrentCalls (at least 1). */
      maxConcurrent: z.number().int().min(1).max(1024).nullable(),
      /** Calls of one task waiting beyond those. */
      queueSize: z.number().int().min(1).max(100_000),
      /** CPU time of one call, in ms. */
      cpuMsPerCall: z.number().int().min(1).max(60_000),
      /** Wall time of one call, in ms: the longest one call can hold a slot. */
      wallMsPerCall: z.number().int().min(1).max(600_000),
    }).strict(),
    /** Bytes one value may take crossing a task's bridge: a result, an event, host-call arguments or answers. */
    maxBridgeBytes: z.number().int().min(1024).max(64 * 1024 * 1024),
    /** CPU time a task's timer callbacks together may use per second, in ms; beyond it they wait and the task is failing. */
    timerCpuMsPerSecond: z.number().int().min(1).max(1000),
    /** How long stop, replace and shutdown wait for running calls before disposing their isolates, in ms. */
    drainTimeoutMs: z.number().int().min(0).max(60_000),
    /** Resident memory the whole coordinator may use, in MB: an install that could exceed it is refused; over it, the task with the largest heap is stopped. */
    memoryBudgetMb: z.number().int().min(64).max(1_048_576),
    /** What one task may hold on the host side of its sandbox, or push through it per second (COORD_TASK_LIMIT beyond). */
    hostLimits: z.object({
      /** Publishes a second; beyond it a publish waits (back-pressure), within the in-flight bounds. */
      publishesPerSecond: z.number().int().min(1).max(1_000_000),
      /** Publishes that may go at once before the rate applies. */
      publishBurst: z.number().int().min(1).max(1_000_000),
      /** Publishes waiting or being delivered; one more is refused. */
      publishesInFlight: z.number().int().min(1).max(1_000_000),
      /** Their payload bytes. */
      publishBytesInFlight: z.number().int().min(1024).max(1024 * 1024 * 1024),
      /** Log lines a second (bursts of twice as many); lines beyond are dropped and counted. */
      logLinesPerSecond: z.number().int().min(1).max(1_000_000),
      /** Log bytes (message and fields) a second. */
      logBytesPerSecond: z.number().int().min(1024).max(1024 * 1024 * 1024),
      /** Shadow calls awaiting their answer. */
      shadowCallsInFlight: z.number().int().min(1).max(10_000),
      /** ctx.invoke calls awaiting their answer. */
      invokeCallsInFlight: z.number().int().min(1).max(10_000),
    }).strict(),
  }).strict().superRefine((t, ctx) => {
    if (t.caps.maxConcurrent !== null && t.caps.maxConcurrent > t.maxConcurrentCalls) {
      ctx.addIssue({ code: 'custom', path: ['caps', 'maxConcurrent'], message: `expected at most tasks.maxConcurrentCalls (${t.maxConcurrentCalls}), got ${t.caps.maxConcurrent}` })
    }
    if (t.caps.wallMsPerCall < t.caps.cpuMsPerCall) {
      ctx.addIssue({ code: 'custom', path: ['caps', 'wallMsPerCall'], message: `expected at least tasks.caps.cpuMsPerCall (${t.caps.cpuMsPerCall}), got ${t.caps.wallMsPerCall}` })
    }
  }),
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
    /** Shadow sync with the cloud copies (coordinator/sync/README.md); only with a join file. */
    sync: z.object({
      /** Devices' shadows to sync, besides the coordinator's own. */
      shadows: z.array(syncedShadows),
      /** Sync the coordinator's own classic shadow. */
      own: z.boolean(),
      /** 'both'; 'to-cloud': the coordinator's copy wins and cloud changes are ignored; 'from-cloud': the reverse. */
      direction: z.enum(['both', 'to-cloud', 'from-cloud']),
    }).strict(),
    /** Fleet deployments through the `deployment` shadow (coordinator/deploy/README.md); only with a join file. */
    deploy: z.object({
      /** How long every task of a new set must stay running before the set is committed. */
      healthCheckMs: z.number().int().min(0).max(600_000),
      /** Tries per bundle download (each resumes where the last one stopped). */
      downloadAttempts: z.number().int().min(1).max(100),
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
  /** The board's profile and the local hardware presented as devices (hardware/README.md). */
  hardware,
}).strict()

export type CoordinatorConfig = z.infer<typeof configSchema>

export const DEFAULTS: CoordinatorConfig = {
  dataDir: './data',
  log: { level: 'info', pretty: null, file: null, maxBytes: 16 * 1024 * 1024, maxFiles: 3 },
  listeners: {
    mqtt: { host: '127.0.0.1', port: 1883 },
    mqtts: { host: '127.0.0.1', port: 8883 },
    ws: { host: '127.0.0.1', port: 8083, path: '/mqtt' },
    http: { host: '127.0.0.1', port: 8087 },
  },
  broker: { concurrency: 1000, heartbeatIntervalMs: 60_000, ...BROKER_LIMIT_DEFAULTS },
  auth: { allowAnonymousLoopback: 'auto', anonymousPolicies: [], serverCertHosts: [] },
  web: { allowedHosts: [], allowedOrigins: [] },
  policies: [],
  shadow: { maxStateBytes: 8192, maxDepth: 6, maxRequestsPerSecondPerThing: 20, maxRequestBytes: null, maxMetadataBytes: null, maxNamedShadowsPerThing: 100 },
  tasks: { trustedKeys: [], allowUnsigned: false, maxConcurrentCalls: 8, maxBundleBytes: 5 * 1024 * 1024, maxTasks: 64, maxMemoryMb: 512, memoryBudgetMb: 1024,
    maxBridgeBytes: 1024 * 1024, timerCpuMsPerSecond: 100, drainTimeoutMs: 5000,
    hostLimits: {
      publishesPerSecond: 200, publishBurst: 100, publishesInFlight: 100, publishBytesInFlight: 1024 * 1024,
      logLinesPerSecond: 100, logBytesPerSecond: 64 * 1024, shadowCallsInFlight: 16, invokeCallsInFlight: 16,
    },
    caps: { maxConcurrent: null, queueSize: 5000, cpuMsPerCall: 1000, wallMsPerCall: 30_000 },
  },
  cloud: {
    joinFile: null,
    forward: [],
    outbox: { maxBytes: 64 * 1024 * 1024, maxMessages: 1_000_000, maxAgeMs: 7 * 24 * 3600_000, dropPolicy: 'drop-oldest' },
    sync: { shadows: [], own: true, direction: 'both' },
    deploy: { healthCheckMs: 3000, downloadAttempts: 5 },
  },
  store: { synchronous: 'full', brokerSynchronous: 'normal' },
  hardware: { profile: 'auto', root: '/', gpio: [], serial: [] },
}
