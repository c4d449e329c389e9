// Figure "token-flood": a flood of wrong-token CONNECTs against the coordinator while a
// certificate device keeps connecting and reading its shadow, and a monitor polls /healthz.
//
//   node --no-node-snapshot bin/edge-coordinator.js start --config TMP/config.json --data-dir TMP/data (ports 0)
//   node --no-node-snapshot test/bench/token-flood.mjs [--attempts 300] [--concurrency 50] [--addresses 60]
//        [--baseline-probes 30] [--rounds 3] [--against DIR]
// --against DIR: also runs every phase, alternating with this build, against the daemon of another
// built checkout (e.g. `git worktree add --detach /tmp/main main` + `npm run build` there).
//
// Three phases, alternated over --rounds rounds in one run, against the same daemon:
//   baseline         no flood: the probes alone
//   flood, 1 address --attempts wrong-token CONNECTs for a registered token device, --concurrency at
//                    once, from 127.0.0.1 (the probes' address too): the back-off per client id and
//                    per address turns most of them away before scrypt runs
//   flood, spread    the same number from --addresses loopback addresses (127.0.1.x), each for its own
//                    unknown client id, at most tokenBackoff.freeFailures (5) per address: no back-off
//                    applies, every attempt costs a full scrypt (off the event loop, on libuv's pool)
// Probe = TLS connect with the device certificate + shadow get + disconnect, back to back (ms);
// /healthz = HTTP GET every 20 ms (ms). p50/p99 per phase, and the ratio to the baseline.
// Targets (issue 8): under the flood, probe p99 < 100 ms and /healthz p99 < 50 ms.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { get as httpGet } from 'node:http'
import { connect as netConnect } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import {
  ROOT, arg, fmtInt, machine, numArg, parseJsonLine, percentile, printResult, printTable, round, runMain, spawnTracked, stopChild, tempDir, waitForLine, withTimeout,
} from './lib.mjs'

const ATTEMPTS = numArg('attempts', 300)
const CONCURRENCY = numArg('concurrency', 50)
const ADDRESSES = numArg('addresses', 60)
const BASELINE_PROBES = numArg('baseline-probes', 30)
const ROUNDS = numArg('rounds', 3)
const SELF = fileURLToPath(import.meta.url)
const CERT_DEVICE = 'bench-cert-1'
const TOKEN_DEVICE = 'bench-token-1'

// ---- wrong-token CONNECTs, by hand (MQTT.js cannot pick the source address)

const mqttString = (s) => {
  const b = Buffer.from(s, 'utf8')
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
}

function connectPacket(clientId, password) {
  const body = Buffer.concat([mqttString('MQTT'), Buffer.from([4, 0xc2, 0, 60]), mqttString(clientId), mqttString(clientId), mqttString(password)])
  const length = []
  let n = body.length
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    length.push(byte)
  } while (n > 0)
  return Buffer.concat([Buffer.from([0x10, ...length]), body])
}

/** One wrong-token CONNECT; resolves with the CONNACK return code ('closed' without one). */
function wrongToken(port, clientId, localAddress) {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port, localAddress })
    let got = Buffer.alloc(0)
    socket.on('connect', () => socket.write(connectPacket(clientId, 'not-the-token')))
    socket.on('data', (b) => {
      got = Buffer.concat([got, b])
      if (got.length >= 4) {
        socket.destroy()
        resolve(got[3])
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve('closed'))
  })
}

async function floodIn(port, target) {
  const codes = {}
  let next = 0
  const t0 = performance.now()
  const worker = async () => {
    while (next < ATTEMPTS) {
      const i = next++
      const { clientId, localAddress } = target(i)
      const code = await wrongToken(port, clientId, localAddress)
      codes[code] = (codes[code] ?? 0) + 1
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  return { codes, ms: performance.now() - t0 }
}

const TARGETS = {
  oneAddress: () => ({ clientId: TOKEN_DEVICE, localAddress: '127.0.0.1' }),
  spread: (i) => ({ clientId: `guess-${i}`, localAddress: `127.0.1.${1 + (i % ADDRESSES)}` }),
}

/** The flood runs in its own process, so its sockets do not delay this one's probes. */
async function flood(port, mode) {
  const child = spawnTracked(process.execPath, [SELF, '--role', 'flood', '--port', String(port), '--mode', mode,
    '--attempts', String(ATTEMPTS), '--concurrency', String(CONCURRENCY), '--addresses', String(ADDRESSES)], { stdio: ['ignore', 'pipe', 'inherit'] })
  return waitForLine(child.stdout, (line) => parseJsonLine(line)?.flood, 300_000, `flood ${mode}`)
}

// ---- the well-behaved side

/** One probe's ms, or null when it failed (connection reset, refused, timed out: counted apart). */
async function probeOnce(mqttsPort, creds) {
  const t0 = performance.now()
  let client
  try {
    // noDelay reaches the socket tls.connect opens: without it the device's own Nagle delays its requests.
    client = mqtt.connect({
      host: '127.0.0.1', port: mqttsPort, protocol: 'mqtts', clientId: CERT_DEVICE, ...creds, rejectUnauthorized: false, reconnectPeriod: 0, noDelay: true,
      connectTimeout: 10_000,
    })
    client.on('error', () => {})
    await new Promise((resolve, reject) => {
      client.once('connect', resolve)
      client.once('close', () => reject(new Error('closed before CONNACK')))
    })
    const prefix = `$aws/things/${CERT_DEVICE}/shadow/get`
    await withTimeout((async () => {
      await client.subscribeAsync(`${prefix}/+`, { qos: 1 })
      const reply = new Promise((resolve) => client.once('message', resolve))
      await client.publishAsync(prefix, '', { qos: 1 })
      await reply
      await client.endAsync()
    })(), 15_000, 'probe')
    return performance.now() - t0
  } catch {
    client?.end(true)
    return null
  }
}

function healthzOnce(httpPort) {
  const t0 = performance.now()
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port: httpPort, path: '/healthz' }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`/healthz ${res.statusCode}`))))
    }).on('error', () => resolve(null))
  })
}

