/**
 * The broker's authorization lines under attack, through real MQTT.js clients over loopback sockets
 * and credentials issued by the real CLI: wills planted on other things' topics (at CONNECT, and
 * after kill -9 of the daemon, when aedes publishes stored wills with no client), identity takeover
 * by anonymous development connections, empty client ids, and deny statements that must filter
 * delivery rather than refuse every overlapping wildcard.
 */
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { CLOUD_BIN, runBin, startCloudDaemon, startCloudShim, type CloudDaemon, type RunningCloudShim } from '../helpers/cloud-shim.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { killHard, startDaemon, type Daemon } from '../helpers/daemon.js'
import { addDevice, removeDevice } from '../helpers/devices-cli.js'
import { collect, connect, shadowRequest } from '../helpers/mqtt.js'
import { tempDir } from '../helpers/tmp.js'

const shadow = (thing: string): string => `$aws/things/${thing}/shadow`
const offline = (): Buffer => Buffer.from(JSON.stringify({ state: { reported: { online: false } } }))

/** The CONNACK return code a refused connection got (MQTT.js puts it on the error as `code`). */
async function refusedWith(url: string, opts: IClientOptions): Promise<number> {
  const err = await connect(url, opts).then(
    (client) => {
      client.end(true)
      throw new Error(`connection as ${JSON.stringify(opts.clientId)} was accepted`)
    },
    (e: Error & { code?: number }) => e,
  )
  return Number(err.code)
}

