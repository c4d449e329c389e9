// Figure 2: shadow updates. DEVICES simulated devices (MQTT.js, client id dev-NNN, anonymous
// loopback) each send '$aws/things/dev-NNN/shadow/update' requests with a clientToken and wait for
// their own 'update/accepted' reply, keeping --inflight requests outstanding (closed loop).
// Brokers, each in its own process, with this process as the load generator:
//   baseline     bare aedes + an in-process responder echoing each request to '<topic>/accepted'
//   full/normal  the coordinator with store.synchronous 'full' / 'normal'
// shadow.maxRequestsPerSecondPerThing (AWS: 20/s a thing) is set to 0 (no limit) for throughput.
//
//   node --no-node-snapshot test/bench/shadow.mjs [--devices 100] [--inflight 4] [--warmup-ms 2000]
//        [--window-ms 5000] [--windows 3] [--modes baseline,full,normal] [--sockets nodelay,default]
//        [--profile [--profile-dir DIR]]  (afterwards, CPU-profile the baseline and the coordinator
//        ('normal', nodelay sockets, where it is CPU-bound) over one window each)
//
// Rate = accepted replies per second, median over the measurement windows; latency = request
// publish to its accepted reply, p50/p99 over all measured windows. The headline is 'nodelay':
// TCP_NODELAY on both brokers' server sockets, as the coordinator's own listeners set it.
import { join } from 'node:path'
import { printProfileSummary, SHADOW_STAGES, summarizeProfile } from './profile.mjs'
import {
  arg, connectMany, cpuSecondsOf, fmtInt, fmtPct, loadAverage, machine, median, memoryOf, mqttClose, numArg,
  percentile, printResult, printTable, round, runMain, selfCpuSeconds, sleep, startBrokerHost, otherProcessesCpu, otherCpuBetween, tempDir, waitForQuiet,
} from './lib.mjs'

const DEVICES = numArg('devices', 100)
const INFLIGHT = numArg('inflight', 4)
const WARMUP_MS = numArg('warmup-ms', 2000)
const WINDOW_MS = numArg('window-ms', 5000)
const WINDOWS = numArg('windows', 3)
const MODES = arg('modes', 'baseline,full,normal').split(',')
const OTHER_MAX = numArg('other-max', 0.25)
const EXTRA_WINDOWS = numArg('retries', 3)
const DRAIN_MS = 10_000

const deviceId = (i) => `dev-${String(i).padStart(3, '0')}`

// 'nodelay' (the headline): TCP_NODELAY on every server socket in the broker process (bench-side
// wrapper). The coordinator's listeners set it themselves, so only the aedes baseline changes: the
// fair comparison. 'default' (a diagnostic): the sockets as each broker ships them; bare aedes
// leaves Nagle on, which holds each echo ~40 ms behind its PUBACK and flatters the coordinator.
const SOCKETS = arg('sockets', 'nodelay,default').split(',')
/** The coordinator's share of the echo responder's rate, with both on TCP_NODELAY. */
const TARGET_SHARE = 0.6

async function startTarget(mode, sockets) {
  const SERVER_NODELAY = sockets === 'nodelay'
  if (mode === 'baseline') return startBrokerHost('aedes-echo', { serverNoDelay: SERVER_NODELAY })
  if (mode !== 'full' && mode !== 'normal') throw new Error(`unknown mode ${mode}`)
  const data = tempDir('edge-bench-shadow-')
  const host = await startBrokerHost('coordinator', {
    serverNoDelay: SERVER_NODELAY,
    dataDir: data.dir,
    overrides: { shadow: { maxRequestsPerSecondPerThing: 0 }, store: { synchronous: mode } },
  })
  return { ...host, stop: async () => { await host.stop(); data.remove() } }
}

function newWindow() {
  return { accepted: 0, rejected: 0, rejectCodes: {}, latencies: [], startedAt: performance.now(), cpu: snapshotCpu() }
}

let target
function snapshotCpu() {
  return { broker: cpuSecondsOf(target.pid), self: selfCpuSeconds(), others: otherProcessesCpu([process.pid, target.pid]) }
}

/**
 * Runs the closed-loop load against `target`; resolves with one record per window. With
 * `profileFile`, runs one window with the broker process's CPU profiler on.
 */
