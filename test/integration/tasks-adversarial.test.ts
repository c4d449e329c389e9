/**
 * Hostile bundles pushed through the real local API of the daemon (a child process). Each attack
 * must end in a clear error (HTTP status, code, a message naming the problem) while a well-behaved
 * task keeps answering, during the attack and after it; a refused install must leave every
 * installed task exactly as it was.
 */
import { createPrivateKey, createPublicKey, sign } from 'node:crypto'
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runInNewContext } from 'node:vm'
import { Encoder } from 'cbor-x'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bundleDigest, keyId, type TaskInfo, type TaskManifestInput } from '../../coordinator/protocol/index.js'
import type { HostLimits, LogEntry } from '../../coordinator/tasks/index.js'
import { startDaemon, type Daemon } from '../helpers/daemon.js'
import { edgeTaskOk } from '../helpers/edge-task.js'
import { connect } from '../helpers/mqtt.js'
import { bundle, echoBody, ed25519Keys, eventually, iife, manifest, taskHarness, type TaskHarness } from '../helpers/tasks.js'
import { tempDir } from '../helpers/tmp.js'

const MAX_BUNDLE_BYTES = 256 * 1024
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true })

interface Reply {
  status: number
  body: Record<string, unknown>
}

interface Attack {
  what: string
  name: string
  body: string
  extra?: Partial<TaskManifestInput>
  /** How many calls to make; each must fail the same way. */
  calls?: number
  status: number
  code: string
  message: RegExp
}

const limits = { memoryMb: 16, cpuMsPerCall: 100, wallMsPerCall: 5000 }

const ATTACKS: Attack[] = [
  { what: 'an infinite loop in the handler', name: 'spin', body: 'exports.handler = async () => { for (;;) {} }', status: 500, code: 'COORD_SANDBOX_CPU_LIMIT', message: /^task spin@1\.0\.0: handler "handler" exceeded its CPU time limit of 100 ms$/ },
  { what: 'an endless chain of awaits', name: 'spin-async', body: 'exports.handler = async () => { for (;;) await null }', status: 500, code: 'COORD_SANDBOX_CPU_LIMIT', message: /exceeded its CPU time limit of 100 ms$/ },
  {
    what: 'a handler blocked in the isolate past its wall time', name: 'sleeper', extra: { limits: { memoryMb: 16, cpuMsPerCall: 100, wallMsPerCall: 300 } },
    body: 'exports.handler = async () => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000) }',
    status: 504, code: 'COORD_SANDBOX_TIMEOUT', message: /^task sleeper@1\.0\.0: handler "handler" exceeded its wall time limit of 300 ms$/,
  },
  {
    what: 'a huge result', name: 'hoarder', extra: { limits: { memoryMb: 64, cpuMsPerCall: 2000, wallMsPerCall: 5000 } },
    body: "exports.handler = async () => 'x'.repeat(32 * 1024 * 1024)",
    status: 413, code: 'COORD_TASK_LIMIT', message: /^task hoarder@1\.0\.0: the result of handler "handler" is larger than 1048576 bytes \(tasks\.maxBridgeBytes\); refused before copying$/,
  },
  {
    what: 'a memory bomb', name: 'bomb', calls: 2, extra: { limits: { memoryMb: 16, cpuMsPerCall: 5000, wallMsPerCall: 10_000 } },
    body: 'exports.handler = async () => { const hoard = []; for (;;) hoard.push(new Array(1e5).fill(hoard.length)) }',
    status: 500, code: 'COORD_SANDBOX_MEMORY', message: /^task bomb@1\.0\.0 exceeded its memory limit of 16 MB; its isolate was disposed$/,
  },
  {
    what: 'a memory bomb outside the V8 heap (WebAssembly.Memory)', name: 'wasm-bomb',
    body: 'exports.handler = async () => { const m = new WebAssembly.Memory({ initial: 1, maximum: 65536 }); for (let i = 0; i < 100; i++) m.grow(160); return m.buffer.byteLength }',
    status: 500, code: 'COORD_SANDBOX_THREW', message: /threw ReferenceError: WebAssembly is not defined$/,
  },
  { what: 'deep recursion', name: 'recursion', body: 'exports.handler = async () => { const down = (n) => down(n + 1) + 1; return down(0) }', status: 500, code: 'COORD_SANDBOX_THREW', message: /threw RangeError: Maximum call stack size exceeded$/ },
  { what: 'a throwing handler', name: 'thrower', body: "exports.handler = async () => { throw new TypeError('sabotage') }", status: 500, code: 'COORD_SANDBOX_THREW', message: /^task thrower@1\.0\.0: handler "handler" threw TypeError: sabotage$/ },
  {
    what: 'a publish over the size cap', name: 'big-text', extra: { permissions: { publish: ['out/#'] } },
    body: "exports.handler = async (event, ctx) => { await ctx.publish('out/big', 'x'.repeat(300000)) }",
    status: 500, code: 'COORD_SANDBOX_THREW', message: /threw Error: publish payload for "out\/big" is 300000 bytes; the limit is 262144 bytes$/,
  },
  {
    what: 'an 8 MB binary publish', name: 'big-bytes', extra: { permissions: { publish: ['out/#'] } },
    body: "exports.handler = async (event, ctx) => { await ctx.publish('out/big', new Uint8Array(8e6)) }",
    status: 500, code: 'COORD_SANDBOX_THREW', message: /threw Error: a publish request is larger than 1048576 bytes \(tasks\.maxBridgeBytes\); refused before copying$/,
  },
  {
    what: 'a publish outside its permissions', name: 'trespasser', extra: { permissions: { publish: ['out/#'] } },
    body: "exports.handler = async (event, ctx) => { await ctx.publish('things/lamp-1/cmd', { on: true }) }",
    status: 500, code: 'COORD_SANDBOX_THREW', message: /threw Error: task "trespasser" may not publish to "things\/lamp-1\/cmd"/,
  },
  {
    what: 'a publish to a shadow reply topic', name: 'impostor', extra: { permissions: { publish: ['$aws/things/+/shadow/#'] } },
    body: "exports.handler = async (event, ctx) => { await ctx.publish('$aws/things/lamp-1/shadow/update/accepted', { state: { desired: { on: true } } }) }",
    status: 500, code: 'COORD_SANDBOX_THREW', message: /may not publish to "\$aws\/things\/lamp-1\/shadow\/update\/accepted": .*shadow reply topics are published only by the coordinator$/,
  },
  { what: 'reaching for process', name: 'env-thief', body: 'exports.handler = async () => process.env', status: 500, code: 'COORD_SANDBOX_THREW', message: /threw ReferenceError: process is not defined$/ },
  { what: 'reaching for require', name: 'fs-thief', body: "exports.handler = async () => require('fs').readFileSync('/etc/passwd', 'utf8')", status: 500, code: 'COORD_SANDBOX_THREW', message: /threw ReferenceError: require is not defined$/ },
  {
    what: 'the Function constructor of globalThis', name: 'realm-hopper', body: "exports.handler = async () => globalThis.constructor.constructor('return process')().pid",
    status: 500, code: 'COORD_SANDBOX_THREW', message: /threw ReferenceError: process is not defined$/,
  },
]


