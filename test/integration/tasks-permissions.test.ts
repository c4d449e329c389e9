import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bundle, echoBody, manifest, taskHarness, type TaskHarness } from '../helpers/tasks.js'

/** Runs one capability per call and reports what it threw, as a task author would see it. */
const probeBody = `
const attempt = async (fn) => {
  try { return { ok: true, value: await fn() } } catch (e) { return { ok: false, code: e.code, message: e.message } }
}
exports.handler = async (event, ctx) => {
  const p = event.payload
  switch (p.op) {
    case 'publish': return attempt(() => ctx.publish(p.topic, p.body ?? 'x'))
    case 'update': return attempt(() => ctx.shadow.update(p.thing, { state: { desired: { on: true } } }))
    case 'get': return attempt(() => ctx.shadow.get(p.thing))
    case 'devices': return attempt(() => ctx.devices())
    case 'invoke': return attempt(() => ctx.invoke(p.target, 'ping'))
  }
}`

const device = (name: string, room: string) => ({ name, attributes: { room }, policies: [], certFingerprint: null, tokenHash: null, createdAt: 0 })

describe('task permissions inside a real sandbox', () => {
  let h: TaskHarness
  const published: string[] = []
  type Outcome = { ok: boolean; code?: string; message?: string; value?: unknown }
  const probe = (payload: Record<string, unknown>): Promise<Outcome> => h.service.invoke('probe', payload) as Promise<Outcome>

  beforeAll(async () => {
    h = await taskHarness()
    h.devices.add(device('lamp-1', 'kitchen'))
    h.devices.add(device('lamp-2', 'hall'))
    h.devices.add(device('lamp-3', 'cellar'))
    await h.broker.subscribe('#', (topic) => published.push(topic))
    await h.service.install(bundle(manifest('helper'), echoBody))
    await h.service.install(bundle(manifest('other'), echoBody))
    await h.service.install(bundle(manifest('probe', {
      permissions: {
        publish: ['out/#', '$aws/things/lamp-1/shadow/#', '#'],
        devices: ['lamp-1', 'ghost-9', { attributes: { room: 'hall' } }],
        invoke: ['helper', 'probe'],
      },
    }), probeBody))
  })
  afterAll(async () => {
    await h.close()
  })

  it('publishes to a granted topic', async () => {
    expect(await probe({ op: 'publish', topic: 'out/a' })).toMatchObject({ ok: true })
    expect(published).toContain('out/a')
  })

  it.each([
    ['a shadow reply topic', '$aws/things/lamp-1/shadow/update/accepted', 'shadow reply topics are published only by the coordinator'],
    ['a reserved $SYS topic', '$SYS/broker/uptime', 'reserved'],
    ['a reserved $coord topic', '$coord/deploy', 'reserved'],
  ])('refuses to publish to %s', async (_what, topic, reason) => {
    const out = await probe({ op: 'publish', topic })
    expect(out).toMatchObject({ ok: false, code: 'COORD_TASK_PERMISSION_DENIED' })
    expect(out.message).toContain(`may not publish to "${topic}"`)
    expect(out.message).toContain(reason)
    expect(published).not.toContain(topic)
  })

  it('refuses a publish larger than the payload cap with a clear error', async () => {
    const out = await probe({ op: 'publish', topic: 'out/big', body: 'x'.repeat(300 * 1024) })
    expect(out).toMatchObject({ ok: false, code: 'COORD_TASK_PAYLOAD_TOO_LARGE', message: expect.stringContaining('limit is 262144 bytes') })
  })

  it('updates granted devices: by name, unregistered by name, and by attribute', async () => {
    for (const thing of ['lamp-1', 'ghost-9', 'lamp-2']) {
      expect(await probe({ op: 'update', thing })).toMatchObject({ ok: true, value: { status: 200 } })
    }
    expect(await probe({ op: 'get', thing: 'lamp-2' })).toMatchObject({ ok: true, value: { status: 200, body: { state: { desired: { on: true } } } } })
  })

  it('refuses a shadow update of a device not granted, and logs the refusal', async () => {
    const out = await probe({ op: 'update', thing: 'lamp-3' })
    expect(out).toMatchObject({ ok: false, code: 'COORD_TASK_PERMISSION_DENIED', message: expect.stringContaining('may not update the shadow of "lamp-3"') })
    expect((await h.shadows.get({ thingName: 'lamp-3' })).status).toBe(404)
    const refusal = h.service.logs('probe', 50).find((e) => e.msg === 'permission denied' && e.fields?.['target'] === 'lamp-3')
    expect(refusal).toMatchObject({ source: 'lifecycle', level: 'warn', fields: { action: 'update the shadow of' } })
  })

  it('lists the devices it may manage', async () => {
    const out = await probe({ op: 'devices' })
    expect(out.value).toEqual([{ name: 'lamp-1', attributes: { room: 'kitchen' } }, { name: 'lamp-2', attributes: { room: 'hall' } }, { name: 'ghost-9', attributes: {} }])
  })

  it('invokes a granted task and refuses others and itself', async () => {
    expect(await probe({ op: 'invoke', target: 'helper' })).toMatchObject({ ok: true, value: { payload: 'ping' } })
    expect(await probe({ op: 'invoke', target: 'other' })).toMatchObject({ ok: false, code: 'COORD_TASK_PERMISSION_DENIED', message: expect.stringContaining('may not invoke "other"') })
    expect(await probe({ op: 'invoke', target: 'probe' })).toMatchObject({ ok: false, code: 'COORD_TASK_PERMISSION_DENIED', message: expect.stringContaining('cannot invoke itself') })
  })
})
