// Figure "swarm": 1,000 simulated devices on one coordinator, each reporting its shadow every second.
//
// The coordinator runs as an operator runs it, as a child process:
//   node --no-node-snapshot bin/edge-coordinator.js start --data-dir TMP --mqtt-port 0 --mqtts-port 0 --ws-port 0 --http-port 0
// with its default configuration (anonymous loopback clients, client id = thing name, the default
// device policy, the AWS-like limit of 20 shadow requests/s a thing, info logs on a pipe that this
// script drains). The devices run in --generators separate load-generator processes (this script
// with --role loadgen), each holding its share of MQTT.js clients, client ids dev-0000 … dev-0999:
//   - connections ramp up at --connect-rate a second in all (bounded, not all at once);
//   - each device subscribes at QoS 1 to its update/accepted, update/rejected and update/delta;
//   - then every --interval-ms, with a random phase per device, it publishes
//     '$aws/things/dev-NNNN/shadow/update' at QoS 1: { state: { reported: { temperature, humidity,
//     battery, rssi, seq } }, clientToken } (open loop: the next report does not wait for the reply);
//   - latency is request publish → its update/accepted, matched by clientToken, in the generator.
//     No reply within --timeout-ms counts as a timeout.
// After --warmup-ms, --windows windows of --window-ms are measured (60 s by default), reading the
// broker's /proc/<pid>/stat (CPU: utime+stime delta / wall time; 100% = one core) and
// /proc/<pid>/status (VmRSS every second: steady = median over the measured windows; peak = VmHWM,
// which includes start-up and the ramp). A window in which other processes on this (shared) machine
// used more than --other-max of a core is replaced, at most --retries times.
//
// Baselines, same load, same generators, in the same run:
//   aedes      bare aedes 1.2 in its own process (broker-host.mjs 'aedes-echo': memory persistence, no
//              auth, no hooks) with an in-process responder echoing every update request to
//              '<topic>/accepted' at QoS 1. TCP_NODELAY on its server sockets, as the coordinator's own
//              listeners set it (otherwise Nagle holds every reply ~40 ms).
//   mosquitto  /usr/sbin/mosquitto (set_tcp_nodelay true, persistence off) with a responder client in its
//              own process (this script with --role responder) doing the same echo.
//
//   node --no-node-snapshot test/bench/swarm.mjs [--devices 1000] [--generators 2] [--connect-rate 200]
//        [--interval-ms 1000] [--warmup-ms 10000] [--window-ms 10000] [--windows 6] [--timeout-ms 5000]
//        [--targets coordinator,aedes,mosquitto] [--other-max 0.25] [--retries 3] [--profile [--profile-dir DIR]]
//        [--synchronous full|normal] [--heap] [--node-flags '--max-semi-space-size=4 ...']
//   --profile      the coordinator is started with --cpu-prof; the profile (the whole run, ramp
//                  included) is summarised after it stops.
//   --synchronous  a diagnostic: the coordinator with a config file setting store.synchronous
//                  (default: no config file, so 'full').
//   --heap         a diagnostic: the coordinator is started with --inspect=127.0.0.1:0, and after the
//                  windows its process.memoryUsage() is read over the inspector, before and after a
//                  full GC (what the RSS is made of; the inspector itself adds a few MB).
//   --node-flags   a diagnostic: extra node flags for the coordinator process (space-separated).
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import mqtt from 'mqtt'
import WebSocket from 'ws'
import { printProfileSummary, summarizeProfile } from './profile.mjs'
import {
  BENCH_DIR, HOST, ROOT, arg, cpuSecondsOf, fmtInt, fmtPct, loadAverage, machine, median, memoryOf, numArg, otherCpuBetween,
  otherProcessesCpu, parseJsonLine, percentile, printResult, printTable, round, runMain, selfCpuSeconds, sleep, spawnTracked,
  startBrokerHost, startMosquitto, stopChild, tempDir, waitForLine, waitForQuiet, withTimeout,
} from './lib.mjs'

const ROLE = arg('role', 'main')
const DEVICES = numArg('devices', 1000)
const GENERATORS = numArg('generators', 2)
const CONNECT_RATE = numArg('connect-rate', 200)
const INTERVAL_MS = numArg('interval-ms', 1000)
const WARMUP_MS = numArg('warmup-ms', 10_000)
const WINDOW_MS = numArg('window-ms', 10_000)
const WINDOWS = numArg('windows', 6)
const TIMEOUT_MS = numArg('timeout-ms', 5000)
const TARGETS = arg('targets', 'coordinator,aedes,mosquitto').split(',')
const OTHER_MAX = numArg('other-max', 0.25)
const RETRIES = numArg('retries', 3)
const PROFILE = process.argv.includes('--profile')
const SYNCHRONOUS = arg('synchronous', undefined)
const HEAP = process.argv.includes('--heap')
const NODE_FLAGS = (arg('node-flags', '') ?? '').split(' ').filter(Boolean)
const TARGET_RSS_MB = 150
const TARGET_P99_MS = 50
const BIN = join(ROOT, 'bin', 'edge-coordinator.js')
const SELF = join(BENCH_DIR, 'swarm.mjs')

