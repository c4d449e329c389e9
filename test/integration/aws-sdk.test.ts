/**
 * Interoperability with the unmodified AWS IoT Device SDK for JavaScript v1 (`aws-iot-device-sdk`,
 * class `thingShadow`) over mutual TLS, with credentials issued by `edge-coordinator devices add`.
 *
 * Not covered: the SDK over the coordinator's WebSocket listener. The SDK's only WebSocket modes are
 * 'wss' (TLS plus AWS SigV4-signed URLs, needing AWS credentials and a region) and
 * 'wss-custom-auth' (TLS plus an AWS custom authorizer); it has no plain `ws://` mode and the
 * coordinator's WebSocket listener is plain ws without SigV4, so there is no meaningful way to point
 * the unmodified SDK at it. MQTT over WebSocket is covered with MQTT.js in mtls.test.ts.
 */
import type { EventEmitter } from 'node:events'
import awsIot from 'aws-iot-device-sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { addDevice, type IssuedDevice } from '../helpers/devices-cli.js'
import { tempDir } from '../helpers/tmp.js'

const THING = 'sdk-thermostat-1'
const EVENT_TIMEOUT_MS = 8_000

type StateObject = awsIot.StateObject

interface Status {
  stat: 'accepted' | 'rejected'
  clientToken: string
  state: StateObject
}

/** Resolves with the arguments of the first `event` that satisfies `accept`, or rejects after a timeout. */
function nextEvent<A extends unknown[]>(emitter: EventEmitter, event: string, accept: (...args: A) => boolean = () => true, timeoutMs = EVENT_TIMEOUT_MS): Promise<A> {
  return new Promise((resolve, reject) => {
    const onEvent = (...args: unknown[]): void => {
      if (!accept(...(args as A))) return
      clearTimeout(timer)
      emitter.off(event, onEvent)
      resolve(args as A)
    }
    const timer = setTimeout(() => {
      emitter.off(event, onEvent)
      reject(new Error(`no '${event}' event within ${timeoutMs} ms`))
    }, timeoutMs)
    emitter.on(event, onEvent)
  })
}

/**
 * Runs one shadow operation the way SDK applications do: remember the returned clientToken and wait
 * for the 'status' event carrying it. An SDK 'timeout' for that token (no reply with a matching
 * clientToken, or the reply was dropped as stale) fails the operation with a clear message.
 */
function operation(device: awsIot.ThingShadow, start: () => string | null): Promise<Status> {
  return new Promise((resolve, reject) => {
    let token: string | null = null
    const cleanup = (): void => {
      device.off('status', onStatus)
      device.off('timeout', onTimeout)
    }
    const onStatus = (thing: string, stat: 'accepted' | 'rejected', clientToken: string, state: StateObject): void => {
      if (thing !== THING || clientToken !== token) return
      cleanup()
      resolve({ stat, clientToken, state })
    }
    const onTimeout = (thing: string, clientToken: string): void => {
      if (thing !== THING || clientToken !== token) return
      cleanup()
      reject(new Error(`SDK operation ${clientToken} timed out: no accepted/rejected reply it could match (clientToken/version)`))
    }
    device.on('status', onStatus)
    device.on('timeout', onTimeout)
    token = start()
    if (token === null) {
      cleanup()
      reject(new Error('the SDK refused to start the operation (another one is still pending)'))
    }
  })
}

function register(device: awsIot.ThingShadow, options: awsIot.RegisterOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    device.register(THING, options, (err, failedTopics) => {
      if (err !== undefined && err !== null) reject(new Error(`register failed: ${String(err)} ${JSON.stringify(failedTopics)}`))
      else resolve()
    })
  })
}

