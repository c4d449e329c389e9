// Figure "token-flood": a flood of wrong-token CONNECTs against the coordinator while a
// certificate device keeps connecting and reading its shadow, and a monitor polls /healthz.
//
//   node --no-node-snapshot bin/edge-coordinator.js start --config TMP/config.json --data-dir TMP/data (ports 0)
//   node --no-node-snapshot test/bench/token-flood.mjs [--attempts 300] [--concurrency 50] [--addresses 60]
//        [--baseline-probes 30] [--rounds 3]
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
  arg, fmtInt, machine, numArg, parseJsonLine, percentile, printResult, printTable, round, runMain, spawnTracked, stopChild, tempDir, waitForLine,
} from './lib.mjs'

const ATTEMPTS = numArg('attempts', 300)
const CONCURRENCY = numArg('concurrency', 50)
const ADDRESSES = numArg('addresses', 60)
const BASELINE_PROBES = numArg('baseline-probes', 30)
const ROUNDS = numArg('rounds', 3)
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'edge-coordinator.js')
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

async function probeOnce(mqttsPort, creds) {
  const t0 = performance.now()
  // noDelay reaches the socket tls.connect opens: without it the device's own Nagle delays its requests.
  const client = await mqtt.connectAsync({
    host: '127.0.0.1', port: mqttsPort, protocol: 'mqtts', clientId: CERT_DEVICE, ...creds, rejectUnauthorized: false, reconnectPeriod: 0, noDelay: true,
  })
  try {
    const prefix = `$aws/things/${CERT_DEVICE}/shadow/get`
    await client.subscribeAsync(`${prefix}/+`, { qos: 1 })
    const reply = new Promise((resolve) => client.once('message', resolve))
    await client.publishAsync(prefix, '', { qos: 1 })
    await reply
  } finally {
    await client.endAsync()
  }
  return performance.now() - t0
}

function healthzOnce(httpPort) {
  const t0 = performance.now()
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port: httpPort, path: '/healthz' }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`/healthz ${res.statusCode}`))))
    }).on('error', reject)
  })
}

