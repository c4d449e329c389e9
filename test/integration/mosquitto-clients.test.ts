/**
 * Interoperability with the Eclipse Mosquitto command-line clients (`mosquitto_sub`, `mosquitto_pub`,
 * libmosquitto + OpenSSL) over mutual TLS, using credentials issued by `edge-coordinator devices add`.
 * Skipped when the clients are not installed; CI installs them (package `mosquitto-clients`).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createCa, issueClientCert } from '../../coordinator/pki/index.js'
import type { Policy } from '../../coordinator/broker/policy.js'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { addDevice, type IssuedDevice } from '../helpers/devices-cli.js'
import { tempDir } from '../helpers/tmp.js'

const onPath = (cmd: string): boolean => (process.env['PATH'] ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, cmd)))
const haveMosquitto = onPath('mosquitto_sub') && onPath('mosquitto_pub')
const SKIP_REASON = 'mosquitto_sub/mosquitto_pub not on PATH (install mosquitto-clients); skipping mosquitto interoperability tests'
if (!haveMosquitto) console.warn(SKIP_REASON)

const A = 'mosq-a'
const B = 'mosq-b'
/** An application identity with an extra policy that may use every thing's shadow (like a cloud app). */
const APP = 'mosq-app'
const OPERATOR_POLICY: Policy = {
  name: 'shadow-operator',
  statements: [{ effect: 'allow', actions: ['publish', 'subscribe'], resources: ['$aws/things/+/shadow/#'] }],
}

const shadow = (thing: string): string => `$aws/things/${thing}/shadow`

interface Proc {
  child: ChildProcess
  readonly stdout: string
  readonly stderr: string
  /** Exit code (null when killed by a signal). */
  exited: Promise<number | null>
  /** Resolves once stdout+stderr match `re`; rejects if the process exits first or after `ms`. */
  waitFor(re: RegExp, ms?: number): Promise<void>
}

const children = new Set<ChildProcess>()

/**
 * With stdout on a pipe, libc buffers mosquitto's `-d` lines (which say when the SUBACK arrived)
 * until exit; `stdbuf -oL` (GNU coreutils) makes them line-buffered. Without stdbuf the tests fall
 * back to a fixed settle delay before publishing.
 */
const haveStdbuf = onPath('stdbuf')

/** Spawns a mosquitto client; it is SIGKILLed after `timeoutMs` and by afterEach if still running. */
function mosq(cmd: 'mosquitto_sub' | 'mosquitto_pub', args: string[], timeoutMs = 15_000): Proc {
  const child = haveStdbuf
    ? spawn('stdbuf', ['-oL', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let stdout = ''
  let stderr = ''
  const listeners = new Set<() => void>()
  const changed = (): void => {
    for (const l of listeners) l()
  }
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString()
    changed()
  })
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
    changed()
  })
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      stderr += `spawn error: ${err.message}\n`
      resolve(-1)
    })
    child.once('close', (code) => {
      clearTimeout(killer)
      children.delete(child)
      changed()
      resolve(code)
    })
  })
  let done = false
  void exited.then(() => {
    done = true
  })
  return {
    child,
    get stdout() {
      return stdout
    },
    get stderr() {
      return stderr
    },
    exited,
    waitFor: (re, ms = 10_000) => new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (re.test(stdout + stderr)) finish(null)
        else if (done) finish(new Error(`${cmd} exited before printing ${re}: stdout=${stdout} stderr=${stderr}`))
      }
      const finish = (err: Error | null): void => {
        clearTimeout(timer)
        listeners.delete(check)
        if (err === null) resolve()
        else reject(err)
      }
      const timer = setTimeout(() => finish(new Error(`${cmd} did not print ${re} within ${ms} ms: stdout=${stdout} stderr=${stderr}`)), ms)
      listeners.add(check)
      check()
    }),
  }
}

/** Waits until a `-d` mosquitto_sub has its SUBACK with `granted` (e.g. "1, 1" or "128, 1"). */
async function subscribed(sub: Proc, granted: string): Promise<void> {
  if (!haveStdbuf) {
    await new Promise((resolve) => setTimeout(resolve, 1500))
    return
  }
  await sub.waitFor(new RegExp(`Subscribed \\(mid: \\d+\\): ${granted}\\s*$`, 'm'))
}

/** `-v` output lines ("topic payload") for shadow topics, parsed; `-d` debug lines are skipped. */
function messages(stdout: string): Array<{ topic: string; body: Record<string, unknown> }> {
  return stdout.split('\n').filter((l) => l.startsWith('$aws/things/')).map((line) => {
    const space = line.indexOf(' ')
    return { topic: line.slice(0, space), body: JSON.parse(line.slice(space + 1)) as Record<string, unknown> }
  })
}

