import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Clock } from '../core/clock.js'
import { ConfigError } from '../core/errors.js'
import { K, type Logger } from '../core/log.js'
import type { CoordinatorConfig } from '../config/index.js'
import { isValidTopicFilter, parseJoinDocument, type JoinDocument } from '../protocol/index.js'
import type { CloudLink, Outbox } from '../cloud/index.js'
import type { LocalBus } from '../broker/index.js'

/** The coordinator's connection to its cloud shim: identity, durable outbox and the MQTT link. */
export interface CloudConnection {
  join: JoinDocument
  outbox: Outbox
  link: CloudLink
  close(): Promise<void>
}

export const outboxFile = (dataDir: string): string => join(dataDir, 'outbox.db')

/** Reads and validates the join file named by the config; errors name the file and the field. */
export function readJoinFile(file: string): JoinDocument {
  let json: unknown
  try {
    json = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new ConfigError(`cloud.joinFile: cannot read join file '${file}': ${(err as Error).message}`)
  }
  const r = parseJoinDocument(json)
  if (!r.ok) throw new ConfigError(`cloud.joinFile: '${file}' is not a valid join file:\n  ${r.errors.join('\n  ')}`)
  return r.join
}

/**
 * Opens the outbox and starts the link; the link connects in the background with backoff, so the
 * coordinator starts (and keeps working) with no network at all.
 */
export async function connectCloud(config: CoordinatorConfig, bus: LocalBus, clock: Clock, log: Logger): Promise<CloudConnection | null> {
  if (config.cloud.joinFile === null) return null
  const joinDoc = readJoinFile(config.cloud.joinFile)
  config.cloud.forward.forEach((f, i) => {
    if (!isValidTopicFilter(f)) throw new ConfigError(`cloud.forward.${i}: '${f}' is not a valid MQTT topic filter`)
  })
  // Loaded only for a joined coordinator: the MQTT client library is large for a board on its own.
  const { CloudLink, Outbox } = await import('../cloud/index.js')
  const outbox = Outbox.open(outboxFile(config.dataDir), { ...config.cloud.outbox, clock, log: log.child({ module: 'outbox' }) })
  const link = new CloudLink({
    url: joinDoc.mqttUrl,
    thingName: joinDoc.name,
    outbox,
    tls: { ca: joinDoc.caPem, cert: joinDoc.certPem, key: joinDoc.keyPem },
    clock,
    log: log.child({ module: 'cloud-link' }),
  })
  const unsubscribe = await Promise.all(config.cloud.forward.map((filter) => bus.subscribe(filter, (topic, payload) => {
    const r = outbox.enqueue({ topic: `cloud/${joinDoc.name}/${topic}`, payload, qos: 1 })
    if (!r.accepted) log.warn({ [K.topic]: topic, reason: r.reason }, 'upstream message refused by the outbox')
  })))
  link.start()
  log.info({ cloud: joinDoc.mqttUrl, name: joinDoc.name, forward: config.cloud.forward }, 'cloud link started')
  return {
    join: joinDoc,
    outbox,
    link,
    close: async () => {
      for (const u of unsubscribe) await u()
      await link.close()
      outbox.close()
    },
  }
}