/** Resolves when `check` holds, re-evaluating it every 50 ms (for state only reachable by asking). */
async function until(check: () => Promise<boolean>, what: string, limitMs = 30_000): Promise<void> {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > limitMs) throw new Error(`gave up waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe('broker adversarial: identities, wills and deny statements (in-process coordinator)', () => {
  const tmp = tempDir('edge-coord-adv-')
  let run: RunningCoordinator
  let token: string
  let tls: { key: string; cert: string; ca: string }
  const open: MqttClient[] = []
  const TOK = 'adv-token'
  const CERT = 'adv-cert'

  async function connected(opts: IClientOptions, url = run.mqttUrl): Promise<MqttClient> {
    const client = await connect(url, opts)
    open.push(client)
    return client
  }

  beforeAll(async () => {
    const cert = await addDevice(tmp.dir, CERT)
    tls = { key: readFileSync(cert.keyPath, 'utf8'), cert: readFileSync(cert.certPath, 'utf8'), ca: readFileSync(cert.caPath, 'utf8') }
    const tok = await addDevice(tmp.dir, TOK, ['--token', '--no-cert'])
    if (tok.token === undefined) throw new Error('devices add --token printed no token')
    token = tok.token
    run = await startCoordinator({
      dataDir: tmp.dir,
      auth: { allowAnonymousLoopback: true, anonymousPolicies: ['lab'] },
      policies: [{
        name: 'lab',
        statements: [
          { effect: 'allow', actions: ['publish', 'subscribe'], resources: ['test/#'] },
          { effect: 'deny', actions: ['subscribe'], resources: ['test/nosubscribe'] },
        ],
      }],
    })
  })

  afterAll(async () => {
    for (const c of open) c.end(true)
    await run.stop()
    tmp.remove()
  })

  describe('wills', () => {
    it("refuses at CONNECT a will on another device's shadow update topic", async () => {
      expect(await refusedWith(run.mqttUrl, { clientId: 'mallory', will: { topic: `${shadow(TOK)}/update`, payload: offline(), qos: 1, retain: false } })).toBe(5)
    })

    it('refuses at CONNECT a will on a shadow reply topic, even the sender\'s own', async () => {
      expect(await refusedWith(run.mqttUrl, { clientId: 'mallory', will: { topic: `${shadow('mallory')}/update/accepted`, payload: offline(), qos: 0, retain: false } })).toBe(5)
    })

    it('accepts a will the owner may publish, and publishes it when the owner drops', async () => {
      const watcher = await connected({ clientId: 'will-watch' })
      await watcher.subscribeAsync('test/wills/#', { qos: 1 })
      const got = new Promise<string>((resolve) => watcher.on('message', (topic, msg) => topic === 'test/wills/owner' && resolve(msg.toString())))
      const owner = await connect(run.mqttUrl, { clientId: 'will-owner', will: { topic: 'test/wills/owner', payload: Buffer.from('gone'), qos: 1, retain: false } })
      owner.stream.destroy()
      expect(await got).toBe('gone')
    })
  })

  describe('wills of a device removed while connected', () => {
    it('drops the will of a connected device that is removed: its owner is gone when aedes would publish it', async () => {
      // The CLI checks the policy against the config, so it is given the daemon's policies.
      const config = join(tmp.dir, 'policies.json')
      writeFileSync(config, JSON.stringify({ policies: [{ name: 'lab', statements: [{ effect: 'allow', actions: ['publish', 'subscribe'], resources: ['test/#'] }] }] }))
      const gone = await addDevice(tmp.dir, 'adv-removed', ['--token', '--no-cert', '--policy', 'lab', '--config', config])
      const watcher = await connected({ clientId: 'will-watch-2' })
      await watcher.subscribeAsync('test/removed/#', { qos: 1 })
      const seen: string[] = []
      watcher.on('message', (topic) => seen.push(topic))
      const device = await connect(run.mqttUrl, {
        clientId: gone.name, username: gone.name, password: gone.token, reconnectPeriod: 0,
        will: { topic: 'test/removed/will', payload: Buffer.from('gone'), qos: 1, retain: false },
      })
      const closed = new Promise<void>((resolve) => device.once('close', () => resolve()))
      await removeDevice(tmp.dir, gone.name)
      await closed
      // A marker published after the close reaches the watcher after anything published before it.
      const marker = new Promise<void>((resolve) => watcher.once('message', () => resolve()))
      const sender = await connected({ clientId: 'will-marker' })
      await sender.publishAsync('test/removed/marker', 'after', { qos: 1 })
      await marker
      expect(seen).toEqual(['test/removed/marker'])
    })
  })

  describe('identity takeover in development mode', () => {
    it('does not let an anonymous loopback connection displace a token session of the same client id', async () => {
      const device = await connected({ clientId: TOK, username: TOK, password: token })
      let closed = false
      device.on('close', () => { closed = true })
      expect(await refusedWith(run.mqttUrl, { clientId: TOK })).toBe(5)
      const got = await shadowRequest(device, shadow(TOK), 'get')
      expect(got.status).toBe('rejected')
      expect(got.body['code']).toBe(404)
      expect(closed).toBe(false)
    })

    it('does not let it displace a certificate session either', async () => {
      const device = await connected({ clientId: CERT, ...tls }, `mqtts://127.0.0.1:${run.endpoints.mqtts.port}`)
      let closed = false
      device.on('close', () => { closed = true })
      expect(await refusedWith(run.mqttUrl, { clientId: CERT })).toBe(5)
      expect((await shadowRequest(device, shadow(CERT), 'get')).body['code']).toBe(404)
      expect(closed).toBe(false)
    })

    it("does not let it resume (or wipe) an offline device's persistent session: the queued delta waits for the device", async () => {
      const delta = `${shadow(TOK)}/update/delta`
      const device = await connect(run.mqttUrl, { clientId: TOK, username: TOK, password: token, clean: false })
      await device.subscribeAsync(delta, { qos: 1 })
      await device.endAsync()
      // An operator's change while the device is away: its delta is queued in the device's session.
      const update = await fetch(`${run.httpUrl}/things/${TOK}/shadow`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ state: { desired: { mode: 'away' } } }),
      })
      expect(update.status).toBe(200)
      expect(await refusedWith(run.mqttUrl, { clientId: TOK, clean: false })).toBe(5)
      expect(await refusedWith(run.mqttUrl, { clientId: TOK, clean: true })).toBe(5)
      // The queued delta may arrive with the CONNACK, so the listener is on before the connection.
      const back = mqtt.connect(run.mqttUrl, { clientId: TOK, username: TOK, password: token, clean: false, reconnectPeriod: 0 })
      open.push(back)
      const got = await new Promise<[string, string]>((resolve) => back.on('message', (topic, msg) => resolve([topic, msg.toString()])))
      expect(got[0]).toBe(delta)
      expect(JSON.parse(got[1])).toMatchObject({ state: { mode: 'away' } })
    })

    it('still lets an anonymous client replace an anonymous one', async () => {
      const first = await connect(run.mqttUrl, { clientId: 'anon-twice' })
      const closed = new Promise<void>((resolve) => first.once('close', () => resolve()))
      const second = await connected({ clientId: 'anon-twice' })
      await closed
      expect(second.connected).toBe(true)
      first.end(true)
    })
  })

  describe('empty client id', () => {
    it('is refused with CONNACK 2 without a clean session', async () => {
      // MQTT.js will not send this CONNECT, so it is written by hand: MQTT 3.1.1, clean session 0,
      // keep-alive 60 s, client id of length 0.
      const connectPacket = Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x00, 0, 60, 0, 0])
      const socket = createConnection(run.endpoints.mqtt.port, '127.0.0.1')
      const [connack] = (await once(socket.on('connect', () => socket.write(connectPacket)), 'data')) as [Buffer]
      socket.destroy()
      // CONNACK, remaining length 2, no session present, return code 2 (identifier rejected).
      expect([...connack.subarray(0, 4)]).toEqual([0x20, 2, 0, 2])
    })

    it('becomes the thing name of a certificate client with a clean session', async () => {
      const device = await connected({ clientId: '', clean: true, ...tls }, `mqtts://127.0.0.1:${run.endpoints.mqtts.port}`)
      // The default policy grants `${thingName}` = the client id: only the certificate's thing works.
      expect((await shadowRequest(device, shadow(CERT), 'get')).body['code']).toBe(404)
    })

    it('is generated for an anonymous development client with a clean session', async () => {
      const anon = await connected({ clientId: '', clean: true })
      const granted = await anon.subscribeAsync('test/anything', { qos: 1 })
      expect(granted[0]?.qos).toBe(1)
    })

    it('is refused for a token, which names no thing', async () => {
      expect(await refusedWith(run.mqttUrl, { clientId: '', clean: true, username: TOK, password: token })).toBe(2)
    })
  })

  describe('deny statements filter delivery', () => {
    it('grants wildcards an allow covers and withholds the denied topic from them', async () => {
      const sub = await connected({ clientId: 'deny-sub' })
      const granted = await sub.subscribeAsync({ 'test/#': { qos: 1 }, 'test/+': { qos: 1 } })
      expect(granted.map((g) => g.qos)).toEqual([1, 1])
      const received: string[] = []
      const done = new Promise<void>((resolve) => sub.on('message', (topic) => {
        received.push(topic)
        if (topic === 'test/last') resolve()
      }))
      const pub = await connected({ clientId: 'deny-pub' })
      // In order over one connection at QoS 1: by the time 'test/last' arrives, the others would have.
      await pub.publishAsync('test/nosubscribe', 'secret', { qos: 1 })
      await pub.publishAsync('test/open', 'hello', { qos: 1 })
      await pub.publishAsync('test/last', 'end', { qos: 1 })
      await done
      expect(received.filter((t) => t === 'test/nosubscribe')).toEqual([])
      // Two matching subscriptions, one copy (aedes de-duplicates per client).
      expect(received.filter((t) => t === 'test/open')).toEqual(['test/open'])
    })

    it('answers SUBACK 0x80 for a subscription whose whole filter is denied, and keeps the rest', async () => {
      const sub = await connected({ clientId: 'deny-exact' })
      const suback = new Promise<number[]>((resolve) => sub.once('packetreceive', (packet) => {
        if (packet.cmd === 'suback') resolve(packet.granted.map(Number))
      }))
      // MQTT.js rejects a SUBSCRIBE with any 0x80 in it; the SUBACK itself is what counts here.
      await sub.subscribeAsync({ 'test/nosubscribe': { qos: 1 }, 'test/open': { qos: 0 } }).catch(() => undefined)
      expect(await suback).toEqual([128, 0])
    })

    it('does not hand out a retained message on a denied topic to a wildcard subscriber', async () => {
      const pub = await connected({ clientId: 'deny-retain' })
      await pub.publishAsync('test/nosubscribe', 'kept', { qos: 1, retain: true })
      await pub.publishAsync('test/retained-open', 'kept', { qos: 1, retain: true })
      const sub = await connected({ clientId: 'deny-retain-sub' })
      const received: string[] = []
      const done = new Promise<void>((resolve) => sub.on('message', (topic) => {
        received.push(topic)
        if (topic === 'test/retained-open') resolve()
      }))
      // One SUBSCRIBE per filter, the denied topic's first: its retained message would come first.
      await sub.subscribeAsync('test/nosubscribe/#', { qos: 1 })
      await sub.subscribeAsync('test/retained-open', { qos: 1 })
      await done
      expect(received).toEqual(['test/retained-open'])
    })
  })
})

