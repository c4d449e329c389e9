import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createBrokerPersistence,
  type BrokerPacket,
  type BrokerPersistenceOptions,
  type BrokerRef,
  type SqliteBrokerPersistence,
} from '../../../coordinator/store/broker-persistence.js'
import { openDatabase, type Db } from '../../../coordinator/store/db.js'
import { tempDir } from '../../helpers/tmp.js'

const root = fileURLToPath(new URL('../../../', import.meta.url))

async function drain(stream: Readable): Promise<unknown[]> {
  const items: unknown[] = []
  for await (const item of stream) items.push(item)
  return items
}

describe('aedes-persistence abstract suite', () => {
  it('passes against the compiled SQLite persistence', () => {
    expect(existsSync(join(root, 'dist/coordinator/store/broker-persistence.js')), 'run `npm run build` first').toBe(true)
    const run = spawnSync(process.execPath, ['--test', '--test-reporter=tap', 'test/helpers/broker-persistence-abstract.mjs'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    })
    const output = `${run.stdout}\n${run.stderr}`
    expect(run.status, output).toBe(0)
    expect(output).toMatch(/^# fail 0$/m)
    const passed = Number(/^# pass (\d+)$/m.exec(output)?.[1] ?? 0)
    expect(passed, output).toBeGreaterThanOrEqual(50)
  }, 130_000)
})

describe('SQLite broker persistence across reopen', () => {
  let tmp: ReturnType<typeof tempDir>
  let file: string
  const open: Db[] = []

  beforeEach(() => {
    tmp = tempDir('broker-persistence-')
    file = join(tmp.dir, 'broker.sqlite')
  })

  afterEach(() => {
    for (const db of open.splice(0)) db.close()
    tmp.remove()
  })

  /** A persistence on `file`, set up as aedes would: a new connection stands for a new process. */
  async function start(broker: BrokerRef = { id: 'broker-a', counter: 0 }, opts: BrokerPersistenceOptions = {}): Promise<SqliteBrokerPersistence> {
    const db = openDatabase(file)
    open.push(db)
    const persistence = createBrokerPersistence(db, opts)
    await persistence.setup(broker)
    return persistence
  }

  it('restores retained messages with Buffer and string payloads and MQTT 5 properties', async () => {
    const before = await start()
    const properties = { correlationData: Buffer.from([1, 2, 3]), userProperties: { site: 'north' } }
    await before.storeRetained({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('bin'), qos: 1, retain: true, properties })
    await before.storeRetained({ cmd: 'publish', topic: 'a/s', payload: 'text', qos: 0, retain: true })
    await before.storeRetained({ cmd: 'publish', topic: 'gone', payload: Buffer.from('x'), qos: 0, retain: true })
    await before.storeRetained({ cmd: 'publish', topic: 'gone', payload: Buffer.alloc(0), qos: 0, retain: true })

    const after = await start()
    const retained = (await drain(after.createRetainedStream('#'))) as BrokerPacket[]
    expect(retained.map((p) => p.topic).sort()).toEqual(['a/b', 'a/s'])
    const binary = retained.find((p) => p.topic === 'a/b')
    expect(Buffer.isBuffer(binary?.payload) && binary.payload.toString()).toBe('bin')
    expect(binary?.properties).toEqual(properties)
    expect(Buffer.isBuffer((binary?.properties as typeof properties).correlationData)).toBe(true)
    expect(retained.find((p) => p.topic === 'a/s')?.payload).toBe('text')
  })

  it('restores subscriptions, their options and the topic index', async () => {
    const before = await start()
    await before.addSubscriptions({ id: 'c1' }, [
      { topic: 'x/#', qos: 1, rh: 0, rap: true, nl: false, subscriptionIdentifier: 7 },
      { topic: 'y', qos: 0, rh: 1, rap: false, nl: true },
      { topic: 'z', qos: 2 },
    ])
    await before.removeSubscriptions({ id: 'c1' }, ['z'])
    await before.addSubscriptions({ id: 'c2' }, [{ topic: 'x/1', qos: 1 }])
    await before.cleanSubscriptions({ id: 'c2' })

    const after = await start()
    expect(await after.subscriptionsByClient({ id: 'c1' })).toEqual(await before.subscriptionsByClient({ id: 'c1' }))
    expect(await after.subscriptionsByClient({ id: 'c2' })).toEqual([])
    expect(await after.subscriptionsByTopic('x/1')).toEqual([{ clientId: 'c1', topic: 'x/#', qos: 1, rh: 0, rap: true, nl: false }])
    expect(await after.countOffline()).toEqual({ subsCount: 1, clientsCount: 1 })
  })

  it('keeps at most maxQueuedPerClient messages per session, drops newer ones (reported) and stores none of them', async () => {
    const drops: Array<[string, number]> = []
    const before = await start(undefined, { maxQueuedPerClient: 2, onQueueFull: (id, n) => drops.push([id, n]) })
    const publish = (n: number): BrokerPacket => ({
      cmd: 'publish', topic: 't', payload: Buffer.from(`m${n}`), qos: 1, retain: false, dup: false, brokerId: 'broker-a', brokerCounter: n,
    })
    for (const n of [1, 2, 3, 4]) await before.outgoingEnqueueCombi([{ clientId: 'full' }, ...(n === 1 ? [{ clientId: 'other' }] : [])], publish(n))
    expect(drops).toEqual([['full', 1], ['full', 2]])
    // A dropped message still goes to an online client, unstored: its messageId update is not an error.
    await expect(before.outgoingUpdate({ id: 'full' }, { ...publish(3), messageId: 3 })).resolves.toBeUndefined()
    await expect(before.outgoingUpdate({ id: 'other' }, { ...publish(9), messageId: 9 })).rejects.toThrow('no such packet')

    const after = await start({ id: 'broker-b', counter: 0 })
    expect(((await drain(after.outgoingStream({ id: 'full' }))) as BrokerPacket[]).map((p) => p.payload?.toString())).toEqual(['m1', 'm2'])
  })

  it('restores outgoing queues in order with messageIds, PUBREL replacements and clears', async () => {
    const before = await start()
    const publish = (n: number): BrokerPacket => ({
      cmd: 'publish', topic: 't', payload: Buffer.from(`m${n}`), qos: 2, retain: false, dup: false, brokerId: 'broker-a', brokerCounter: n,
    })
    for (const n of [1, 2, 3, 4]) await before.outgoingEnqueueCombi([{ clientId: 'c1' }, { clientId: 'c2' }], publish(n))
    await before.outgoingUpdate({ id: 'c1' }, { ...publish(1), messageId: 11, writeCallback: () => {} })
    await before.outgoingUpdate({ id: 'c1' }, { ...publish(2), messageId: 12 })
    await before.outgoingUpdate({ id: 'c1' }, { cmd: 'pubrel', messageId: 12 })
    await before.outgoingUpdate({ id: 'c1' }, { ...publish(3), messageId: 13 })
    await before.outgoingClearMessageId({ id: 'c1' }, { messageId: 11 })

    const after = await start()
    const c1 = (await drain(after.outgoingStream({ id: 'c1' }))) as BrokerPacket[]
    expect(c1.map((p) => [p.cmd, p.messageId, p.payload?.toString()])).toEqual([
      ['pubrel', 12, undefined],
      ['publish', 13, 'm3'],
      ['publish', undefined, 'm4'],
    ])
    expect(c1[1]).not.toHaveProperty('writeCallback')
    const c2 = (await drain(after.outgoingStream({ id: 'c2' }))) as BrokerPacket[]
    expect(c2.map((p) => p.payload?.toString())).toEqual(['m1', 'm2', 'm3', 'm4'])
    expect(c2[0]).toMatchObject({ brokerId: 'broker-a', brokerCounter: 1, qos: 2, topic: 't' })

    await after.outgoingUpdate({ id: 'c2' }, { ...publish(1), messageId: 21 })
    expect(await after.outgoingClearMessageId({ id: 'c2' }, { messageId: 21 })).toMatchObject({ brokerCounter: 1 })
    const again = await start({ id: 'broker-b', counter: 0 })
    expect(((await drain(again.outgoingStream({ id: 'c2' }))) as BrokerPacket[]).map((p) => p.brokerCounter)).toEqual([2, 3, 4])
  })

  it('moves a reused broker id past the queued brokerCounters', async () => {
    const before = await start()
    await before.outgoingEnqueue({ clientId: 'c1' }, { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 1, brokerId: 'broker-a', brokerCounter: 40 })
    const sameId = { id: 'broker-a', counter: 0 }
    await start(sameId)
    expect(sameId.counter).toBe(40)
    const otherId = { id: 'broker-b', counter: 0 }
    await start(otherId)
    expect(otherId.counter).toBe(0)
  })

  it('restores inbound QoS 2 packets awaiting PUBREL', async () => {
    const before = await start()
    const packet = (messageId: number): BrokerPacket => ({ cmd: 'publish', topic: 'in', payload: Buffer.from(`p${messageId}`), qos: 2, messageId })
    await before.incomingStorePacket({ id: 'c1' }, packet(1))
    await before.incomingStorePacket({ id: 'c1' }, packet(2))
    await before.incomingDelPacket({ id: 'c1' }, packet(1))
    await before.incomingStorePacket({ id: 'c2' }, packet(3))
    await before.cleanIncoming({ id: 'c2' })

    const after = await start()
    const kept = await after.incomingGetPacket({ id: 'c1' }, { messageId: 2 })
    expect(kept).toMatchObject({ topic: 'in', qos: 2, messageId: 2 })
    expect(kept.payload?.toString()).toBe('p2')
    await expect(after.incomingGetPacket({ id: 'c1' }, { messageId: 1 })).rejects.toThrow('no such packet')
    await expect(after.incomingGetPacket({ id: 'c2' }, { messageId: 3 })).rejects.toThrow('no such packet')
  })

  it('restores wills with the id of the broker that stored them', async () => {
    const before = await start()
    await before.putWill({ id: 'c1' }, { topic: 'dead/c1', payload: Buffer.from('bye'), qos: 1, retain: false })
    await before.putWill({ id: 'c2' }, { topic: 'dead/c2', payload: Buffer.from('bye'), qos: 0, retain: false })
    await before.delWill({ id: 'c2' })

    const after = await start({ id: 'broker-b', counter: 0 })
    expect(await after.getWill({ id: 'c1' })).toMatchObject({ clientId: 'c1', brokerId: 'broker-a', topic: 'dead/c1' })
    expect(await after.getWill({ id: 'c2' })).toBeUndefined()
    const orphaned = (await drain(after.streamWill({ 'broker-b': Date.now() }))) as BrokerPacket[]
    expect(orphaned.map((w) => w.topic)).toEqual(['dead/c1'])
    expect(await drain(after.streamWill({ 'broker-a': Date.now() }))).toEqual([])
  })

  it('is durable without closing the connection that wrote', async () => {
    const before = await start()
    await before.outgoingEnqueue({ clientId: 'c1' }, { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 1, brokerId: 'broker-a', brokerCounter: 1 })
    const reader = openDatabase(file)
    open.push(reader)
    expect(reader.prepare('SELECT COUNT(*) AS n FROM broker_outgoing').get()).toEqual({ n: 1 })
  })

  it('refuses a second setup, which would load the tables twice', async () => {
    const persistence = await start()
    await expect(persistence.setup({ id: 'again', counter: 0 })).rejects.toThrow('already set up')
  })
})