/**
 * Calls the good task back to back (`call(n)` answers the payload it got back, and the reply to
 * report) while `attack` runs; every call must have answered its own payload.
 */
async function servingWhile<T>(call: (n: number) => Promise<{ reply: unknown; payload: unknown }>, attack: () => Promise<T>): Promise<T> {
  let attacking = true
  let served = 0
  const failed: unknown[] = []
  const serving = (async () => {
    while (attacking) {
      const { reply, payload } = await call(served)
      if (payload !== served) failed.push(reply)
      served++
    }
  })()
  try {
    return await attack()
  } finally {
    attacking = false
    await serving
    expect(failed).toEqual([])
    expect(served).toBeGreaterThan(0)
  }
}

describe('adversarial bundles through the local API', () => {
  const tmp = tempDir('edge-adversarial-')
  const dataDir = join(tmp.dir, 'data')
  const trusted = ed25519Keys()
  const stranger = ed25519Keys()
  let daemon: Daemon
  let api: string
  let lamp: MqttClient
  const lampSaw: string[] = []
  const outSaw: string[] = []

  const post = async (path: string, body: Uint8Array | string): Promise<Reply> => {
    const res = await fetch(`${api}${path}`, { method: 'POST', headers: { 'content-type': path === '/v1/tasks' ? 'application/octet-stream' : 'application/json' }, body })
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }
  const invoke = (name: string, payload: unknown): Promise<Reply> => post(`/v1/tasks/${name}/invoke`, JSON.stringify(payload))
  const signed = (m: TaskManifestInput, body: string): Uint8Array => bundle(m, body, trusted)
  const installed = async (): Promise<Array<Pick<TaskInfo, 'name' | 'version' | 'digest' | 'state' | 'installedAt'>>> => {
    const { tasks } = (await (await fetch(`${api}/v1/tasks`)).json()) as { tasks: TaskInfo[] }
    return tasks.map(({ name, version, digest, state, installedAt }) => ({ name, version, digest, state, installedAt }))
  }

  /**
   * Runs `attack` while the good task is called back to back; every call must succeed, during the
   * attack and after it.
   */
  async function whileServing<T>(attack: () => Promise<T>): Promise<T> {
    const payload = async (n: number): Promise<{ reply: Reply; payload: unknown }> => {
      const reply = await invoke('good', n)
      return { reply, payload: reply.status === 200 ? (reply.body['result'] as { payload?: unknown } | undefined)?.payload : undefined }
    }
    try {
      return await servingWhile(payload, attack)
    } finally {
      expect(await invoke('good', 'after')).toEqual({ status: 200, body: { result: { version: '1.0.0', payload: 'after' } } })
    }
  }

  beforeAll(async () => {
    const config = {
      // Eight global call slots whatever the board, so one task's share (tasks.caps.maxConcurrent: half) is 4.
      tasks: { trustedKeys: [trusted.publicKeyPem], allowUnsigned: false, maxBundleBytes: MAX_BUNDLE_BYTES, maxConcurrentCalls: 8 },
      auth: { anonymousPolicies: ['observer'] },
      policies: [{ name: 'observer', statements: [{ effect: 'allow', actions: ['subscribe'], resources: ['out/#'] }] }],
    }
    writeFileSync(join(tmp.dir, 'config.json'), JSON.stringify(config))
    daemon = await startDaemon(['--config', join(tmp.dir, 'config.json'), '--data-dir', dataDir])
    api = `http://127.0.0.1:${daemon.endpoints.http.port}`
    expect((await post('/v1/tasks', signed(manifest('good', { limits: { maxConcurrent: 4 } }), echoBody))).status).toBe(201)
    // A device whose topics the attackers aim at, and a watcher of the topics they may use.
    lamp = await connect(`mqtt://127.0.0.1:${daemon.endpoints.mqtt.port}`, { clientId: 'lamp-1' })
    await lamp.subscribeAsync(['things/lamp-1/#', '$aws/things/lamp-1/shadow/update/accepted', 'out/#'], { qos: 0 })
    lamp.on('message', (topic) => (topic.startsWith('out/') ? outSaw : lampSaw).push(topic))
  }, 60_000)

  afterAll(async () => {
    await lamp?.endAsync()
    if (daemon !== undefined) {
      // Every attack was contained in its sandbox: the daemon never went down.
      expect(daemon.child.exitCode).toBeNull()
      daemon.child.kill('SIGTERM')
      expect(await daemon.exited).toBe(0)
    }
    tmp.remove()
  })

  describe('attacks at run time', () => {
    it.each(ATTACKS.map((a) => [a.what, a] as const))('contains %s', async (_what, attack) => {
      const installedReply = await post('/v1/tasks', signed(manifest(attack.name, { limits, ...attack.extra }), attack.body))
      expect(installedReply.status).toBe(201)
      const replies = await whileServing(async () => {
        const out: Reply[] = []
        for (let i = 0; i < (attack.calls ?? 1); i++) out.push(await invoke(attack.name, i))
        return out
      })
      for (const reply of replies) {
        expect(reply.status).toBe(attack.status)
        expect(reply.body['code']).toBe(attack.code)
        expect(reply.body['message']).toMatch(attack.message)
      }
      const info = (await (await fetch(`${api}/v1/tasks/${attack.name}`)).json()) as TaskInfo
      expect(info.metrics.failures).toBe(attack.calls ?? 1)
      // The operator finds each failure, with its code, in the task's log.
      const log = (await (await fetch(`${api}/v1/tasks/${attack.name}/logs?tail=100`)).text()).trim().split('\n').map((l) => JSON.parse(l) as LogEntry)
      expect(log.filter((e) => e.msg === 'call failed' && e.fields?.['code'] === attack.code)).toHaveLength(attack.calls ?? 1)
    })

    it('nothing the attackers published reached a device or a subscriber', async () => {
      await invoke('good', 'flush')
      await new Promise((resolve) => setTimeout(resolve, 200))
      expect(lampSaw).toEqual([])
      expect(outSaw).toEqual([])
    })

    it('a task that keeps looping is paused, rebuilt and finally marked broken, while the good task serves on', async () => {
      const replies = await whileServing(async () => {
        const out: Reply[] = []
        for (let i = 0; i < 5; i++) out.push(await invoke('spin', i))
        return out
      })
      // One call failed in the first test; four more end the streak of five.
      expect(replies.slice(0, 4).map((r) => r.body['code'])).toEqual(Array(4).fill('COORD_SANDBOX_CPU_LIMIT'))
      expect(replies[4]).toMatchObject({ status: 409, body: { code: 'COORD_TASK_BROKEN', message: expect.stringMatching(/^task "spin" is broken after repeated failures: COORD_SANDBOX_CPU_LIMIT: .*CPU time limit of 100 ms; start it again once fixed$/) } })
      expect((await (await fetch(`${api}/v1/tasks/spin`)).json()) as TaskInfo).toMatchObject({ state: 'broken', metrics: { failures: 5, timeouts: 5 } })
    })

    it('a long-lived task that keeps re-arming a spinning timer is marked broken, while the good task serves on', async () => {
      const body = `exports.start = async () => { setInterval(() => { setTimeout(() => { for (;;) {} }, 0) }, 50) }
        exports.handler = async () => 'alive'`
      const info = await whileServing(async () => {
        expect((await post('/v1/tasks', signed(manifest('timer-spin', { mode: 'long-lived', limits }), body))).status).toBe(201)
        const deadline = Date.now() + 10_000
        for (;;) {
          const task = (await (await fetch(`${api}/v1/tasks/timer-spin`)).json()) as TaskInfo
          if (task.state === 'broken' || Date.now() > deadline) return task
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
      })
      // Five timer callbacks at the CPU limit, no call among them: the same streak as five failed calls.
      expect(info).toMatchObject({ state: 'broken', metrics: { calls: 0, failures: 5, timeouts: 5 } })
      expect(info.lastError).toMatch(/^COORD_SANDBOX_CPU_LIMIT: task timer-spin@1\.0\.0: a timer callback exceeded its CPU time limit of 100 ms$/)
      expect(await invoke('timer-spin', null)).toMatchObject({ status: 409, body: { code: 'COORD_TASK_BROKEN' } })
    })

    it('a long-lived task with 64 zero-delay intervals goes over its timer budget and is marked broken, while the good task serves on', async () => {
      const body = `exports.start = async () => { for (let i = 0; i < 64; i++) setInterval(() => {}, 0) }
        exports.handler = async () => 'alive'`
      const info = await whileServing(async () => {
        expect((await post('/v1/tasks', signed(manifest('timer-flood', { mode: 'long-lived', limits }), body))).status).toBe(201)
        for (;;) {
          const task = (await (await fetch(`${api}/v1/tasks/timer-flood`)).json()) as TaskInfo
          if (task.state === 'broken') return task
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      })
      expect(info).toMatchObject({ state: 'broken', metrics: { calls: 0, failures: 5 } })
      expect(info.lastError).toMatch(/^COORD_TASK_LIMIT: task timer-flood@1\.0\.0: timer callbacks used \d+ ms of CPU within one second; the budget is 100 ms \(tasks\.timerCpuMsPerSecond\); timers are held until the second ends$/)
    }, 30_000)

    it('finds no host object: no Node globals, and constructors lead back into the isolate', async () => {
      const probe = `exports.handler = async (event, ctx) => {
        const attempt = async (fn) => { try { const v = await fn(); return v === undefined ? 'undefined' : typeof v } catch (e) { return e.name + ': ' + e.message } }
        const hostError = await ctx.state.set('k', () => 1).then(() => null, (e) => e)
        return {
          typeofs: [typeof process, typeof require, typeof module, typeof global, typeof Buffer, typeof fetch, typeof WebAssembly],
          viaGlobal: await attempt(() => globalThis.constructor.constructor('return process')()),
          viaCtx: await attempt(() => ctx.log.info.constructor('return process')()),
          viaTimer: await attempt(() => setTimeout.constructor.constructor('return require')()),
          viaHostError: await attempt(() => hostError.constructor.constructor('return process')()),
          thisOfSloppyFunction: await attempt(() => Function('return this')().process),
          globals: Object.getOwnPropertyNames(globalThis),
        }
      }`
      expect((await post('/v1/tasks', signed(manifest('prober', { limits }), probe))).status).toBe(201)
      const reply = await whileServing(() => invoke('prober', null))
      expect(reply.status).toBe(200)
      const found = reply.body['result'] as Record<string, unknown>
      expect(found).toMatchObject({
        typeofs: Array(7).fill('undefined'),
        viaGlobal: 'ReferenceError: process is not defined',
        viaCtx: 'ReferenceError: process is not defined',
        viaTimer: 'ReferenceError: require is not defined',
        viaHostError: 'ReferenceError: process is not defined',
        thisOfSloppyFunction: 'undefined',
      })
      // Beyond what a bare V8 context has, only the runtime's documented globals and the task's exports.
      const bare = new Set(runInNewContext('Object.getOwnPropertyNames(globalThis)') as string[])
      const extra = (found['globals'] as string[]).filter((g) => !bare.has(g)).sort()
      expect(extra).toEqual(['Atomics', 'SharedArrayBuffer', '__edgeTask', 'clearInterval', 'clearTimeout', 'setInterval', 'setTimeout'].filter((g) => !bare.has(g)).sort())
    })
  })

  describe('a slot-hog task', () => {
    // The most concurrency and CPU time a manifest can ask for, every call spinning until cut off.
    const greedy = { memoryMb: 16, maxConcurrent: 64, cpuMsPerCall: 60_000, wallMsPerCall: 600_000, queueSize: 1 }
    const hogBody = 'exports.handler = async () => { for (;;) {} }'
    const taskInfo = async (name: string): Promise<TaskInfo> => (await (await fetch(`${api}/v1/tasks/${name}`)).json()) as TaskInfo

    it('is granted the caps, not its request, and edge-task show prints both', async () => {
      const reply = await post('/v1/tasks', signed(manifest('hog', { limits: greedy }), hogBody))
      expect(reply.status).toBe(201)
      // The defaults of tasks.caps: half the global slots, 1000 ms of CPU, 30 s of wall time per call.
      const limits = { requested: greedy, granted: { memoryMb: 16, maxConcurrent: 4, cpuMsPerCall: 1000, wallMsPerCall: 30_000, queueSize: 1 } }
      expect(reply.body['limits']).toEqual(limits)
      const shown = await edgeTaskOk(['show', 'hog', '--coordinator', api], tmp.dir)
      expect(shown).toContain('  limits     memory 16 MB, cpu 1000 ms/call (requested 60000), wall 30000 ms/call (requested 600000), concurrency 4 (requested 64), queue 1\n')
      expect((JSON.parse(await edgeTaskOk(['show', 'hog', '--json', '--coordinator', api], tmp.dir)) as TaskInfo).limits).toEqual(limits)
    })

    it('holds no more than its share while the good task loses no call, and ends broken with the reason', async () => {
      let peak = 0
      const replies = await whileServing(async () => {
        const calls = Array.from({ length: 64 }, (_, i) => invoke('hog', i))
        for (;;) {
          const info = await taskInfo('hog')
          peak = Math.max(peak, info.metrics.running)
          if (info.state === 'broken') break
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
        return Promise.all(calls)
      })
      expect(peak).toBeGreaterThan(0)
      expect(peak).toBeLessThanOrEqual(4)
      // Each accepted call ran into the granted CPU limit, or was cut off beside one that did (a call
      // still spinning at its limit takes its isolate with it).
      const cpuLimited = replies.filter((r) => r.body['code'] === 'COORD_SANDBOX_CPU_LIMIT')
      expect(cpuLimited.length).toBeGreaterThan(0)
      for (const r of cpuLimited) expect(r).toMatchObject({ status: 500, body: { message: 'task hog@1.0.0: handler "handler" exceeded its CPU time limit of 1000 ms' } })
      // Beyond its granted queue the hog's calls were refused; those accepted after the streak began found it broken.
      const others = new Set(replies.filter((r) => r.body['code'] !== 'COORD_SANDBOX_CPU_LIMIT').map((r) => `${r.status} ${String(r.body['code'])}`))
      expect([...others].filter((o) => !['429 COORD_TASK_QUEUE_FULL', '409 COORD_TASK_BROKEN', '503 COORD_SANDBOX_DISPOSED'].includes(o))).toEqual([])
      expect(await taskInfo('hog')).toMatchObject({
        state: 'broken',
        lastError: 'COORD_SANDBOX_CPU_LIMIT: task hog@1.0.0: handler "handler" exceeded its CPU time limit of 1000 ms',
        metrics: { failures: 5, running: 0 },
      })
      expect(await taskInfo('good')).toMatchObject({ state: 'running', metrics: { failures: 0, rejected: 0 } })
    }, 60_000)

    it('edge-task ls counts each of its failures once', async () => {
      const table = await edgeTaskOk(['ls', '--coordinator', api], tmp.dir)
      const [header, ...rows] = table.trim().split('\n').map((line) => line.split(/\s+/))
      const row = rows.find((r) => r[0] === 'hog')
      expect(row?.[header?.indexOf('FAILED') ?? -1]).toBe('5')
      expect(row?.[header?.indexOf('STATE') ?? -1]).toBe('broken')
    })
  })

  describe('refused installs', () => {
    const good = (extra: Partial<TaskManifestInput> = {}): TaskManifestInput => manifest('good', { version: '2.0.0', ...extra })
    const MARKER = 'tamper-me'

    /** A hand-made bundle, signed by the trusted key: encodeBundle refuses invalid manifests. */
    function crafted(manifestText: string, code: string): Uint8Array {
      const key = createPrivateKey(trusted.privateKeyPem)
      const signature = {
        algorithm: 'ed25519',
        publicKey: createPublicKey(key).export({ type: 'spki', format: 'der' }).toString('base64'),
        value: sign(null, Buffer.from(bundleDigest({ manifestText, code }), 'hex'), key).toString('base64'),
      }
      return new Uint8Array(cbor.encode({ format: 'edge-task-bundle', formatVersion: 1, manifest: manifestText, code, signature }))
    }

    function tampered(): Uint8Array {
      const bytes = Buffer.from(signed(good(), `${echoBody}; exports.note = '${MARKER}'`))
      const at = bytes.indexOf(MARKER)
      bytes[at] = (bytes[at] ?? 0) ^ 0x01
      return bytes
    }

    const truncated = (): Uint8Array => {
      const bytes = signed(good(), echoBody)
      return bytes.subarray(0, Math.floor(bytes.length / 2))
    }

    const REFUSALS: Array<[string, () => Uint8Array | string, number, string, RegExp]> = [
      ['a bundle tampered with after signing', tampered, 400, 'COORD_BUNDLE_SIGNATURE_INVALID', new RegExp(`^bundle signature by key ${keyId(trusted.publicKeyPem)} does not match its content: the bundle was altered after signing$`)],
      ['an unsigned bundle', () => bundle(good(), echoBody), 403, 'COORD_BUNDLE_UNSIGNED', /^bundle is not signed and unsigned bundles are not allowed/],
      ['a bundle signed by an untrusted key', () => bundle(good(), echoBody, stranger), 403, 'COORD_BUNDLE_UNTRUSTED', new RegExp(`^bundle is signed by key ${keyId(stranger.publicKeyPem)}, which is not a trusted key`)],
      ['a path-escaping name', () => crafted(JSON.stringify(manifest('../x')), iife(echoBody)), 400, 'COORD_BUNDLE_MANIFEST_INVALID', /^bundle manifest is invalid:\n {2}name: /],
      ['an absolute path as its name', () => crafted(JSON.stringify(manifest('/etc/x')), iife(echoBody)), 400, 'COORD_BUNDLE_MANIFEST_INVALID', /\n {2}name: /],
      ['a truncated file', truncated, 400, 'COORD_BUNDLE_MALFORMED', /^bundle file is truncated \(\d+ bytes\): the CBOR data ends early$/],
      ['an oversized file', () => signed(good(), `${echoBody}; exports.pad = '${'x'.repeat(MAX_BUNDLE_BYTES)}'`), 413, 'COORD_BUNDLE_TOO_LARGE', new RegExp(`limit of ${MAX_BUNDLE_BYTES} bytes`)],
      ['a file that is not a bundle', () => 'GIF89a, certainly a task', 400, 'COORD_BUNDLE_MALFORMED', /^not a task bundle/],
      ['an empty file', () => new Uint8Array(), 400, 'COORD_BUNDLE_MALFORMED', /^bundle file is empty$/],
      ['a version that loops forever at load', () => signed(good(), 'for (;;) {}'), 500, 'COORD_SANDBOX_CPU_LIMIT', /^task good@2\.0\.0: its top-level code exceeded its CPU time limit of 1000 ms$/],
    ]

    it.each(REFUSALS)('refuses %s with a clear error and changes nothing installed', async (_what, make, status, code, message) => {
      const before = await installed()
      const files = readdirSync(join(dataDir, 'bundles')).sort()
      const around = readdirSync(tmp.dir).sort()
      const reply = await whileServing(() => post('/v1/tasks', make()))
      expect(reply.status).toBe(status)
      expect(reply.body['code']).toBe(code)
      expect(reply.body['message']).toMatch(message)
      expect(await installed()).toEqual(before)
      expect(readdirSync(join(dataDir, 'bundles')).sort()).toEqual(files)
      expect(readdirSync(tmp.dir).sort()).toEqual(around)
    })
  })
})

describe('shutdown while a task spins', () => {
  const tmp = tempDir('edge-adversarial-stop-')
  const trusted = ed25519Keys()

  afterAll(() => tmp.remove())

  it('SIGTERM disposes the spinning isolate after tasks.drainTimeoutMs and the daemon stops cleanly, logging "stopped"', async () => {
    // Caps lifted to the spinner's request: only disposing its isolate at the drain timeout ends the call.
    const caps = { cpuMsPerCall: 60_000, wallMsPerCall: 600_000 }
    writeFileSync(join(tmp.dir, 'config.json'), JSON.stringify({ tasks: { trustedKeys: [trusted.publicKeyPem], allowUnsigned: false, caps } }))
    const daemon = await startDaemon(['--config', join(tmp.dir, 'config.json'), '--data-dir', join(tmp.dir, 'data')])
    const api = `http://127.0.0.1:${daemon.endpoints.http.port}`
    try {
      // Limits far beyond any stop deadline: only disposing the isolate ends this call.
      const spinner = manifest('spinner', { limits: { memoryMb: 16, cpuMsPerCall: 60_000, wallMsPerCall: 600_000 } })
      const installed = await fetch(`${api}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bundle(spinner, "exports.handler = async (e, ctx) => { ctx.log.info('spinning'); for (;;) {} }", trusted) })
      expect(installed.status).toBe(201)
      const call = fetch(`${api}/v1/tasks/spinner/invoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).then((r) => r.status, () => 'connection closed')
      for (;;) {
        const log = await (await fetch(`${api}/v1/tasks/spinner/logs?tail=20`)).text()
        if (log.includes('"spinning"')) break
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      daemon.child.kill('SIGTERM')
      // Past the daemon's own stop deadline it would exit 1 without "coordinator stopped".
      expect(await daemon.exited).toBe(0)
      expect(daemon.logs.map((l) => l['msg'])).toEqual(expect.arrayContaining(['stopping', 'calls still running at the drain timeout were cut off', 'coordinator stopped']))
      expect(await call).not.toBe(200)
    } finally {
      if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL')
    }
  }, 60_000)
})

/**
 * What a task makes the host hold or do for it is bounded per task (tasks.hostLimits), on a real
 * TaskService with real isolates and a real broker and shadow service; small limits so a test
 * reaches them with a few hundred requests. Each bound reached is COORD_TASK_LIMIT naming the
 * limit and counts toward the task's failure budget, while a well-behaved task keeps every call.
 */
describe('host-side limits per task', () => {
  const hostLimits: HostLimits = {
    publishesPerSecond: 50, publishBurst: 10, publishesInFlight: 20, publishBytesInFlight: 64 * 1024,
    logLinesPerSecond: 20, logBytesPerSecond: 64 * 1024, shadowCallsInFlight: 2, invokeCallsInFlight: 2,
  }
  const MiB = 1024 * 1024
  let h: TaskHarness

  /** Calls the good task of `on` back to back while `attack` runs; every call must succeed. */
  function whileServing<T>(attack: () => Promise<T>, on: TaskHarness = h): Promise<T> {
    const payload = async (n: number): Promise<{ reply: unknown; payload: unknown }> => {
      const reply = (await on.service.invoke('good', n).catch((e: unknown) => e)) as { payload?: unknown } | undefined
      return { reply, payload: reply?.payload }
    }
    return servingWhile(payload, attack)
  }

  /** Invokes `name` until it is broken; returns the results of the calls that were served. */
  async function untilBroken(name: string, max = 10): Promise<unknown[]> {
    const results: unknown[] = []
    for (let i = 0; i < max && h.service.get(name)?.state === 'running'; i++) results.push(await h.service.invoke(name, i).catch((e: unknown) => e))
    return results
  }

  beforeAll(async () => {
    h = await taskHarness({ hostLimits })
    await h.service.install(bundle(manifest('good', { limits: { maxConcurrent: 4 } }), echoBody))
  }, 60_000)
  afterAll(async () => h?.close())

  it('slows a task that awaits its publishes to publishesPerSecond (back-pressure), refusing none', async () => {
    const seen: string[] = []
    await h.broker.subscribe('out/steady', (_topic, payload) => void seen.push(payload.toString()))
    await h.service.install(bundle(manifest('steady', { permissions: { publish: ['out/#'] } }), `exports.handler = async (event, ctx) => {
      for (let i = 0; i < 30; i++) await ctx.publish('out/steady', String(i))
      return 'done'
    }`))
    const started = performance.now()
    expect(await whileServing(() => h.service.invoke('steady', null))).toBe('done')
    // 10 at once (the burst), then 20 more at 50 a second: at least 400 ms, whatever the machine.
    expect(performance.now() - started).toBeGreaterThanOrEqual(390)
    await eventually(() => seen.length === 30, 5000, 'every publish')
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => String(i)))
    expect(h.service.get('steady')).toMatchObject({ state: 'running', metrics: { failures: 0, limited: 0 } })
  })

  it('refuses a publish flood beyond publishesInFlight with COORD_TASK_LIMIT, counts each flooding call as failed and ends the task broken', async () => {
    await h.service.install(bundle(manifest('flood', { permissions: { publish: ['out/#'] } }), `exports.handler = async (event, ctx) => {
      const outcomes = await Promise.allSettled(Array.from({ length: 500 }, () => ctx.publish('out/flood', 'x'.repeat(100))))
      const refused = outcomes.filter((o) => o.status === 'rejected').map((o) => ({ code: o.reason.code, message: o.reason.message }))
      return { sent: outcomes.length - refused.length, refused }
    }`))
    const first = (await whileServing(() => h.service.invoke('flood', null))) as { sent: number; refused: Array<{ code: string; message: string }> }
    // The handler caught every refusal and returned, yet the call counts against the task.
    expect(first.sent).toBeGreaterThanOrEqual(hostLimits.publishesInFlight)
    expect(first.refused.length).toBeGreaterThan(0)
    // Refused inside the isolate, without crossing, or (one at a time) by the host, which counts it.
    // Refused inside the isolate, without crossing; the host hears once each time the cap is reached.
    for (const r of first.refused) {
      expect(r).toEqual({ code: 'COORD_TASK_LIMIT', message: 'task "flood" exceeded its limit publishesInFlight: 20 calls are awaiting the host, the most it may have (tasks.hostLimits.publishesInFlight)' })
    }
    const limited = h.service.get('flood')?.metrics.limited ?? 0
    expect(limited).toBeGreaterThan(0)
    expect(limited).toBeLessThan(first.refused.length)
    expect(h.service.get('flood')).toMatchObject({ state: 'running', metrics: { calls: 1, failures: 1 } })
    await whileServing(() => untilBroken('flood'))
    const info = h.service.get('flood')
    expect(info).toMatchObject({ state: 'broken', metrics: { failures: 5 } })
    expect(info?.lastError).toMatch(/^COORD_TASK_LIMIT: task "flood" exceeded its limit publishesInFlight: /)
    await expect(h.service.invoke('flood', null)).rejects.toMatchObject({ code: 'COORD_TASK_BROKEN' })
    expect(h.service.logs('flood', 1000).filter((e) => e.msg === 'limit exceeded' && e.fields?.['limit'] === 'publishesInFlight').length).toBeGreaterThan(0)
  })

  it('drops log lines beyond logLinesPerSecond, counted in one "dropped N lines" entry, and counts the flood against the task', async () => {
    await h.service.install(bundle(manifest('chatty'), `exports.handler = async (event, ctx) => {
      for (let i = 0; i < 500; i++) ctx.log.info('line ' + i)
      return 'said it all'
    }`))
    const dropped = new Promise<LogEntry>((resolve) => {
      const stop = h.service.followLogs('chatty', (e) => {
        if (e.source === 'lifecycle' && /^dropped \d+ lines$/.test(e.msg)) {
          stop()
          resolve(e)
        }
      })
    })
    expect(await whileServing(() => h.service.invoke('chatty', null))).toBe('said it all')
    const report = await dropped
    const kept = h.service.logs('chatty', 1000).filter((e) => e.source === 'task')
    // Every line is accounted for: kept, or counted in the report.
    expect(kept.length + (report.fields?.['dropped'] as number)).toBe(500)
    expect(kept.length).toBeGreaterThanOrEqual(2 * hostLimits.logLinesPerSecond)
    expect(report).toMatchObject({ level: 'warn', msg: `dropped ${500 - kept.length} lines`, fields: { limit: 'logLinesPerSecond' } })
    expect(h.service.get('chatty')).toMatchObject({ state: 'running', metrics: { failures: 1, limited: 1 } })
    expect(h.service.logs('chatty', 1000).find((e) => e.msg === 'call exceeded a limit')?.fields).toMatchObject({
      code: 'COORD_TASK_LIMIT', error: expect.stringMatching(/^COORD_TASK_LIMIT: task "chatty" exceeded its limit logLinesPerSecond: it logs more than 20 lines a second/),
    })
  })

  it('refuses shadow calls beyond shadowCallsInFlight with COORD_TASK_LIMIT', async () => {
    await h.service.install(bundle(manifest('shadow-flood', { permissions: { devices: ['lamp-1'] } }), `exports.handler = async (event, ctx) => {
      const outcomes = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => ctx.shadow.update('lamp-1', { state: { reported: { i } } })))
      return outcomes.map((o) => (o.status === 'fulfilled' ? o.value.status : o.reason.code))
    }`))
    const outcomes = (await whileServing(() => h.service.invoke('shadow-flood', null))) as Array<number | string>
    expect(outcomes.filter((o) => o === 200).length).toBeGreaterThanOrEqual(hostLimits.shadowCallsInFlight)
    expect(outcomes).toContain('COORD_TASK_LIMIT')
    expect(outcomes.every((o) => o === 200 || o === 'COORD_TASK_LIMIT')).toBe(true)
    expect(h.service.logs('shadow-flood', 1000).find((e) => e.msg === 'limit exceeded')?.fields).toMatchObject({
      limit: 'shadowCallsInFlight', error: expect.stringMatching(/exceeded its limit shadowCallsInFlight: 2 calls are awaiting the host/),
    })
    expect(h.service.get('shadow-flood')).toMatchObject({ metrics: { failures: 1 } })
  })

  it('refuses ctx.invoke calls beyond invokeCallsInFlight with COORD_TASK_LIMIT', async () => {
    await h.service.install(bundle(manifest('slow', { limits: { maxConcurrent: 8 } }), `exports.handler = async (event) => {
      await new Promise((resolve) => setTimeout(resolve, 100))
      return event.payload
    }`))
    await h.service.install(bundle(manifest('invoke-flood', { permissions: { invoke: ['slow'] } }), `exports.handler = async (event, ctx) => {
      const outcomes = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => ctx.invoke('slow', i)))
      return outcomes.map((o) => (o.status === 'fulfilled' ? o.value : o.reason.message))
    }`))
    const outcomes = (await whileServing(() => h.service.invoke('invoke-flood', null))) as Array<number | string>
    expect(outcomes.slice(0, 2)).toEqual([0, 1])
    // Refused inside the isolate, never crossing; the host is told once, and counts it.
    expect(outcomes.slice(2)).toEqual(Array(4).fill('task "invoke-flood" exceeded its limit invokeCallsInFlight: 2 calls are awaiting the host, the most it may have (tasks.hostLimits.invokeCallsInFlight)'))
    expect(h.service.get('invoke-flood')).toMatchObject({ metrics: { failures: 1, limited: 1 } })
  })

  describe('the memory budget of the whole coordinator (tasks.memoryBudgetMb)', () => {
    let m: TaskHarness
    let w: TaskHarness
    afterAll(async () => {
      await m?.close()
      await w?.close()
    })

    it('refuses an install that could take the coordinator over its budget, before loading it', async () => {
      const rssMb = Math.ceil(process.memoryUsage.rss() / MiB)
      m = await taskHarness({ limits: { maxTasks: 64, maxMemoryMb: 512, memoryBudgetMb: rssMb + 64 } })
      await expect(m.service.install(bundle(manifest('big', { limits: { memoryMb: 128 } }), echoBody))).rejects.toMatchObject({
        code: 'COORD_TASK_LIMIT',
        limit: 'memoryBudgetMb',
        message: expect.stringMatching(/^task "big" exceeded its limit memoryBudgetMb: installing it could take the coordinator to \d+ MB of memory \(\d+ MB now, a heap of up to 128 MB and 4 MB for its isolate\); the budget is \d+ MB \(tasks\.memoryBudgetMb\)$/),
      })
      expect(m.service.get('big')).toBeUndefined()
      expect(await m.service.install(bundle(manifest('small', { limits: { memoryMb: 16 } }), echoBody))).toMatchObject({ state: 'running' })
    })

    it('stops the task with the largest heap once the coordinator goes over its budget, and the others serve on', async () => {
      const hogBody = `exports.handler = async (event) => {
        globalThis.keep = globalThis.keep || []
        for (let i = 0; i < event.payload; i++) globalThis.keep.push(new Array(131072).fill(i))
        return globalThis.keep.length
      }`
      // Both are installed with no budget; the coordinator then restarts with one that leaves 60 MB.
      w = await taskHarness()
      await w.service.install(bundle(manifest('hog', { limits: { memoryMb: 256, cpuMsPerCall: 5000, wallMsPerCall: 10_000 } }), hogBody))
      await w.service.install(bundle(manifest('good', { limits: { maxConcurrent: 4 } }), echoBody))
      const rssMb = Math.ceil(process.memoryUsage.rss() / MiB)
      await w.restart({ limits: { maxTasks: 64, maxMemoryMb: 512, memoryBudgetMb: rssMb + 60 } })
      await whileServing(async () => {
        expect(await w.service.invoke('hog', 120)).toBe(120)
        await eventually(() => w.service.get('hog')?.state === 'broken', 10_000, 'the hog to be stopped')
      }, w)
      expect(w.service.get('hog')?.lastError).toMatch(/^COORD_TASK_LIMIT: task "hog" exceeded its limit memoryBudgetMb: the coordinator uses \d+ MB, over its budget of \d+ MB, and this task's heap is the largest \(\d+ MB\) \(tasks\.memoryBudgetMb\)$/)
      expect(w.service.get('good')?.state).toBe('running')
      expect(w.service.logs('hog', 10).at(-1)).toMatchObject({ level: 'error', msg: 'task stopped: the coordinator is over its memory budget' })
    })
  })
})