/**
 * aedes keeps wills in the persistence and, after an unclean stop, publishes those of clients that
 * have not come back with no client attached. Each case kills the real daemon with SIGKILL, changes
 * what the owner may do while it is down, restarts it and checks the shadow the will aimed at.
 */
describe('broker adversarial: wills after kill -9 of the coordinator', () => {
  const tmp = tempDir('edge-coord-wills-')
  let daemon: Daemon | undefined
  afterEach(async () => {
    if (daemon !== undefined && daemon.child.exitCode === null) await killHard(daemon)
    tmp.remove()
  })

  const config = (file: string, anonymousPolicies: string[]): string => {
    writeFileSync(file, JSON.stringify({
      log: { level: 'info', pretty: false },
      // Wills of a previous run go out four heartbeats after start.
      broker: { heartbeatIntervalMs: 500 },
      auth: { allowAnonymousLoopback: true, anonymousPolicies },
      policies: [{ name: 'hall-keeper', statements: [{ effect: 'allow', actions: ['publish'], resources: ['$aws/things/hall/shadow/update'] }] }],
    }))
    return file
  }

  const shadowOf = async (d: Daemon, thing: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`http://127.0.0.1:${d.endpoints.http.port}/things/${thing}/shadow`)
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }

  it('drops a stored will whose owner was removed or lost the policy, and still publishes the others', async () => {
    const data = join(tmp.dir, 'data')
    const sensor = await addDevice(data, 'sensor', ['--token', '--no-cert'])
    const args = (file: string): string[] => ['--config', file, '--data-dir', data]
    daemon = await startDaemon(args(config(join(tmp.dir, 'before.json'), ['hall-keeper'])))
    const url = `mqtt://127.0.0.1:${daemon.endpoints.mqtt.port}`
    const will = (thing: string): IClientOptions['will'] => ({ topic: `${shadow(thing)}/update`, payload: offline(), qos: 1, retain: false })
    // A token device's will on its own shadow; an anonymous client's on another thing's, which its
    // policy allows for now; and the control: an anonymous client's will on its own shadow.
    const clients = [
      await connect(url, { clientId: 'sensor', username: 'sensor', password: sensor.token, will: will('sensor') }),
      await connect(url, { clientId: 'keeper', will: will('hall') }),
      await connect(url, { clientId: 'lamp', will: will('lamp') }),
    ]
    await killHard(daemon)
    for (const c of clients) c.end(true)

    await removeDevice(data, 'sensor')
    daemon = await startDaemon(args(config(join(tmp.dir, 'after.json'), [])))
    const d = daemon
    await until(async () => (await shadowOf(d, 'lamp')).status === 200, "the control will on lamp's shadow")
    expect((await shadowOf(d, 'lamp')).body).toMatchObject({ state: { reported: { online: false } } })
    await until(async () => d.logs.filter((l) => l['msg'] === 'will dropped').length === 2, 'both refused wills to be dropped')
    const dropped = d.logs.filter((l) => l['msg'] === 'will dropped').map((l) => l['clientId']).sort()
    expect(dropped).toEqual(['keeper', 'sensor'])
    expect((await shadowOf(d, 'hall')).status).toBe(404)
    expect((await shadowOf(d, 'sensor')).status).toBe(404)
  }, 120_000)
})