async function runLoad(profileFile) {
  const ids = Array.from({ length: DEVICES }, (_, i) => deviceId(i))
  const clients = await connectMany(target.port, ids, 10)
  try {
    await Promise.all(clients.map((c, i) => c.subscribeAsync([
      `$aws/things/${ids[i]}/shadow/update/accepted`, `$aws/things/${ids[i]}/shadow/update/rejected`,
    ], { qos: 1 }).then((granted) => {
      if (granted.some((g) => g.qos !== 1)) throw new Error(`${ids[i]}: subscription refused: ${JSON.stringify(granted)}`)
    })))
    let running = true
    let outstanding = 0
    let unmatched = 0
    let win = newWindow()
    const pending = new Map()
    const devices = clients.map((client, i) => ({ client, id: ids[i], seq: 0, topic: `$aws/things/${ids[i]}/shadow/update` }))
    const opts = { qos: 1 }
    const send = (dev) => {
      const seq = ++dev.seq
      const clientToken = `${dev.id}:${seq}`
      pending.set(clientToken, performance.now())
      outstanding++
      dev.client.publish(dev.topic, JSON.stringify({ state: { reported: { seq, temperature: 20 + (seq % 7), online: true } }, clientToken }), opts)
    }
    let drained
    const allAnswered = new Promise((res) => { drained = res })
    devices.forEach((dev) => {
      dev.client.on('message', (topic, message) => {
        const now = performance.now()
        const body = JSON.parse(message.toString('utf8'))
        const t0 = pending.get(body.clientToken)
        if (t0 === undefined) {
          unmatched++
          return
        }
        pending.delete(body.clientToken)
        outstanding--
        if (topic.endsWith('/accepted')) {
          win.accepted++
          win.latencies.push(now - t0)
        } else {
          win.rejected++
          win.rejectCodes[body.code] = (win.rejectCodes[body.code] ?? 0) + 1
        }
        if (running) send(dev)
        else if (outstanding === 0) drained()
      })
    })
    for (const dev of devices) for (let k = 0; k < INFLIGHT; k++) send(dev)

    const close = (w) => {
      const seconds = (performance.now() - w.startedAt) / 1000
      const cpu = snapshotCpu()
      const brokerCpu = (cpu.broker - w.cpu.broker) / seconds
      const clientCpu = (cpu.self - w.cpu.self) / seconds
      const otherCpu = otherCpuBetween(w.cpu.others, cpu.others) / seconds
      return { ...w, seconds, rate: w.accepted / seconds, brokerCpu, clientCpu, otherCpu, disturbed: otherCpu > OTHER_MAX }
    }
    await sleep(WARMUP_MS)
    await waitForQuiet([process.pid, target.pid], { threshold: OTHER_MAX, what: `the ${target.mode} windows` })
    const windows = []
    const wanted = profileFile === undefined ? WINDOWS : 1
    while (windows.filter((w) => !w.disturbed).length < wanted && windows.length < wanted + EXTRA_WINDOWS) {
      if (profileFile !== undefined) await target.profileStart()
      win = newWindow()
      await sleep(WINDOW_MS)
      const w = close(win)
      if (profileFile !== undefined) await target.profileStop(profileFile)
      // The load keeps running; after a disturbed window, wait for quiet before the next one.
      if (w.disturbed) await waitForQuiet([process.pid, target.pid], { threshold: OTHER_MAX, what: 'the next window' })
      windows.push(w)
      process.stdout.write(`  ${target.mode.padEnd(8)} window ${windows.length}: ${fmtInt(w.rate).padStart(6)} accepted/s  p50 ${round(percentile(w.latencies, 50), 1)} ms  ` +
        `p99 ${round(percentile(w.latencies, 99), 1)} ms  rejected ${w.rejected}  broker cpu ${fmtPct(w.brokerCpu)}  client cpu ${fmtPct(w.clientCpu)}  ` +
        `other ${fmtPct(w.otherCpu)}${w.disturbed ? '  (disturbed)' : ''}\n`)
    }
    running = false
    win = newWindow()
    if (outstanding > 0) await Promise.race([allAnswered, sleep(DRAIN_MS)])
    return { windows, unanswered: outstanding, unmatched }
  } finally {
    await Promise.all(clients.map(mqttClose))
  }
}

function summarize(windows, extra) {
  const clean = windows.filter((w) => !w.disturbed)
  const used = clean.length > 0 ? clean : windows
  const latencies = used.flatMap((w) => w.latencies)
  return {
    acceptedPerSec: round(median(used.map((w) => w.rate))),
    min: round(Math.min(...used.map((w) => w.rate))),
    max: round(Math.max(...used.map((w) => w.rate))),
    p50Ms: round(percentile(latencies, 50), 2),
    p99Ms: round(percentile(latencies, 99), 2),
    rejected: used.reduce((n, w) => n + w.rejected, 0),
    rejectCodes: used.reduce((acc, w) => {
      for (const [code, n] of Object.entries(w.rejectCodes)) acc[code] = (acc[code] ?? 0) + n
      return acc
    }, {}),
    brokerCpu: round(median(used.map((w) => w.brokerCpu)), 2),
    clientCpu: round(median(used.map((w) => w.clientCpu)), 2),
    otherCpu: round(median(used.map((w) => w.otherCpu)), 2),
    windows: used.length,
    disturbedWindows: windows.length - clean.length,
    ...extra,
  }
}

const LABEL = { baseline: 'aedes + echo responder', full: "coordinator, synchronous 'full'", normal: "coordinator, synchronous 'normal'" }

