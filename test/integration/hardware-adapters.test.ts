import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeBundle, type TaskManifestInput } from '../../coordinator/protocol/index.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { tempDir } from '../helpers/tmp.js'
import { BOARDS, writeFakeRoot } from '../unit/hardware/fake-root.js'

/** Hand-written task code in the shape esbuild emits for an IIFE bundle with globalName __edgeTask. */
const RELAY_TASK = `var __edgeTask = (() => {
  const exports = {};
  exports.handler = async (event, ctx) => {
    const reply = await ctx.shadow.update(event.payload.thing, { state: { desired: { on: event.payload.on } } });
    return reply.status;
  };
  return exports;
})()`

const taskBundle = (name: string, devices: string[]): Uint8Array => {
  const manifest: TaskManifestInput = { name, version: '1.0.0', entry: 'index.js', triggers: [{ type: 'invoke' }], permissions: { devices } }
  return encodeBundle({ manifestText: JSON.stringify(manifest), code: RELAY_TASK })
}

describe('hardware adapters in a running coordinator (simulated backends)', () => {
  const tmp = tempDir('edge-hw-int-')
  let c: RunningCoordinator
  beforeAll(async () => {
    const root = writeFakeRoot(join(tmp.dir, 'root'), BOARDS.pi4.files, [...BOARDS.pi4.devices])
    c = await startCoordinator({
      tasks: { allowUnsigned: true },
      hardware: {
        root,
        gpio: [{ thing: 'relay-1', chip: 'gpiochip0', line: 17, direction: 'out', backend: 'simulated' }],
        serial: [{ thing: 'meter-1', path: '/dev/ttyUSB0', baud: 9600, parser: 'kv', backend: 'simulated', minIntervalMs: 0 }],
      },
    })
  })
  afterAll(async () => {
    await c.stop()
    tmp.remove()
  })

  const api = async (path: string, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${c.httpUrl}${path}`, init)
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }
  const install = (name: string, devices: string[]): Promise<{ status: number; body: Record<string, unknown> }> =>
    api('/v1/tasks', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: taskBundle(name, devices) })
  const invoke = (name: string, payload: unknown): Promise<{ status: number; body: Record<string, unknown> }> =>
    api(`/v1/tasks/${name}/invoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) })
  const reported = async (thing: string): Promise<Record<string, unknown> | undefined> =>
    ((await api(`/things/${thing}/shadow`)).body['state'] as { reported?: Record<string, unknown> } | undefined)?.reported

  it('advertises the board, its capability tags, the limits in force and the adapters on GET /v1/info', async () => {
    const { status, body } = await api('/v1/info')
    expect(status).toBe(200)
    expect(body['board']).toEqual({ profile: 'pi4', detectedProfile: 'pi4', model: 'Raspberry Pi 4 Model B Rev 1.4', memoryMb: 4096, arch: expect.any(String) })
    expect(body['capabilities']).toEqual(expect.arrayContaining(['board=pi4', 'memory=4gb', 'gpio', 'i2c', 'serial', 'camera']))
    expect(c.coordinator.capabilities()).toEqual(body['capabilities'])
    expect(body['limits']).toMatchObject({ tasks: { maxConcurrentCalls: 8, maxTasks: 64, maxMemoryMb: 512 } })
    expect(body['hardware']).toEqual([
      { thing: 'relay-1', kind: 'gpio', state: 'running', lastError: null, retries: 0 },
      { thing: 'meter-1', kind: 'serial', state: 'running', lastError: null, retries: 0 },
    ])
  })

  it('lets a task granted the relay switch it through its shadow: desired.on -> line high -> reported', async () => {
    expect((await install('relay-control', ['relay-1'])).status).toBe(201)
    const gpio = c.coordinator.hardware!.runtime.backends.simulatedGpio
    expect(gpio.level('gpiochip0', 17)).toBe(false)
    expect(await invoke('relay-control', { thing: 'relay-1', on: true })).toEqual({ status: 200, body: { result: 200 } })
    await expect.poll(() => gpio.level('gpiochip0', 17), { timeout: 3000 }).toBe(true)
    await expect.poll(async () => (await reported('relay-1'))?.['on'], { timeout: 3000 }).toBe(true)
    await invoke('relay-control', { thing: 'relay-1', on: false })
    await expect.poll(() => gpio.level('gpiochip0', 17), { timeout: 3000 }).toBe(false)
  })

  it('keeps hardware away from a task whose manifest does not grant it', async () => {
    expect((await install('other-task', ['lamp-7'])).status).toBe(201)
    const refused = await invoke('other-task', { thing: 'relay-1', on: true })
    expect(refused.status).toBe(500)
    expect(String(refused.body['message'])).toMatch(/may not update the shadow of "relay-1"/)
    expect(c.coordinator.hardware!.runtime.backends.simulatedGpio.level('gpiochip0', 17)).toBe(false)
  })

  it("puts a serial sensor's readings in its shadow", async () => {
    await expect.poll(async () => typeof (await reported('meter-1'))?.['T'], { timeout: 3000 }).toBe('number')
    const port = c.coordinator.hardware!.runtime.backends.simulatedSerial.port('/dev/ttyUSB0')
    // A key the simulated sensor never prints, so its own next reading cannot race the check.
    port?.emit('V=230.1')
    await expect.poll(async () => (await reported('meter-1'))?.['V'], { timeout: 3000 }).toBe(230.1)
  })
})