describe('AWS IoT Device SDK v1 thingShadow over mutual TLS', () => {
  const tmp = tempDir('edge-coord-sdk-')
  let creds: IssuedDevice
  let run: RunningCoordinator
  let device: awsIot.ThingShadow
  const errors: Error[] = []

  /** A change made by another client: the coordinator's HTTP API (AWS data-plane REST shape). */
  async function httpUpdate(body: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`${run.httpUrl}/things/${THING}/shadow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const json = (await res.json()) as Record<string, unknown>
    expect(res.status, JSON.stringify(json)).toBe(200)
    return json
  }

  /** The SDK exactly as an application configures it for mutual TLS; resolves on its first 'connect'. */
  async function connectDevice(): Promise<awsIot.ThingShadow> {
    const d = new awsIot.thingShadow({
      protocol: 'mqtts',
      // By name, as devices do: the SDK copies its host into the TLS server name, and Node 26 refuses an IP there.
      host: 'localhost',
      port: run.endpoints.mqtts.port,
      clientId: THING,
      keyPath: creds.keyPath,
      certPath: creds.certPath,
      caPath: creds.caPath,
    }, { operationTimeout: EVENT_TIMEOUT_MS })
    d.on('error', (err) => errors.push(err))
    // The SDK reconnects forever on failure, so a refused connection never rejects by itself.
    await nextEvent(d, 'connect', () => true, 10_000).catch((err: Error) => {
      d.end(true)
      throw new Error(`${err.message}; errors: ${errors.map((e) => e.message).join('; ')}`)
    })
    return d
  }

  const endDevice = (d: awsIot.ThingShadow): Promise<void> => new Promise((resolve) => d.end(true, () => resolve()))

  beforeAll(async () => {
    creds = await addDevice(tmp.dir, THING)
    run = await startCoordinator({ shadow: { maxRequestsPerSecondPerThing: 0 } }, { dataDir: tmp.dir })
    device = await connectDevice()
  })

  afterAll(async () => {
    if (device !== undefined) await endDevice(device)
    await run?.stop()
    tmp.remove()
  })

  it('registers the thing: all seven shadow reply subscriptions (one SUBSCRIBE) are granted', async () => {
    await register(device)
    expect(errors).toEqual([])
  })

  it('update() is accepted with the matching clientToken and version 1', async () => {
    const r = await operation(device, () => device.update(THING, { state: { reported: { temperature: 21, mode: 'heat' } } }))
    expect(r.stat).toBe('accepted')
    expect(r.clientToken).toMatch(new RegExp(`^${THING}-\\d+$`))
    expect(r.state).toMatchObject({ state: { reported: { temperature: 21, mode: 'heat' } }, version: 1 })
    expect(r.state['metadata']).toMatchObject({ reported: { temperature: { timestamp: expect.any(Number) } } })
  })

  it('get() is accepted with the stored state (the request carries clientToken and version)', async () => {
    const r = await operation(device, () => device.get(THING))
    expect(r.stat).toBe('accepted')
    expect(r.state).toMatchObject({ state: { reported: { temperature: 21, mode: 'heat' } }, version: 1 })
    expect((r.state['state'] as Record<string, unknown>)['delta']).toBeUndefined()
  })

  it("another client's desired change reaches the SDK as 'delta' and 'foreignStateChange'", async () => {
    const delta = nextEvent<[string, StateObject]>(device, 'delta', (thing) => thing === THING)
    const foreign = nextEvent<[string, string, StateObject]>(device, 'foreignStateChange', (thing) => thing === THING)
    const accepted = await httpUpdate({ state: { desired: { temperature: 23 } } })
    expect(accepted).toMatchObject({ version: 2 })
    const [, deltaState] = await delta
    expect(deltaState).toMatchObject({ state: { temperature: 23 }, version: 2 })
    expect(deltaState['metadata']).toMatchObject({ temperature: { timestamp: expect.any(Number) } })
    const [, op, foreignState] = await foreign
    expect(op).toBe('update')
    expect(foreignState).toMatchObject({ state: { desired: { temperature: 23 } }, version: 2 })
  })

  it('an update sent with the SDK-tracked version (optimistic locking on) is accepted', async () => {
    const r = await operation(device, () => device.update(THING, { state: { reported: { temperature: 23 } } }))
    expect(r).toMatchObject({ stat: 'accepted', state: { version: 3 } })
    const g = await operation(device, () => device.get(THING))
    expect(g.state).toMatchObject({ state: { desired: { temperature: 23 }, reported: { temperature: 23, mode: 'heat' } }, version: 3 })
    expect((g.state['state'] as Record<string, unknown>)['delta']).toBeUndefined()
  })

  it('delete() is accepted, after which get() is rejected with 404', async () => {
    const del = await operation(device, () => device.delete(THING))
    expect(del).toMatchObject({ stat: 'accepted', state: { version: 3 } })
    const get = await operation(device, () => device.get(THING))
    expect(get.stat).toBe('rejected')
    expect(get.state).toMatchObject({ code: 404, message: `No shadow exists with name: '${THING}'` })
  })

  it('re-creating after delete continues the version, so discardStale drops nothing', async () => {
    // The SDK still holds version 3 and sends it; a coordinator restarting at 1 would either 409 it
    // or answer with version 1, which the SDK silently drops as stale (and then times out).
    const created = await operation(device, () => device.update(THING, { state: { reported: { temperature: 19 } } }))
    expect(created).toMatchObject({ stat: 'accepted', state: { state: { reported: { temperature: 19 } }, version: 4 } })
    const delta = nextEvent<[string, StateObject]>(device, 'delta', (thing) => thing === THING)
    await httpUpdate({ state: { desired: { temperature: 20 } } })
    expect((await delta)[1]).toMatchObject({ state: { temperature: 20 }, version: 5 })
    const g = await operation(device, () => device.get(THING))
    expect(g.state).toMatchObject({ state: { desired: { temperature: 20 }, reported: { temperature: 19 }, delta: { temperature: 20 } }, version: 5 })
  })

  it('a second registration that missed a foreign update sends a stale version and is rejected 409', async () => {
    // A fresh SDK instance (same thing name and certificate, so it replaces the first connection)
    // without persistent subscriptions or deltas: it only sees replies to its own requests, so it
    // does not learn about other clients' updates.
    await endDevice(device)
    device = await connectDevice()
    await register(device, { persistentSubscribe: false, ignoreDeltas: true })
    const g = await operation(device, () => device.get(THING))
    expect(g).toMatchObject({ stat: 'accepted', state: { version: 5 } })
    await httpUpdate({ state: { reported: { temperature: 20 } } }) // version 6, unseen by the SDK
    const stale = await operation(device, () => device.update(THING, { state: { reported: { mode: 'cool' } } }))
    expect(stale.stat).toBe('rejected')
    expect(stale.state).toMatchObject({ code: 409, message: 'Version conflict' })
    // The documented recovery: get() to resync the version, then retry.
    expect(await operation(device, () => device.get(THING))).toMatchObject({ stat: 'accepted', state: { version: 6 } })
    const retried = await operation(device, () => device.update(THING, { state: { reported: { mode: 'cool' } } }))
    expect(retried).toMatchObject({ stat: 'accepted', state: { state: { reported: { mode: 'cool' } }, version: 7 } })
  })

  it('back-to-back get() calls without persistent subscriptions each get their reply', async () => {
    // With persistentSubscribe:false the SDK subscribes to get/accepted|rejected before each get()
    // and unsubscribes (without waiting for UNSUBACK) when the reply arrives.
    for (let i = 0; i < 3; i++) {
      const r = await operation(device, () => device.get(THING))
      expect(r).toMatchObject({ stat: 'accepted', state: { version: 7 } })
    }
  })

  it.skip('unregister() then register() and get() gets the reply (UNSUBSCRIBE and SUBSCRIBE of the same topics back to back)', async () => {
    // unregister() of a persistent registration sends UNSUBSCRIBE for the seven reply topics and
    // does not wait for the UNSUBACK; the get() right after sends SUBSCRIBE(get/accepted|rejected).
    // Both packets reach the broker together. The SDK relies on the broker applying one
    // connection's packets in order, ending subscribed (as a sequential broker like mosquitto
    // does). KNOWN BUG: aedes
    // handles all packets of one read concurrently, the UNSUBSCRIBE completes after the SUBSCRIBE
    // and removes the subscription that the SUBACK just granted, so the reply is never delivered
    // and the SDK times out (moscajs/aedes#469).
    device.unregister(THING)
    await register(device)
    device.unregister(THING)
    await register(device, { persistentSubscribe: false, ignoreDeltas: true })
    expect(await operation(device, () => device.get(THING))).toMatchObject({ stat: 'accepted', state: { version: 7 } })
    expect(errors).toEqual([])
  })
})