const thingName = (i) => `dev-${String(i).padStart(4, '0')}`

/** Small seeded PRNG (mulberry32), so phases and readings are the same from run to run. */
function random(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Reads stdin lines in a child role; the parent closing stdin (or dying) ends the child. */
function onStdinLines(handler, onEnd) {
  let pending = ''
  process.stdin.on('data', (chunk) => {
    pending += chunk
    let nl
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl).trim()
      pending = pending.slice(nl + 1)
      if (line) Promise.resolve(handler(line)).catch((err) => process.stderr.write(`swarm ${ROLE}: ${err.stack}\n`))
    }
  })
  process.stdin.on('end', onEnd)
  process.stdin.on('error', onEnd)
  process.stdin.resume()
}

const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`)

// ---------------------------------------------------------------------------------------------
// Role 'loadgen': devices [first, first + count) against 127.0.0.1:port.

async function loadgen() {
  const { port, first, count, connectRate, intervalMs, timeoutMs } = JSON.parse(arg('config'))
  const rand = random(first + 1)
  // The histogram's values include its sampling interval; that is taken off below.
  const ELD_RESOLUTION_MS = 5
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS })
  eld.enable()
  const pending = new Map() // clientToken -> [t0, device]
  const newStats = () => ({ startedAt: performance.now(), sent: 0, accepted: 0, rejected: 0, rejectCodes: {}, timeouts: 0, publishErrors: 0, deltas: 0, unmatched: 0, latencies: [] })
  let stats = newStats()
  const totals = { connectFailures: 0, disconnects: 0, skipped: 0 }
  const devices = []
  let stopping = false

  const tick = (dev) => {
    if (stopping) return
    if (!dev.client.connected) {
      totals.skipped++
      return
    }
    const seq = ++dev.seq
    const clientToken = `${dev.name}:${seq}`
    const body = JSON.stringify({
      state: { reported: {
        temperature: Math.round((21 + 3 * Math.sin(seq / 60 + dev.index) + rand() * 0.4) * 10) / 10,
        humidity: Math.round((45 + 10 * Math.cos(seq / 90 + dev.index) + rand() * 2) * 10) / 10,
        battery: Math.max(0, 100 - Math.floor(seq / 600)),
        rssi: -50 - Math.floor(rand() * 30),
        seq,
      } },
      clientToken,
    })
    pending.set(clientToken, [performance.now(), dev])
    stats.sent++
    dev.client.publish(dev.topic, body, { qos: 1 }, (err) => { if (err) stats.publishErrors++ })
  }

  const onMessage = (topic, message) => {
    const now = performance.now()
    if (topic.endsWith('/delta')) {
      stats.deltas++
      return
    }
    let token
    let code
    try {
      const parsed = JSON.parse(message.toString('utf8'))
      token = parsed.clientToken
      code = parsed.code
    } catch { /* counted as unmatched */ }
    const entry = token === undefined ? undefined : pending.get(token)
    if (entry === undefined) {
      stats.unmatched++
      return
    }
    pending.delete(token)
    if (topic.endsWith('/accepted')) {
      stats.accepted++
      stats.latencies.push(Math.round((now - entry[0]) * 100) / 100)
    } else {
      stats.rejected++
      stats.rejectCodes[code] = (stats.rejectCodes[code] ?? 0) + 1
    }
  }

  // Requests with no reply within timeoutMs are given up (Map order is send order).
  const sweep = setInterval(() => {
    const cutoff = performance.now() - timeoutMs
    for (const [token, [t0]] of pending) {
      if (t0 > cutoff) break
      pending.delete(token)
      stats.timeouts++
    }
  }, 250)

  const connectOne = (index) => new Promise((resolve) => {
    const name = thingName(index)
    const client = mqtt.connect(`mqtt://${HOST}:${port}`, { clientId: name, reconnectPeriod: 0, connectTimeout: 30_000, keepalive: 60, clean: true })
    let settled = false
    const fail = () => {
      if (settled) return
      settled = true
      client.end(true)
      resolve(undefined)
    }
    client.once('error', fail)
    client.once('close', fail)
    client.once('connect', async () => {
      client.stream?.setNoDelay?.(true)
      try {
        const base = `$aws/things/${name}/shadow/update`
        const granted = await client.subscribeAsync([`${base}/accepted`, `${base}/rejected`, `${base}/delta`], { qos: 1 })
        if (granted.some((g) => g.qos !== 1)) throw new Error(`subscription refused: ${JSON.stringify(granted)}`)
        settled = true
        client.removeListener('error', fail)
        client.removeListener('close', fail)
        const dev = { index, name, client, topic: base, seq: 0, timers: [] }
        client.on('message', onMessage)
        client.on('error', () => {})
        client.on('close', () => { if (!stopping) totals.disconnects++ })
        // First report after a random phase, then one every interval.
        dev.timers.push(setTimeout(() => {
          tick(dev)
          dev.timers.push(setInterval(() => tick(dev), intervalMs))
        }, rand() * intervalMs))
        resolve(dev)
      } catch {
        fail()
      }
    })
  })

  // Ramp: one connection attempt every 1000/connectRate ms (three attempts a device at most).
  const t0 = performance.now()
  const gap = 1000 / connectRate
  const progress = setInterval(() => say({ connected: devices.length, failures: totals.connectFailures }), 1000)
  const attempts = []
  for (let k = 0; k < count; k++) {
    const wait = t0 + k * gap - performance.now()
    if (wait > 0) await sleep(wait)
    attempts.push((async () => {
      for (let attempt = 0; attempt < 3; attempt++) {
        const dev = await connectOne(first + k)
        if (dev !== undefined) {
          devices.push(dev)
          return
        }
        totals.connectFailures++
        await sleep(1000)
      }
    })())
  }
  await Promise.all(attempts)
  clearInterval(progress)
  say({ ready: true, connected: devices.length, failures: totals.connectFailures, rampMs: Math.round(performance.now() - t0) })

  let lastCpu = selfCpuSeconds()
  const mark = () => {
    const now = performance.now()
    const cpu = selfCpuSeconds()
    const out = {
      ...stats,
      seconds: (now - stats.startedAt) / 1000,
      cpu: (cpu - lastCpu) / ((now - stats.startedAt) / 1000),
      eldP99Ms: Math.max(0, eld.percentile(99) / 1e6 - ELD_RESOLUTION_MS),
      eldMaxMs: Math.max(0, eld.max / 1e6 - ELD_RESOLUTION_MS),
      connected: devices.filter((d) => d.client.connected).length,
      outstanding: pending.size,
      ...totals,
    }
    delete out.startedAt
    lastCpu = cpu
    stats = newStats()
    eld.reset()
    return out
  }

  const stop = async () => {
    if (stopping) return
    stopping = true
    for (const dev of devices) for (const t of dev.timers) clearTimeout(t)
    const deadline = performance.now() + Math.min(timeoutMs, 5000)
    while (pending.size > 0 && performance.now() < deadline) await sleep(50)
    const last = mark()
    clearInterval(sweep)
    await Promise.all(devices.map((d) => withTimeout(d.client.endAsync(), 5000, 'disconnect').catch(() => d.client.end(true))))
    say({ stopped: true, unanswered: pending.size, last: { ...last, latencies: undefined } })
    process.exit(0)
  }

  onStdinLines((line) => {
    if (line === 'mark') say({ window: mark() })
    else if (line === 'stop') return stop()
    return undefined
  }, () => process.exit(0))
}

