/**
 * MQTT packets that arrive in pieces, each its own read: a CONNECT sent as several WebSocket
 * messages, and packets trickled a few bytes per TCP write. From Node 26 a size-less `read()`
 * returns only the first buffered chunk, which stalled aedes at CONNECT ("connack timeout");
 * the broker reads its buffered input whole on every Node version.
 */
import { connect as netConnect } from 'node:net'
import mqttPacket from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'

const packets = (id: string): Buffer[] => [
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: id, keepalive: 30 }),
  mqttPacket.generate({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: `things/${id}/data`, qos: 1 }] }),
  mqttPacket.generate({ cmd: 'pingreq' }),
]

/** Splits every packet into pieces of at most `size` bytes. */
const pieces = (bufs: Buffer[], size: number): Buffer[] =>
  bufs.flatMap((b) => Array.from({ length: Math.ceil(b.length / size) }, (_, i) => b.subarray(i * size, (i + 1) * size)))

/** Collects the broker's replies until CONNACK, SUBACK and PINGRESP have all arrived. */
function replies(onData: (listener: (b: Buffer) => void) => void): Promise<string[]> {
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const seen: string[] = []
  return new Promise((resolve) => {
    parser.on('packet', (p: mqttPacket.Packet) => {
      seen.push(p.cmd === 'connack' ? `connack ${(p as mqttPacket.IConnackPacket).returnCode}` : p.cmd)
      if (seen.length === 3) resolve(seen)
    })
    onData((b) => parser.parse(b))
  })
}

describe('packets split across reads', () => {
  let h: RunningCoordinator
  beforeAll(async () => { h = await startCoordinator() })
  afterAll(async () => { await h.stop() })

  it('serves a CONNECT, SUBSCRIBE and PINGREQ sent as many WebSocket messages in one burst', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${h.endpoints.ws.port}/mqtt`, 'mqtt')
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    const got = replies((l) => ws.on('message', (m: Buffer) => l(m)))
    for (const piece of pieces(packets('ws-split'), 3)) ws.send(piece)
    expect((await got).sort()).toEqual(['connack 0', 'pingresp', 'suback'])
    ws.close()
  })

  it('serves the same packets trickled over TCP a few bytes per write', async () => {
    const socket = netConnect(h.endpoints.mqtt.port, '127.0.0.1')
    socket.setNoDelay(true)
    await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    const got = replies((l) => socket.on('data', l))
    for (const piece of pieces(packets('tcp-split'), 2)) socket.write(piece)
    expect((await got).sort()).toEqual(['connack 0', 'pingresp', 'suback'])
    socket.destroy()
  })
})