/**
 * The cloud shim embeds the same broker: a coordinator must not plant a will on another
 * coordinator's `deployment` shadow, and a will stored by a coordinator that was removed while the
 * shim was down (kill -9) is dropped instead of being published on its behalf.
 */
describe('broker adversarial: wills on the cloud shim after kill -9', () => {
  const tmp = tempDir('edge-cloud-wills-')
  let daemon: CloudDaemon | undefined
  afterEach(async () => {
    if (daemon !== undefined && daemon.child.exitCode === null) {
      daemon.child.kill('SIGKILL')
      await daemon.exited
    }
    tmp.remove()
  })

  it("refuses a will on another coordinator's deployment shadow and drops the stored will of a removed one", async () => {
    const data = join(tmp.dir, 'data')
    const file = join(tmp.dir, 'cloud.json')
    writeFileSync(file, JSON.stringify({ log: { level: 'info', pretty: false }, embeddedBroker: { heartbeatIntervalMs: 500 }, auth: { allowAnonymousLoopback: false } }))
    const tokens: Record<string, string> = {}
    for (const name of ['hub-a', 'hub-b']) {
      const r = await runBin(CLOUD_BIN, ['coordinators', 'add', name, '--token', '--data-dir', data, '--out', tmp.dir])
      if (r.code !== 0) throw new Error(`coordinators add ${name} failed: ${r.stderr}${r.stdout}`)
      tokens[name] = (JSON.parse(readFileSync(join(tmp.dir, `${name}.join.json`), 'utf8')) as { token: string }).token
    }
    const args = ['--config', file, '--data-dir', data, '--mqtt-port', '0', '--mqtts-port', '0', '--http-port', '0']
    const start = async (): Promise<{ d: CloudDaemon; mqtt: string; http: string }> => {
      const d = await startCloudDaemon(args)
      const endpoints = d.ready['endpoints'] as Record<string, { port: number }>
      return { d, mqtt: `mqtt://127.0.0.1:${endpoints['mqtt']?.port}`, http: `http://127.0.0.1:${endpoints['http']?.port}` }
    }
    const as = (name: string, will: string): IClientOptions => ({
      clientId: name, username: name, password: tokens[name], will: { topic: will, payload: offline(), qos: 1, retain: false },
    })
    const deploymentOfA = `${shadow('hub-a')}/name/deployment/update`

    let shim = await start()
    daemon = shim.d
    expect(await refusedWith(shim.mqtt, as('hub-b', deploymentOfA))).toBe(5)
    const clients = [await connect(shim.mqtt, as('hub-a', deploymentOfA)), await connect(shim.mqtt, as('hub-b', `${shadow('hub-b')}/update`))]
    daemon.child.kill('SIGKILL')
    await daemon.exited
    for (const c of clients) c.end(true)

    const removed = await runBin(CLOUD_BIN, ['coordinators', 'remove', 'hub-a', '--data-dir', data])
    expect(removed.code, removed.stderr).toBe(0)
    shim = await start()
    daemon = shim.d
    const { d, http } = shim
    const status = async (path: string): Promise<number> => (await fetch(`${http}${path}`)).status
    await until(async () => (await status('/things/hub-b/shadow')) === 200, "the control will on hub-b's shadow")
    await until(async () => d.logs.some((l) => l['msg'] === 'will dropped' && l['clientId'] === 'hub-a'), "hub-a's will to be dropped")
    expect(await status('/things/hub-a/shadow?name=deployment')).toBe(404)
  }, 120_000)
})