// ---------------------------------------------------------------------------------------------
// Role 'responder': the mosquitto baseline's echo of every update request to '<topic>/accepted'.

async function responder() {
  const { port } = JSON.parse(arg('config'))
  const client = await withTimeout(new Promise((res, rej) => {
    const c = mqtt.connect(`mqtt://${HOST}:${port}`, { clientId: 'bench-responder', reconnectPeriod: 0, keepalive: 60 })
    c.once('connect', () => res(c))
    c.once('error', rej)
  }), 15_000, 'responder connect')
  client.stream?.setNoDelay?.(true)
  let answered = 0
  client.on('message', (topic, payload) => {
    answered++
    client.publish(`${topic}/accepted`, payload, { qos: 1 })
  })
  const granted = await client.subscribeAsync('$aws/things/+/shadow/update', { qos: 1 })
  if (granted[0]?.qos !== 1) throw new Error(`responder subscription refused: ${JSON.stringify(granted)}`)
  say({ ready: true })
  onStdinLines(() => say({ answered }), () => process.exit(0))
  client.on('close', () => {
    process.stderr.write('swarm responder: connection closed\n')
    process.exit(1)
  })
}

// ---------------------------------------------------------------------------------------------
// Targets: each resolves with { kind, port, pid, pids (all its processes), stop() }.

