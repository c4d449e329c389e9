import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { MqttClient } from 'mqtt'
import { connect, shadowRequest } from '../helpers/mqtt.js'
import { killHard, startDaemon, type Daemon } from '../helpers/daemon.js'
import { tempDir } from '../helpers/tmp.js'

const THING = 'crash-dev'
const PREFIX = `$aws/things/${THING}/shadow`

/**
 * Streams updates (a new key each) keeping a window in flight, and records which were accepted
 * with their versions; calls `onEnough` once `enough` have been accepted, while more are in flight.
 */
function streamUpdates(client: MqttClient, enough: number, onEnough: () => void): Map<number, number> {
  const accepted = new Map<number, number>()
  let next = 0
  const send = (): void => {
    const i = next++
    client.publish(`${PREFIX}/update`, JSON.stringify({ state: { reported: { [`k${i}`]: i } }, clientToken: `u-${i}` }), { qos: 1 })
  }
  client.on('message', (topic, msg) => {
    if (!topic.endsWith('/update/accepted')) return
    const body = JSON.parse(msg.toString()) as { clientToken: string; version: number }
    accepted.set(Number(body.clientToken.slice(2)), body.version)
    if (accepted.size === enough) onEnough()
    send()
  })
  for (let w = 0; w < 16; w++) send()
  return accepted
}

describe('crash safety of the shadow store', () => {
  const tmp = tempDir()
  let daemon: Daemon | undefined
  afterEach(async () => {
    if (daemon !== undefined && daemon.child.exitCode === null) await killHard(daemon)
    tmp.remove()
  })

  it('keeps every accepted update and never repeats a version after kill -9', async () => {
    const config = join(tmp.dir, 'config.json')
    writeFileSync(config, JSON.stringify({ shadow: { maxRequestsPerSecondPerThing: 0 }, log: { level: 'info', pretty: false } }))
    const args = ['--config', config, '--data-dir', join(tmp.dir, 'data')]
    daemon = await startDaemon(args)
    const client = await connect(`mqtt://127.0.0.1:${daemon.endpoints.mqtt.port}`, { clientId: THING })
    await client.subscribeAsync(`${PREFIX}/update/accepted`, { qos: 1 })
    const first = daemon
    const accepted = streamUpdates(client, 300, () => first.child.kill('SIGKILL'))
    await first.exited
    client.end(true)
    expect(accepted.size).toBeGreaterThanOrEqual(300)

    daemon = await startDaemon(args)
    const again = await connect(`mqtt://127.0.0.1:${daemon.endpoints.mqtt.port}`, { clientId: THING })
    const got = await shadowRequest(again, PREFIX, 'get')
    const reported = (got.body['state'] as { reported: Record<string, number> }).reported
    for (const i of accepted.keys()) expect(reported[`k${i}`]).toBe(i)
    const versions = [...accepted.values()]
    expect(new Set(versions).size).toBe(versions.length)
    const stored = got.body['version'] as number
    expect(stored).toBeGreaterThanOrEqual(Math.max(...versions))
    const after = await shadowRequest(again, PREFIX, 'update', JSON.stringify({ state: { reported: { after: true } } }))
    expect(after.body['version']).toBe(stored + 1)
    await again.endAsync()
  })
})

describe('broker sessions across kill -9', () => {
  const tmp = tempDir()
  let daemon: Daemon | undefined
  afterEach(async () => {
    if (daemon !== undefined && daemon.child.exitCode === null) await killHard(daemon)
    tmp.remove()
  })

  it('delivers a delta queued for an offline persistent-session device after the coordinator is killed', async () => {
    const args = ['--data-dir', join(tmp.dir, 'data')]
    daemon = await startDaemon(args)
    const url = (d: Daemon): string => `mqtt://127.0.0.1:${d.endpoints.mqtt.port}`
    const device = await connect(url(daemon), { clientId: 'heater-1', clean: false })
    await device.subscribeAsync('$aws/things/heater-1/shadow/update/delta', { qos: 1 })
    await device.endAsync()

    const res = await fetch(`http://127.0.0.1:${daemon.endpoints.http.port}/things/heater-1/shadow`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ state: { desired: { target: 21.5 } } }),
    })
    expect(res.status).toBe(200)
    await killHard(daemon)

    daemon = await startDaemon(args)
    const back = await connect(url(daemon), { clientId: 'heater-1', clean: false })
    const delta = await new Promise<Record<string, unknown>>((resolve) => {
      back.on('message', (topic, msg) => {
        if (topic.endsWith('/update/delta')) resolve(JSON.parse(msg.toString()) as Record<string, unknown>)
      })
    })
    expect(delta).toMatchObject({ state: { target: 21.5 }, version: 1 })
    await back.endAsync()
  })
})