/** Runs probes and /healthz polls until `until` settles (and at least `minProbes` probes). */
async function measure(endpoints, creds, until, minProbes) {
  const probes = []
  const health = []
  const failed = { probes: 0, health: 0 }
  let done = false
  void until.then(() => { done = true })
  const probeLoop = (async () => {
    while (!done || probes.length < minProbes) {
      const ms = await probeOnce(endpoints.mqtts.port, creds)
      if (ms === null) failed.probes++
      else probes.push(ms)
    }
  })()
  const healthLoop = (async () => {
    while (!done || health.length < minProbes) {
      const ms = await healthzOnce(endpoints.http.port)
      if (ms === null) failed.health++
      else health.push(ms)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  const result = await until
  await Promise.all([probeLoop, healthLoop])
  return { result, probes, health, failed }
}

const stats = (ms) => ({ n: ms.length, p50: round(percentile(ms, 50), 1), p99: round(percentile(ms, 99), 1), max: round(Math.max(...ms), 1) })

/** A coordinator daemon built from `root` (this checkout, or --against), with its two devices registered. */
async function startDaemon(root, tmp, name) {
  const bin = join(root, 'bin', 'edge-coordinator.js')
  const dataDir = join(tmp.dir, name)
  const cli = (args) => execFileSync(process.execPath, ['--no-node-snapshot', bin, ...args, '--data-dir', dataDir], { encoding: 'utf8' })
  cli(['devices', 'add', CERT_DEVICE])
  const tokenOut = cli(['devices', 'add', TOKEN_DEVICE, '--token', '--no-cert'])
  if (!/token:\s+\S+/.test(tokenOut)) throw new Error('devices add --token printed no token')
  const dir = join(dataDir, 'devices', CERT_DEVICE)
  const creds = { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')), ca: readFileSync(join(dir, 'ca.pem')) }
  const configFile = join(tmp.dir, `${name}.json`)
  writeFileSync(configFile, JSON.stringify({ auth: { allowAnonymousLoopback: false }, shadow: { maxRequestsPerSecondPerThing: 0 } }))
  const child = spawnTracked(process.execPath, ['--no-node-snapshot', '--max-semi-space-size=4', bin, 'start', '--config', configFile, '--data-dir', dataDir,
    '--mqtt-port', '0', '--mqtts-port', '0', '--ws-port', '0', '--http-port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const ready = await waitForLine(child.stdout, (line) => {
    const msg = parseJsonLine(line)
    return msg?.msg === 'coordinator ready' ? msg : undefined
  }, 30_000, `${name} coordinator ready`)
  const warnings = []
  child.stdout.on('data', (b) => { for (const l of b.toString().split('\n')) { const m = parseJsonLine(l); if (m) warnings.push(m.msg) } })
  // Warm-up: TLS session caches, JIT, the shadow row.
  for (let i = 0; i < 5; i++) await probeOnce(ready.endpoints.mqtts.port, creds)
  return { name, endpoints: ready.endpoints, creds, child, warnings }
}

const PHASES = ['baseline', 'oneAddress', 'spread']

async function main() {
  const tmp = tempDir('edge-bench-token-flood-')
  const against = arg('against', undefined)
  const daemons = [await startDaemon(ROOT, tmp, 'this')]
  if (against !== undefined) daemons.push(await startDaemon(against, tmp, 'against'))

  // Rounds alternate the phases (and the daemons), so a change in the machine's other load hits them all alike.
  const runs = Object.fromEntries(daemons.map((d) => [d.name, Object.fromEntries(PHASES.map((p) => [p, []]))]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const d of daemons) {
      runs[d.name].baseline.push(await measure(d.endpoints, d.creds, Promise.resolve({ codes: {}, ms: 0 }), BASELINE_PROBES))
      runs[d.name].oneAddress.push(await measure(d.endpoints, d.creds, flood(d.endpoints.mqtt.port, 'oneAddress'), 10))
      runs[d.name].spread.push(await measure(d.endpoints, d.creds, flood(d.endpoints.mqtt.port, 'spread'), 10))
    }
  }
  for (const d of daemons) await stopChild(d.child)

  const figures = {}
  for (const d of daemons) figures[d.name] = summarize(runs[d.name])
  const label = { baseline: 'baseline (no flood)', oneAddress: 'flood, 1 address', spread: `flood, ${ADDRESSES} addresses` }
  const daemonLabel = { this: 'this build', against: `--against ${against}` }
  process.stdout.write(`Figure "token-flood": ${ATTEMPTS} wrong-token CONNECTs at concurrency ${CONCURRENCY}, ${ROUNDS} rounds; probe = mTLS connect + shadow get + disconnect\n`)
  printTable('latency under a wrong-token flood (ms; x base = p99 / the same daemon\'s no-flood p99)',
    ['daemon', 'phase', 'probes (failed)', 'probe p50', 'probe p99', 'x base', '/healthz p50', '/healthz p99', 'x base', 'flood ms/round', 'attempts/s', 'CONNACK codes'],
    daemons.flatMap((d) => PHASES.map((phase) => {
      const f = figures[d.name][phase]
      return [daemonLabel[d.name], label[phase], `${fmtInt(f.probe.n)} (${f.failedProbes})`, f.probe.p50, f.probe.p99, f.probeP99Ratio, f.health.p50, f.health.p99, f.healthP99Ratio,
        f.flood === null ? '' : fmtInt(f.flood.msPerRound), f.flood === null ? '' : fmtInt(f.flood.perSec), f.flood === null ? '' : JSON.stringify(f.flood.connackCodes)]
    })))
  const ours = Object.values(figures.this)
  process.stdout.write(`targets (this build): probe p99 < 100 ms (${ours.every((f) => f.probe.p99 < 100) ? 'met' : 'NOT met'}), ` +
    `/healthz p99 < 50 ms (${ours.every((f) => f.health.p99 < 50) ? 'met' : 'NOT met'})\n`)
  for (const d of daemons) process.stdout.write(`${daemonLabel[d.name]} log lines: ${JSON.stringify(countBy(d.warnings))}\n`)
  printResult({ figure: 'token-flood', machine: machine(), params: { attempts: ATTEMPTS, concurrency: CONCURRENCY, addresses: ADDRESSES, rounds: ROUNDS, baselineProbes: BASELINE_PROBES, against: against ?? null }, figures })
  tmp.remove()
}

function summarize(phases) {
  const merged = Object.fromEntries(Object.entries(phases).map(([name, list]) => [name, {
    probes: list.flatMap((r) => r.probes),
    health: list.flatMap((r) => r.health),
    floodMs: list.map((r) => r.result.ms),
    failedProbes: list.reduce((n, r) => n + r.failed.probes, 0),
    failedHealth: list.reduce((n, r) => n + r.failed.health, 0),
    codes: list.reduce((acc, r) => { for (const [k, v] of Object.entries(r.result.codes)) acc[k] = (acc[k] ?? 0) + v; return acc }, {}),
  }]))
  const base = { probe: stats(merged.baseline.probes), health: stats(merged.baseline.health) }
  const out = {}
  for (const [name, p] of Object.entries(merged)) {
    const probe = stats(p.probes)
    const health = stats(p.health)
    const ms = p.floodMs.reduce((a, b) => a + b, 0) / p.floodMs.length
    out[name] = {
      probe, health, failedProbes: p.failedProbes, failedHealth: p.failedHealth,
      probeP99Ratio: round(probe.p99 / base.probe.p99, 2),
      healthP99Ratio: round(health.p99 / base.health.p99, 2),
      flood: name === 'baseline' ? null : { attemptsPerRound: ATTEMPTS, concurrency: CONCURRENCY, msPerRound: round(ms), perSec: round(ATTEMPTS / (ms / 1000)), connackCodes: p.codes },
    }
  }
  return out
}

function countBy(list) {
  const out = {}
  for (const x of list) out[x] = (out[x] ?? 0) + 1
  return out
}

if (arg('role', 'main') === 'flood') {
  runMain(async () => {
    const result = await floodIn(numArg('port', 0), TARGETS[arg('mode', 'oneAddress')])
    process.stdout.write(`${JSON.stringify({ flood: result })}\n`)
  })
} else {
  runMain(main)
}