/** The daemon as an operator runs it; its stdout (JSON logs) is drained and counted. */
async function startCoordinator(profileDir) {
  const data = tempDir('edge-bench-swarm-')
  const nodeArgs = ['--no-node-snapshot', ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []), ...(HEAP ? ['--inspect=127.0.0.1:0'] : []), ...NODE_FLAGS]
  const configArgs = []
  if (SYNCHRONOUS !== undefined) {
    const file = join(data.dir, 'bench-config.json')
    writeFileSync(file, JSON.stringify({ store: { synchronous: SYNCHRONOUS } }))
    configArgs.push('--config', file)
  }
  const t0 = performance.now()
  const child = spawnTracked(process.execPath, [...nodeArgs, BIN, 'start', '--data-dir', join(data.dir, 'data'), ...configArgs,
    '--mqtt-port', '0', '--mqtts-port', '0', '--ws-port', '0', '--http-port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  let inspectorUrl
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000)
    inspectorUrl ??= /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1]
  })
  const logs = { lines: 0, byLevel: {}, tail: [] }
  let buf = ''
  child.stdout.on('data', (chunk) => {
    buf += chunk.toString('utf8')
    let nl
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      logs.lines++
      const level = parseJsonLine(line)?.level
      logs.byLevel[level] = (logs.byLevel[level] ?? 0) + 1
      if (level !== undefined && level >= 40) {
        logs.tail.push(line.slice(0, 300))
        if (logs.tail.length > 10) logs.tail.shift()
      }
    }
  })
  const ready = await waitForLine(child.stdout, (line) => {
    const msg = parseJsonLine(line)
    return msg?.msg === 'coordinator ready' ? msg : undefined
  }, 30_000, 'coordinator ready line').catch((err) => { throw new Error(`${err.message}; stderr: ${stderr.trim()}`) })
  const readyMs = performance.now() - t0
  const port = ready.endpoints?.mqtt?.port
  if (!Number.isInteger(port)) throw new Error(`no MQTT port in the ready line: ${JSON.stringify(ready)}`)
  return {
    kind: 'coordinator',
    port,
    pid: child.pid,
    pids: [child.pid],
    readyMs,
    logs,
    memoryUsage: (gc) => (inspectorUrl === undefined ? Promise.resolve(undefined) : inspectMemory(inspectorUrl, gc)),
    stop: async () => {
      const t = performance.now()
      const { code, signal } = await stopChild(child, 15_000)
      const stopMs = performance.now() - t
      data.remove()
      return { exit: code ?? signal, stopMs }
    },
  }
}

/**
 * process.memoryUsage() and the V8 heap spaces (size / used) of an inspected process, in MB; with
 * `gc`, also after a full GC.
 */
async function inspectMemory(url, gc = true) {
  const ws = new WebSocket(url)
  await withTimeout(new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej) }), 5000, 'inspector connect')
  let id = 0
  const call = (method, params = {}) => withTimeout(new Promise((res, rej) => {
    const my = ++id
    const onMessage = (data) => {
      const msg = JSON.parse(data.toString())
      if (msg.id !== my) return
      ws.off('message', onMessage)
      if (msg.error) rej(new Error(`${method}: ${msg.error.message}`))
      else res(msg.result)
    }
    ws.on('message', onMessage)
    ws.send(JSON.stringify({ id: my, method, params }))
  }), 30_000, method)
  const expression = 'JSON.stringify({ usage: process.memoryUsage(), spaces: process.getBuiltinModule?.("v8").getHeapSpaceStatistics() ?? [] })'
  const mb = (v) => round(v / 1048576, 1)
  const usage = async () => {
    const r = await call('Runtime.evaluate', { expression, returnByValue: true })
    const { usage: u, spaces } = JSON.parse(r.result.value)
    return {
      ...Object.fromEntries(Object.entries(u).map(([k, v]) => [k, mb(v)])),
      spaces: Object.fromEntries(spaces.filter((sp) => sp.space_size > 0).map((sp) => [sp.space_name.replace(/_space$/, ''), `${mb(sp.space_size)}/${mb(sp.space_used_size)}`])),
    }
  }
  try {
    const before = await usage()
    if (!gc) return { before }
    await call('HeapProfiler.collectGarbage')
    const after = await usage()
    return { before, afterGc: after }
  } finally {
    ws.close()
  }
}

async function startAedes() {
  const host = await startBrokerHost('aedes-echo', { serverNoDelay: true })
  return { ...host, kind: 'aedes', pids: [host.pid], stop: async () => { await host.stop(); return {} } }
}