/** Runs probes and /healthz polls until `until` settles (and at least `minProbes` probes). */
async function measure(endpoints, creds, until, minProbes) {
  const probes = []
  const health = []
  let done = false
  void until.then(() => { done = true })
  const probeLoop = (async () => {
    while (!done || probes.length < minProbes) probes.push(await probeOnce(endpoints.mqtts.port, creds))
  })()
  const healthLoop = (async () => {
    while (!done || health.length < minProbes) {
      health.push(await healthzOnce(endpoints.http.port))
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  const result = await until
  await Promise.all([probeLoop, healthLoop])
  return { result, probes, health }
}

const stats = (ms) => ({ n: ms.length, p50: round(percentile(ms, 50), 1), p99: round(percentile(ms, 99), 1), max: round(Math.max(...ms), 1) })

async function main() {
  const tmp = tempDir('edge-bench-token-flood-')
  const dataDir = join(tmp.dir, 'data')
  const cli = (args) => execFileSync(process.execPath, ['--no-node-snapshot', BIN, ...args, '--data-dir', dataDir], { encoding: 'utf8' })
  cli(['devices', 'add', CERT_DEVICE])
  const tokenOut = cli(['devices', 'add', TOKEN_DEVICE, '--token', '--no-cert'])
  if (!/token:\s+\S+/.test(tokenOut)) throw new Error('devices add --token printed no token')
  const dir = join(dataDir, 'devices', CERT_DEVICE)
  const creds = { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')), ca: readFileSync(join(dir, 'ca.pem')) }
  const configFile = join(tmp.dir, 'config.json')
  writeFileSync(configFile, JSON.stringify({ auth: { allowAnonymousLoopback: false }, shadow: { maxRequestsPerSecondPerThing: 0 } }))

  const child = spawnTracked(process.execPath, ['--no-node-snapshot', '--max-semi-space-size=4', BIN, 'start', '--config', configFile, '--data-dir', dataDir,
    '--mqtt-port', '0', '--mqtts-port', '0', '--ws-port', '0', '--http-port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const ready = await waitForLine(child.stdout, (line) => {
    const msg = parseJsonLine(line)
    return msg?.msg === 'coordinator ready' ? msg : undefined
  }, 30_000, 'coordinator ready')
  const warnings = []
  child.stdout.on('data', (b) => { for (const l of b.toString().split('\n')) { const m = parseJsonLine(l); if (m) warnings.push(m.msg) } })
  const { endpoints } = ready

  // Warm-up: TLS session caches, JIT, the shadow row.
  for (let i = 0; i < 5; i++) await probeOnce(endpoints.mqtts.port, creds)

  // Rounds alternate the phases, so a change in the machine's other load hits them all alike.
  const phases = { baseline: [], oneAddress: [], spread: [] }
  for (let round = 0; round < ROUNDS; round++) {
    phases.baseline.push(await measure(endpoints, creds, Promise.resolve({ codes: {}, ms: 0 }), BASELINE_PROBES))
    phases.oneAddress.push(await measure(endpoints, creds, flood(endpoints.mqtt.port, 'oneAddress'), 10))
    phases.spread.push(await measure(endpoints, creds, flood(endpoints.mqtt.port, 'spread'), 10))
  }
  await stopChild(child)

  const merged = Object.fromEntries(Object.entries(phases).map(([name, runs]) => [name, {
    probes: runs.flatMap((r) => r.probes),
    health: runs.flatMap((r) => r.health),
    floodMs: runs.map((r) => r.result.ms),
    codes: runs.reduce((acc, r) => { for (const [k, v] of Object.entries(r.result.codes)) acc[k] = (acc[k] ?? 0) + v; return acc }, {}),
  }]))
  const base = { probe: stats(merged.baseline.probes), health: stats(merged.baseline.health) }
  const figures = {}
  for (const [name, p] of Object.entries(merged)) {
    const probe = stats(p.probes)
    const health = stats(p.health)
    const ms = p.floodMs.reduce((a, b) => a + b, 0) / p.floodMs.length
    figures[name] = {
      probe, health,
      probeP99Ratio: round(probe.p99 / base.probe.p99, 2),
      healthP99Ratio: round(health.p99 / base.health.p99, 2),
      flood: name === 'baseline' ? null : { attemptsPerRound: ATTEMPTS, concurrency: CONCURRENCY, rounds: ROUNDS, msPerRound: round(ms), perSec: round(ATTEMPTS / (ms / 1000)), connackCodes: p.codes },
    }
  }
  const label = { baseline: 'baseline (no flood)', oneAddress: `flood, 1 address (back-off)`, spread: `flood, ${ADDRESSES} addresses (every token derived)` }
  process.stdout.write(`Figure "token-flood": ${ATTEMPTS} wrong-token CONNECTs at concurrency ${CONCURRENCY}; probe = mTLS connect + shadow get + disconnect\n`)
  printTable('latency under a wrong-token flood (ms)', ['phase', 'probes', 'probe p50', 'probe p99', 'x base', '/healthz p50', '/healthz p99', 'x base', 'flood ms/round', 'CONNACK codes'],
    Object.entries(figures).map(([name, f]) => [label[name], fmtInt(f.probe.n), f.probe.p50, f.probe.p99, f.probeP99Ratio, f.health.p50, f.health.p99, f.healthP99Ratio,
      f.flood === null ? '' : fmtInt(f.flood.msPerRound), f.flood === null ? '' : JSON.stringify(f.flood.connackCodes)]))
  const worst = Object.values(figures)
  const probeMet = worst.every((f) => f.probe.p99 < 100)
  const healthMet = worst.every((f) => f.health.p99 < 50)
  process.stdout.write(`targets: probe p99 < 100 ms (${probeMet ? 'met' : 'NOT met'}), /healthz p99 < 50 ms (${healthMet ? 'met' : 'NOT met'})\n`)
  process.stdout.write(`daemon warnings: ${JSON.stringify(countBy(warnings))}\n`)
  printResult({ figure: 'token-flood', machine: machine(), params: { attempts: ATTEMPTS, concurrency: CONCURRENCY, addresses: ADDRESSES, rounds: ROUNDS, baselineProbes: BASELINE_PROBES }, figures })
  tmp.remove()
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