async function main() {
  process.stdout.write(`Figure 2: shadow updates, ${DEVICES} devices x ${INFLIGHT} requests in flight (closed loop, QoS 1), ` +
    `${WINDOWS} windows of ${WINDOW_MS} ms after ${WARMUP_MS} ms warm-up\n` +
    'NOTE: shadow.maxRequestsPerSecondPerThing (AWS default 20/s per thing) is set to 0 (unlimited) for this throughput benchmark;\n' +
    '      with the default, each device would be held to 20 requests/s (2,000/s for 100 devices) and the rest rejected with 429.\n')
  const loadBefore = loadAverage()
  const results = {}
  for (const sockets of SOCKETS) {
    results[sockets] = {}
    for (const mode of MODES) {
      target = await startTarget(mode, sockets)
      target.mode = `${mode}/${sockets}`
      try {
        const { windows, unanswered, unmatched } = await runLoad()
        results[sockets][mode] = summarize(windows, { unanswered, unmatched, brokerPeakRssMb: round(memoryOf(target.pid).hwmKb / 1024, 1) })
      } finally {
        await target.stop()
      }
      await sleep(500)
    }
  }

  const ratios = {}
  for (const sockets of SOCKETS) {
    const r = results[sockets]
    const base = r.baseline?.acceptedPerSec
    const title = sockets === 'nodelay'
      ? 'Shadow update round trips, TCP_NODELAY on both brokers\' server sockets (the fair comparison)'
      : 'Diagnostic: server sockets as each broker ships them (bare aedes with Nagle on: its echo is held back ~40 ms)'
    // Per broker CPU-second: what one core buys, which a busy shared machine disturbs less than the rate.
    const perCpu = (x) => x.acceptedPerSec / x.brokerCpu
    printTable(title, ['target', 'accepted/s', 'range', 'p50 ms', 'p99 ms', 'vs baseline', 'broker CPU', 'per CPU-s', 'vs baseline', 'client CPU', 'other CPU', 'rejected'],
      Object.entries(r).map(([mode, x]) => [
        LABEL[mode], fmtInt(x.acceptedPerSec), `${fmtInt(x.min)}-${fmtInt(x.max)}`, x.p50Ms, x.p99Ms,
        base ? fmtPct(x.acceptedPerSec / base) : '', fmtPct(x.brokerCpu), fmtInt(perCpu(x)),
        r.baseline ? fmtPct(perCpu(x) / perCpu(r.baseline)) : '', fmtPct(x.clientCpu), fmtPct(x.otherCpu), x.rejected,
      ]))
    ratios[sockets] = Object.fromEntries(['full', 'normal'].filter((m) => r[m] && base).map((m) => [m, round(r[m].acceptedPerSec / base, 3)]))
    for (const mode of ['full', 'normal']) {
      if (!r[mode]) continue
      const share = base ? r[mode].acceptedPerSec / base : NaN
      const vsEcho = sockets === 'nodelay' && base ? `, ${fmtPct(share)} of the echo responder (target >= ${fmtPct(TARGET_SHARE)}: ${share >= TARGET_SHARE ? 'met' : 'NOT met'})` : ''
      process.stdout.write(`coordinator (${mode}, ${sockets} sockets): ${fmtInt(r[mode].acceptedPerSec)} accepted updates/s (target >= 5,000/s: ${r[mode].acceptedPerSec >= 5000 ? 'met' : 'NOT met'})${vsEcho}\n`)
    }
  }
  let profile
  if (process.argv.includes('--profile')) {
    profile = {}
    const dir = tempDir('edge-bench-prof-')
    const keep = arg('profile-dir', undefined)
    for (const mode of ['baseline', 'normal']) {
      target = await startTarget(mode, 'nodelay')
      target.mode = `${mode}/nodelay/profiled`
      const file = join(keep ?? dir.dir, `shadow-${mode}.cpuprofile`)
      let rate
      try {
        rate = (await runLoad(file)).windows.at(-1).rate
      } finally {
        await target.stop()
      }
      profile[mode] = summarizeProfile(file, 15, mode === 'baseline' ? {} : SHADOW_STAGES)
      printProfileSummary(`CPU profile of the ${LABEL[mode]} process (nodelay sockets), one ${WINDOW_MS} ms window at ${fmtInt(rate)} accepted/s` +
        (keep ? ` [${file}]` : ''), profile[mode])
    }
    dir.remove()
  }
  process.stdout.write(`broker/client/other CPU: as in figure 1 (100% = one core); windows where other processes used more than ${fmtPct(OTHER_MAX)} were replaced.\n`)
  printResult({
    figure: 'shadow',
    machine: machine(),
    loadAverageBefore: loadBefore,
    params: { devices: DEVICES, inflightPerDevice: INFLIGHT, qos: 1, warmupMs: WARMUP_MS, windowMs: WINDOW_MS, windows: WINDOWS, maxRequestsPerSecondPerThing: 0 },
    results,
    ratios,
    target: { acceptedPerSec: 5000, shareOfEchoNodelay: TARGET_SHARE },
    ...(profile ? { profile: Object.fromEntries(Object.entries(profile).map(([k, x]) => [k, { self: x.self.slice(0, 10), components: x.components.slice(0, 10), stages: x.stages }])) } : {}),
  })
}

runMain(main)