/**
 * Self-registration (`cloud/{name}/register`) as an attack: a coordinator tries to write the
 * operator's attributes and tags to enter another site's dynamic group (and receive its
 * deployments), and to claim devices that were never registered under it.
 */
describe('broker adversarial: self-registration on the cloud shim', () => {
  let run: RunningCloudShim
  let evil: MqttClient
  const tokens: Record<string, string> = {}

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${run.httpUrl}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) })
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }

  beforeAll(async () => {
    run = await startCloudShim({ auth: { allowAnonymousLoopback: false } })
    for (const [name, site] of [['hub-evil', 'south'], ['hub-north', 'north']] as const) {
      tokens[name] = ((await api('POST', '/v1/coordinators', { name, attributes: { site }, token: true })).body as { token: string }).token
    }
    expect((await api('PUT', '/v1/things/north-lamp', { kind: 'device', coordinator: 'hub-north' })).status).toBe(201)
    expect((await api('PUT', '/v1/things/loose-lamp', { kind: 'device' })).status).toBe(201)
    expect((await api('POST', '/v1/groups', { name: 'north-site', query: 'attributes.site = "north"' })).status).toBe(201)
    expect((await api('POST', '/v1/groups', { name: 'cameras', query: 'tags HAS camera' })).status).toBe(201)
    evil = await connect(`mqtt://127.0.0.1:${run.endpoints.mqtt?.port}`, { clientId: 'hub-evil', username: 'hub-evil', password: tokens['hub-evil'] })
  })

  afterAll(async () => {
    evil?.end(true)
    await run?.stop()
  })

  async function register(body: object): Promise<{ topic: string; body: Record<string, unknown> }> {
    const reply = await collect(evil, 'cloud/hub-evil/register/+', 1)
    await evil.publishAsync('cloud/hub-evil/register', JSON.stringify(body), { qos: 1 })
    const [answer] = await reply.done
    if (answer === undefined) throw new Error('no answer to the registration')
    return answer
  }

  it("cannot rewrite the operator's attributes and tags to enter another site's group", async () => {
    const answer = await register({ attributes: { site: 'north' }, addTags: ['camera'], removeTags: [], clientToken: 'evil-1' })
    expect(answer.topic).toBe('cloud/hub-evil/register/accepted')
    expect(run.shim.registry.getThing('hub-evil')).toMatchObject({ attributes: { site: 'south' }, tags: [], reported: { attributes: { site: 'north' }, tags: ['camera'] } })
    expect((await api('GET', '/v1/groups/north-site')).body['members']).toEqual(['hub-north'])
    expect((await api('GET', '/v1/groups/cameras')).body['members']).toEqual([])
    expect(run.shim.registry.listThings({ query: 'reported.attributes.site = "north"' }).map((t) => t.name)).toEqual(['hub-evil'])
  })

  it('cannot remove an operator tag either', async () => {
    expect((await api('PATCH', '/v1/things/hub-evil', { addTags: ['managed'] })).status).toBe(200)
    await register({ removeTags: ['managed'] })
    expect(run.shim.registry.getThing('hub-evil')?.tags).toEqual(['managed'])
  })

  it('cannot claim an unknown device, an unassigned one, or another coordinator\'s', async () => {
    const answer = await register({ devices: [{ name: 'never-seen' }, { name: 'loose-lamp' }, { name: 'north-lamp' }] })
    expect(answer.body).toMatchObject({ devices: [] })
    expect((answer.body['refused'] as Array<{ name: string }>).map((r) => r.name)).toEqual(['never-seen', 'loose-lamp', 'north-lamp'])
    expect(run.shim.registry.getThing('never-seen')).toBeUndefined()
    expect(run.shim.registry.getThing('loose-lamp')?.coordinator).toBeNull()
    expect(run.shim.registry.getThing('north-lamp')?.coordinator).toBe('hub-north')
    await expect(evil.subscribeAsync('$aws/things/loose-lamp/shadow/update/accepted', { qos: 1 })).rejects.toThrow(/Subscribe error/)
  })
})