describe.skipIf(!haveMosquitto)('mosquitto_sub / mosquitto_pub over mutual TLS', () => {
  let tmp: { dir: string; remove(): void } | undefined
  let dataDir: string
  let run: RunningCoordinator
  const creds: Record<string, IssuedDevice> = {}
  let foreign: { certPath: string; keyPath: string }

  /** Connection arguments for `name`'s issued credentials (`id` overrides the client id). */
  const tlsArgs = (name: string, opts: { id?: string; host?: string } = {}): string[] => {
    const c = creds[name]
    if (c === undefined) throw new Error(`no credentials for ${name}`)
    return ['-h', opts.host ?? '127.0.0.1', '-p', String(run.endpoints.mqtts.port), '--cafile', c.caPath, '--cert', c.certPath, '--key', c.keyPath,
      '-i', opts.id ?? name, '-q', '1', '-V', 'mqttv311']
  }

  const getShadow = async (thing: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${run.httpUrl}/things/${thing}/shadow`)
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }

  beforeAll(async () => {
    tmp = tempDir('edge-coord-mosq-')
    dataDir = join(tmp.dir, 'data')
    const configFile = join(tmp.dir, 'config.json')
    writeFileSync(configFile, JSON.stringify({ policies: [OPERATOR_POLICY] }))
    creds[A] = await addDevice(dataDir, A)
    creds[B] = await addDevice(dataDir, B)
    creds[APP] = await addDevice(dataDir, APP, ['--policy', OPERATOR_POLICY.name, '--config', configFile])
    const foreignCa = await createCa({ commonName: 'Foreign CA' })
    const forged = await issueClientCert(foreignCa, { thingName: A })
    foreign = { certPath: join(tmp.dir, 'foreign-cert.pem'), keyPath: join(tmp.dir, 'foreign-key.pem') }
    writeFileSync(foreign.certPath, forged.certPem)
    writeFileSync(foreign.keyPath, forged.keyPem, { mode: 0o600 })
    run = await startCoordinator({
      auth: { allowAnonymousLoopback: false },
      policies: [OPERATOR_POLICY],
      shadow: { maxRequestsPerSecondPerThing: 0 },
    }, { dataDir })
  })

  afterEach(() => {
    for (const child of children) child.kill('SIGKILL')
    children.clear()
  })

  afterAll(async () => {
    await run?.stop()
    tmp?.remove()
  })

  it('device A (mosquitto_sub) gets update/accepted and delta for a desired change published with mosquitto_pub', async () => {
    const sub = mosq('mosquitto_sub', [...tlsArgs(A), '-d', '-v', '-C', '2', '-W', '10',
      '-t', `${shadow(A)}/update/accepted`, '-t', `${shadow(A)}/update/delta`])
    await subscribed(sub, '1, 1')
    const request = JSON.stringify({ state: { desired: { led: 'on', level: 3 } }, clientToken: 'mosq-1' })
    const pub = mosq('mosquitto_pub', [...tlsArgs(APP), '-t', `${shadow(A)}/update`, '-m', request])
    expect(await pub.exited, pub.stderr).toBe(0)
    expect(await sub.exited, sub.stderr).toBe(0)
    const got = messages(sub.stdout)
    const accepted = got.find((m) => m.topic === `${shadow(A)}/update/accepted`)
    const delta = got.find((m) => m.topic === `${shadow(A)}/update/delta`)
    expect(accepted?.body).toMatchObject({ state: { desired: { led: 'on', level: 3 } }, version: 1, clientToken: 'mosq-1', timestamp: expect.any(Number) })
    expect(accepted?.body['metadata']).toMatchObject({ desired: { led: { timestamp: expect.any(Number) } } })
    expect(delta?.body).toMatchObject({ state: { led: 'on', level: 3 }, version: 1 })
  })

  it('device A reports with mosquitto_pub (connecting as localhost) and an app sees accepted and documents', async () => {
    const sub = mosq('mosquitto_sub', [...tlsArgs(APP), '-d', '-v', '-C', '2', '-W', '10',
      '-t', `${shadow(A)}/update/accepted`, '-t', `${shadow(A)}/update/documents`])
    await subscribed(sub, '1, 1')
    const request = JSON.stringify({ state: { reported: { led: 'on', level: 3 } }, clientToken: 'mosq-2' })
    const pub = mosq('mosquitto_pub', [...tlsArgs(A, { host: 'localhost' }), '-t', `${shadow(A)}/update`, '-m', request])
    expect(await pub.exited, pub.stderr).toBe(0)
    expect(await sub.exited, sub.stderr).toBe(0)
    const got = messages(sub.stdout)
    expect(got.find((m) => m.topic.endsWith('/update/accepted'))?.body).toMatchObject({ state: { reported: { led: 'on', level: 3 } }, version: 2, clientToken: 'mosq-2' })
    expect(got.find((m) => m.topic.endsWith('/update/documents'))?.body).toMatchObject({
      previous: { version: 1, state: { desired: { led: 'on', level: 3 } } },
      current: { version: 2, state: { desired: { led: 'on', level: 3 }, reported: { led: 'on', level: 3 } } },
      clientToken: 'mosq-2',
    })
  })

  it('refuses a client certificate from a foreign CA', async () => {
    const c = creds[A]!
    const sub = mosq('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(run.endpoints.mqtts.port), '--cafile', c.caPath,
      '--cert', foreign.certPath, '--key', foreign.keyPath, '-i', A, '-q', '1', '-V', 'mqttv311', '-t', `${shadow(A)}/update/accepted`, '-C', '1', '-W', '5'])
    const code = await sub.exited
    expect(code).not.toBe(0)
    expect(sub.stderr).toMatch(/not authori[sz]ed/i)
    expect(sub.stdout).toBe('')
  })

  it("refuses device A's certificate with client id B", async () => {
    const sub = mosq('mosquitto_sub', [...tlsArgs(A, { id: B }), '-t', `${shadow(B)}/update/accepted`, '-C', '1', '-W', '5'])
    const code = await sub.exited
    expect(code).not.toBe(0)
    expect(sub.stderr).toMatch(/not authori[sz]ed/i)
    expect(sub.stdout).toBe('')
  })

  it("denies device A a subscription to device B's shadow replies and delivers none of them", async () => {
    // Alone, the denied filter makes mosquitto_sub report the failed SUBACK (0x80) and give up.
    const denied = mosq('mosquitto_sub', [...tlsArgs(A), '-d', '-v', '-t', `${shadow(B)}/update/accepted`, '-C', '1', '-W', '5'])
    await denied.exited
    expect(denied.stdout).toMatch(/Subscribed \(mid: \d+\): 128\s*$/m)
    expect(denied.stderr).toMatch(/All subscription requests were denied/)
    expect(messages(denied.stdout)).toEqual([])

    // Mixed with an allowed filter the connection stays up: B's update must not reach A, while the
    // next message A does get is its own shadow's.
    const sub = mosq('mosquitto_sub', [...tlsArgs(A), '-d', '-v', '-C', '1', '-W', '10',
      '-t', `${shadow(B)}/update/accepted`, '-t', `${shadow(A)}/update/accepted`])
    await subscribed(sub, '128, 1')
    const byB = mosq('mosquitto_pub', [...tlsArgs(B), '-t', `${shadow(B)}/update`, '-m', JSON.stringify({ state: { reported: { secret: 42 } } })])
    expect(await byB.exited, byB.stderr).toBe(0)
    expect(await getShadow(B)).toMatchObject({ status: 200, body: { state: { reported: { secret: 42 } }, version: 1 } })
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(messages(sub.stdout)).toEqual([])
    // (A second connection as A would take over this session, so the app updates A's shadow.)
    const byApp = mosq('mosquitto_pub', [...tlsArgs(APP), '-t', `${shadow(A)}/update`, '-m', JSON.stringify({ state: { reported: { n: 1 } }, clientToken: 'mine' })])
    expect(await byApp.exited, byApp.stderr).toBe(0)
    expect(await sub.exited, sub.stderr).toBe(0)
    const got = messages(sub.stdout)
    expect(got.map((m) => m.topic)).toEqual([`${shadow(A)}/update/accepted`])
    expect(got[0]?.body).toMatchObject({ clientToken: 'mine' })
  })

  it("drops device A's connection when it publishes to device B's shadow update topic", async () => {
    const before = await getShadow(B)
    const pub = mosq('mosquitto_pub', [...tlsArgs(A), '-d', '-t', `${shadow(B)}/update`, '-m', JSON.stringify({ state: { desired: { secret: 0 } } })])
    const code = await pub.exited
    expect(code).not.toBe(0)
    expect(pub.stdout).not.toMatch(/received PUBACK/)
    const after = await getShadow(B)
    expect(after.status).toBe(before.status)
    expect(after.body['state']).toEqual(before.body['state'])
    expect(after.body['version']).toEqual(before.body['version'])
  })
})