async function startMosquittoWithResponder() {
  const broker = await startMosquitto('set_tcp_nodelay true\nmax_queued_messages 10000\n')
  const child = spawnTracked(process.execPath, ['--no-node-snapshot', SELF, '--role', 'responder', '--config', JSON.stringify({ port: broker.port })], {
    cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'],
  })
  await waitForLine(child.stdout, (l) => parseJsonLine(l)?.ready === true || undefined, 15_000, 'mosquitto responder ready')
  return {
    kind: 'mosquitto',
    port: broker.port,
    pid: broker.pid,
    responderPid: child.pid,
    pids: [broker.pid, child.pid],
    stop: async () => {
      child.stdin.end()
      await Promise.race([child.exited, sleep(3000)])
      await stopChild(child, 3000)
      await broker.stop()
      return {}
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Load generators, driven over stdin/stdout.

async function startGenerators(port) {
  const per = Math.ceil(DEVICES / GENERATORS)
  const gens = []
  for (let g = 0; g < GENERATORS; g++) {
    const first = g * per
    const count = Math.min(per, DEVICES - first)
    if (count <= 0) break
    const config = { port, first, count, connectRate: CONNECT_RATE / GENERATORS, intervalMs: INTERVAL_MS, timeoutMs: TIMEOUT_MS }
    const child = spawnTracked(process.execPath, ['--no-node-snapshot', SELF, '--role', 'loadgen', '--config', JSON.stringify(config)], {
      cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'],
    })
    const gen = { child, pid: child.pid, count, waiters: [], lastProgress: undefined }
    let buf = ''
    child.stdout.on('data', (chunk) => {
      buf += chunk.toString('utf8')
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = parseJsonLine(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
        if (msg === undefined) continue
        if (msg.connected !== undefined && msg.ready === undefined) gen.lastProgress = msg
        const i = gen.waiters.findIndex((w) => w.match(msg))
        if (i >= 0) gen.waiters.splice(i, 1)[0].resolve(msg)
      }
    })
    gen.expect = (match, ms, what) => withTimeout(new Promise((resolve, reject) => {
      gen.waiters.push({ match, resolve })
      child.exited.then(({ code }) => reject(new Error(`load generator ${g} exited (code ${code}) before: ${what}`)))
    }), ms, what)
    gen.ask = (cmd, match, ms, what) => {
      const p = gen.expect(match, ms, what)
      child.stdin.write(`${cmd}\n`)
      return p
    }
    gens.push(gen)
  }
  return gens
}

const markAll = (gens) => Promise.all(gens.map((g) => g.ask('mark', (m) => m.window !== undefined, 15_000, 'window mark').then((m) => m.window)))

function mergeWindows(ws) {
  const out = { sent: 0, accepted: 0, rejected: 0, rejectCodes: {}, timeouts: 0, publishErrors: 0, deltas: 0, unmatched: 0, latencies: [], connected: 0, disconnects: 0, skipped: 0, outstanding: 0 }
  for (const w of ws) {
    for (const k of ['sent', 'accepted', 'rejected', 'timeouts', 'publishErrors', 'deltas', 'unmatched', 'connected', 'disconnects', 'skipped', 'outstanding']) out[k] += w[k]
    for (const [c, n] of Object.entries(w.rejectCodes)) out.rejectCodes[c] = (out.rejectCodes[c] ?? 0) + n
    for (const l of w.latencies) out.latencies.push(l)
  }
  out.genCpu = ws.map((w) => w.cpu)
  out.genEldP99Ms = Math.max(...ws.map((w) => w.eldP99Ms))
  out.genEldMaxMs = Math.max(...ws.map((w) => w.eldMaxMs))
  return out
}

/** Extra memory fields of /proc/<pid>/status, KiB. */
function memoryDetail(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM'), anonKb: field('RssAnon'), fileKb: field('RssFile') }
}

// ---------------------------------------------------------------------------------------------
// One target under the swarm.

async function runTarget(kind, profileDir) {
  await waitForQuiet([process.pid], { threshold: OTHER_MAX, what: `starting ${kind}` })
  const target = kind === 'coordinator' ? await startCoordinator(profileDir) : kind === 'aedes' ? await startAedes() : await startMosquittoWithResponder()
  let gens = []
  let stopped
  try {
    await sleep(1000)
    const idle = memoryDetail(target.pid)
    const cpuAtIdle = cpuSecondsOf(target.pid)
    const rampT0 = performance.now()
    gens = await startGenerators(target.port)
    const rampLimit = (DEVICES / CONNECT_RATE) * 1000 + 60_000
    const progress = setInterval(() => {
      const n = gens.reduce((s, g) => s + (g.lastProgress?.connected ?? 0), 0)
      process.stdout.write(`  ${kind.padEnd(11)} ramp: ${n}/${DEVICES} connected, RSS ${round(memoryOf(target.pid).rssKb / 1024, 1)} MB\n`)
    }, 2000)
    let readies
    try {
      readies = await Promise.all(gens.map((g) => g.expect((m) => m.ready === true, rampLimit, 'all devices connected')))
    } finally {
      clearInterval(progress)
    }
    const rampMs = performance.now() - rampT0
    const connected = readies.reduce((n, r) => n + r.connected, 0)
    const connectFailures = readies.reduce((n, r) => n + r.failures, 0)
    const rampCpu = (cpuSecondsOf(target.pid) - cpuAtIdle) / (rampMs / 1000)
    const afterRamp = memoryDetail(target.pid)
    process.stdout.write(`  ${kind.padEnd(11)} ${connected}/${DEVICES} connected in ${fmtInt(rampMs)} ms (${connectFailures} failed attempts), ` +
      `RSS ${round(afterRamp.rssKb / 1024, 1)} MB (idle before: ${round(idle.rssKb / 1024, 1)} MB)\n`)
    if (connected < DEVICES) throw new Error(`${kind}: only ${connected} of ${DEVICES} devices connected`)

    await sleep(WARMUP_MS)
    const ours = () => [process.pid, ...target.pids, ...gens.map((g) => g.pid)]
    await waitForQuiet(ours(), { threshold: OTHER_MAX, what: `the ${kind} windows` })
    await markAll(gens)

    const windows = []
    const rssSamples = []
    while (windows.filter((w) => !w.disturbed).length < WINDOWS && windows.length < WINDOWS + RETRIES) {
      const t0 = performance.now()
      const cpu0 = target.pids.map((p) => cpuSecondsOf(p))
      const self0 = selfCpuSeconds()
      const others0 = otherProcessesCpu(ours())
      const samples = []
      for (let s = 1; s * 1000 <= WINDOW_MS; s++) {
        await sleep(t0 + s * 1000 - performance.now())
        samples.push(memoryDetail(target.pid))
      }
      await sleep(t0 + WINDOW_MS - performance.now())
      const gw = await markAll(gens)
      const seconds = (performance.now() - t0) / 1000
      const cpu = target.pids.map((p, i) => (cpuSecondsOf(p) - cpu0[i]) / seconds)
      const otherCpu = otherCpuBetween(others0, otherProcessesCpu(ours())) / seconds
      const w = {
        ...mergeWindows(gw),
        seconds,
        brokerCpu: cpu[0],
        responderCpu: cpu[1],
        mainCpu: (selfCpuSeconds() - self0) / seconds,
        otherCpu,
        disturbed: otherCpu > OTHER_MAX,
        rssKb: samples.map((x) => x.rssKb),
        anonKb: samples.map((x) => x.anonKb),
      }
      w.rate = w.accepted / seconds
      windows.push(w)
      if (!w.disturbed) rssSamples.push(...samples)
      if (HEAP && target.memoryUsage) {
        w.heap = (await target.memoryUsage(false))?.before
        process.stdout.write(`  ${kind.padEnd(11)} memory (MB; spaces: size/used): ${JSON.stringify(w.heap)}\n`)
      }
      process.stdout.write(`  ${kind.padEnd(11)} window ${windows.length}: ${round(w.rate, 1)} accepted/s  p50 ${round(percentile(w.latencies, 50), 2)} ms  ` +
        `p99 ${round(percentile(w.latencies, 99), 2)} ms  max ${round(Math.max(...w.latencies), 1)} ms  broker CPU ${fmtPct(w.brokerCpu, 1)}` +
        `${w.responderCpu !== undefined ? ` (+ responder ${fmtPct(w.responderCpu, 1)})` : ''}  RSS ${round(median(w.rssKb) / 1024, 1)} MB  ` +
        `generators ${w.genCpu.map((c) => fmtPct(c, 0)).join('/')}  other ${fmtPct(otherCpu)}  errors ${w.rejected + w.timeouts + w.publishErrors}` +
        `${w.disturbed ? '  (disturbed)' : ''}\n`)
      if (w.disturbed) {
        await waitForQuiet(ours(), { threshold: OTHER_MAX, what: 'the next window' })
        await markAll(gens) // what happened while waiting is not measured
      }
    }
    const peak = memoryDetail(target.pid)
    const heap = HEAP ? await target.memoryUsage?.(true) : undefined
    if (heap) process.stdout.write(`  ${kind.padEnd(11)} process.memoryUsage() MB: ${JSON.stringify(heap.before)}; after a full GC: ${JSON.stringify(heap.afterGc)}\n`)
    // Stop the devices first (their last replies drain), then the broker.
    const finals = await Promise.all(gens.map((g) => g.ask('stop', (m) => m.stopped === true, 20_000, 'load generator stop')))
    await Promise.all(gens.map((g) => stopChild(g.child, 5000)))
    stopped = await target.stop()
    return { ...summarize(kind, target, windows, rssSamples, { idle, afterRamp, peak, rampMs, rampCpu, connected, connectFailures, finals, stopped }), ...(heap ? { heap } : {}) }
  } finally {
    for (const g of gens) await stopChild(g.child, 2000)
    if (stopped === undefined) await target.stop().catch(() => {})
  }
}

function summarize(kind, target, windows, rssSamples, x) {
  const clean = windows.filter((w) => !w.disturbed)
  const used = clean.length > 0 ? clean : windows
  const seconds = used.reduce((s, w) => s + w.seconds, 0)
  const lat = used.flatMap((w) => w.latencies)
  const sum = (k) => used.reduce((s, w) => s + w[k], 0)
  const wavg = (f) => used.reduce((s, w) => s + f(w) * w.seconds, 0) / seconds
  const rss = (rssSamples.length > 0 ? rssSamples : [x.peak]).map((s) => s.rssKb / 1024)
  const anon = (rssSamples.length > 0 ? rssSamples : [x.peak]).map((s) => s.anonKb / 1024)
  const rejectCodes = {}
  for (const w of used) for (const [c, n] of Object.entries(w.rejectCodes)) rejectCodes[c] = (rejectCodes[c] ?? 0) + n
  return {
    kind,
    devices: DEVICES,
    connected: x.connected,
    connectFailures: x.connectFailures,
    rampMs: round(x.rampMs),
    rampCpu: round(x.rampCpu, 3),
    measuredSeconds: round(seconds, 1),
    windows: used.length,
    disturbedWindows: windows.length - clean.length,
    sent: sum('sent'),
    accepted: sum('accepted'),
    acceptedPerSec: round(sum('accepted') / seconds, 1),
    p50Ms: round(percentile(lat, 50), 2),
    p99Ms: round(percentile(lat, 99), 2),
    p999Ms: round(percentile(lat, 99.9), 2),
    maxMs: round(Math.max(...lat), 2),
    rejected: sum('rejected'),
    rejectCodes,
    timeouts: sum('timeouts'),
    publishErrors: sum('publishErrors'),
    unmatched: sum('unmatched'),
    deltas: sum('deltas'),
    disconnects: Math.max(...used.map((w) => w.disconnects)),
    skipped: Math.max(...used.map((w) => w.skipped)),
    unansweredAtStop: x.finals.reduce((n, f) => n + f.unanswered, 0),
    brokerCpu: round(wavg((w) => w.brokerCpu), 4),
    brokerCpuMaxWindow: round(Math.max(...used.map((w) => w.brokerCpu)), 4),
    responderCpu: used[0]?.responderCpu === undefined ? undefined : round(wavg((w) => w.responderCpu), 4),
    generatorCpu: used[0].genCpu.map((_, i) => round(wavg((w) => w.genCpu[i]), 4)),
    generatorEventLoopP99Ms: round(Math.max(...used.map((w) => w.genEldP99Ms)), 2),
    generatorEventLoopMaxMs: round(Math.max(...used.map((w) => w.genEldMaxMs)), 2),
    mainCpu: round(wavg((w) => w.mainCpu), 4),
    otherCpu: round(wavg((w) => w.otherCpu), 4),
    idleRssMb: round(x.idle.rssKb / 1024, 1),
    rssAfterRampMb: round(x.afterRamp.rssKb / 1024, 1),
    steadyRssMb: round(median(rss), 1),
    rssMinMb: round(Math.min(...rss), 1),
    rssMaxMb: round(Math.max(...rss), 1),
    rssFirstMb: round(rss[0], 1),
    rssLastMb: round(rss.at(-1), 1),
    steadyRssAnonMb: round(median(anon), 1),
    peakRssMb: round(x.peak.hwmKb / 1024, 1),
    perDeviceKb: round((median(rss) - x.idle.rssKb / 1024) * 1024 / DEVICES, 1),
    ...(target.readyMs !== undefined ? { readyMs: round(target.readyMs) } : {}),
    ...(target.logs ? { logLines: target.logs.lines, logLevels: target.logs.byLevel, logWarnings: target.logs.tail } : {}),
    ...(x.stopped?.exit !== undefined ? { exit: x.stopped.exit, stopMs: round(x.stopped.stopMs) } : {}),
  }
}

// ---------------------------------------------------------------------------------------------

const LABEL = {
  coordinator: 'coordinator (daemon, defaults)',
  aedes: 'bare aedes 1.2 + echo responder',
  mosquitto: 'mosquitto 2.0 + echo responder',
}

async function main() {
  process.stdout.write(`Figure "swarm": ${fmtInt(DEVICES)} devices in ${GENERATORS} load-generator process(es), each reporting its shadow every ` +
    `${INTERVAL_MS} ms (QoS 1, random phase), connections ramped at ${CONNECT_RATE}/s; ${WARMUP_MS / 1000} s warm-up, then ` +
    `${WINDOWS} x ${WINDOW_MS / 1000} s measured; targets: RSS <= ${TARGET_RSS_MB} MB, p99 <= ${TARGET_P99_MS} ms\n`)
  const loadBefore = loadAverage()
  let profileDir
  if (PROFILE) profileDir = arg('profile-dir', undefined) ?? tempDir('edge-bench-swarm-prof-').dir
  const results = {}
  for (const kind of TARGETS) {
    if (!(kind in LABEL)) throw new Error(`unknown target '${kind}'; choose from ${Object.keys(LABEL).join(', ')}`)
    results[kind] = await runTarget(kind, kind === 'coordinator' ? profileDir : undefined)
    await sleep(1000)
  }

  const c = results.coordinator
  const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? round(a / b, 2) : null)
  const ratios = {}
  for (const base of ['aedes', 'mosquitto']) {
    const b = results[base]
    if (!c || !b) continue
    const baseCpu = b.brokerCpu + (b.responderCpu ?? 0)
    ratios[base] = {
      cpu: ratio(c.brokerCpu, baseCpu),
      steadyRss: ratio(c.steadyRssMb, b.steadyRssMb),
      peakRss: ratio(c.peakRssMb, b.peakRssMb),
      p50: ratio(c.p50Ms, b.p50Ms),
      p99: ratio(c.p99Ms, b.p99Ms),
    }
  }
  const rows = Object.values(results).map((r) => [
    LABEL[r.kind], round(r.acceptedPerSec, 1), r.p50Ms, r.p99Ms, r.maxMs,
    `${fmtPct(r.brokerCpu, 1)}${r.responderCpu !== undefined ? ` + ${fmtPct(r.responderCpu, 1)}` : ''}`,
    r.steadyRssMb, r.peakRssMb, r.rejected + r.timeouts + r.publishErrors + r.disconnects + r.connectFailures,
    r.generatorCpu.map((x) => fmtPct(x, 0)).join(' / '), fmtPct(r.otherCpu),
  ])
  printTable(`${fmtInt(DEVICES)} devices x 1 shadow update / ${INTERVAL_MS} ms (measured ${c?.measuredSeconds ?? Object.values(results)[0].measuredSeconds} s)`,
    ['target', 'accepted/s', 'p50 ms', 'p99 ms', 'max ms', 'CPU (1 core = 100%)', 'steady RSS MB', 'peak RSS MB', 'errors', 'generator CPU', 'other CPU'], rows)
  if (Object.keys(ratios).length > 0) {
    printTable('Coordinator relative to the baselines', ['baseline', 'CPU', 'steady RSS', 'peak RSS', 'p50', 'p99'],
      Object.entries(ratios).map(([b, r]) => [b, `${r.cpu}x`, `${r.steadyRss}x`, `${r.peakRss}x`, `${r.p50}x`, `${r.p99}x`]))
  }
  if (c) {
    process.stdout.write(`coordinator: idle RSS ${c.idleRssMb} MB before the swarm, ${c.rssAfterRampMb} MB after the ramp, steady ${c.steadyRssMb} MB ` +
      `(${c.rssMinMb}-${c.rssMaxMb}; first ${c.rssFirstMb}, last ${c.rssLastMb}; anonymous ${c.steadyRssAnonMb} MB), about ${c.perDeviceKb} KB a device over idle; ` +
      `ramp CPU ${fmtPct(c.rampCpu)}; ${c.logLines} log lines; stop ${c.stopMs} ms (exit ${c.exit})\n` +
      `errors: rejected ${c.rejected} ${JSON.stringify(c.rejectCodes)}, timeouts ${c.timeouts}, publish errors ${c.publishErrors}, disconnects ${c.disconnects}, ` +
      `unmatched replies ${c.unmatched}, deltas ${c.deltas}, unanswered at stop ${c.unansweredAtStop}\n` +
      `targets: RSS <= ${TARGET_RSS_MB} MB: steady ${c.steadyRssMb} MB, peak ${c.peakRssMb} MB (${c.peakRssMb <= TARGET_RSS_MB ? 'met' : c.steadyRssMb <= TARGET_RSS_MB ? 'met at steady state, NOT at peak' : 'NOT met'}); ` +
      `p99 <= ${TARGET_P99_MS} ms: ${c.p99Ms} ms (${c.p99Ms <= TARGET_P99_MS ? 'met' : 'NOT met'})\n`)
  }
  process.stdout.write('generator CPU: each load-generator process (100% = one core); other CPU: every other process on the machine.\n')
  let profile
  if (PROFILE && c) {
    const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'))
    if (files.length > 0) {
      profile = summarizeProfile(join(profileDir, files[0]), 20)
      printProfileSummary(`CPU profile of the coordinator daemon (the whole run: start, ramp, warm-up, windows) [${join(profileDir, files[0])}]`, profile)
    }
  }
  printResult({
    figure: 'swarm',
    machine: machine(),
    loadAverageBefore: loadBefore,
    params: { ...(SYNCHRONOUS ? { synchronous: SYNCHRONOUS } : {}), ...(HEAP ? { inspector: true } : {}), ...(NODE_FLAGS.length ? { nodeFlags: NODE_FLAGS } : {}), devices: DEVICES, generators: GENERATORS, connectRatePerSec: CONNECT_RATE, intervalMs: INTERVAL_MS, qos: 1, warmupMs: WARMUP_MS, windowMs: WINDOW_MS, windows: WINDOWS, timeoutMs: TIMEOUT_MS },
    results,
    ratios,
    target: { rssMb: TARGET_RSS_MB, p99Ms: TARGET_P99_MS },
    ...(profile ? { profile: { self: profile.self.slice(0, 10), components: profile.components.slice(0, 10) } } : {}),
  })
}

if (ROLE === 'loadgen') await loadgen()
else if (ROLE === 'responder') await responder()
else runMain(() => withTimeout(main(), 13 * 60_000, 'swarm figure'))
