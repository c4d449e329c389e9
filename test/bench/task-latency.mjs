// Figure: task latency. A device publishes a reading on MQTT; a task triggered by it republishes a
// converted reading; a subscriber receives it. End to end, device publish to subscriber receipt,
// at a fixed rate (open loop), over real loopback sockets.
//   plain  the same handler body as a plain function in the broker's process, subscribed on the same
//          broker in-process (LocalBus.subscribe on aedes) and publishing through it: the baseline
//   task   the handler in its isolated-vm sandbox, behind the mqtt trigger, its queues and the host API
// The broker and task runtime run in their own process (task-host.mjs); this process is the
// device and the subscriber, and timestamps both ends with one clock.
//
// The machine is shared: a run during which other processes used more than --other-max of a core
// is reported as disturbed and run again (at most --retries more times per mode and round).
//
//   node --no-node-snapshot test/bench/task-latency.mjs [--rate 1000] [--seconds 10] [--warmup-ms 2000]
//        [--qos 0] [--rounds 3] [--other-max 0.25] [--retries 3] [--profile [--profile-dir DIR]]
import { join } from 'node:path'
import { printProfileSummary, summarizeProfile } from './profile.mjs'
import {
  BENCH_DIR, ROOT, arg, cpuSecondsOf, fmtInt, fmtPct, loadAverage, machine, memoryOf, mqttClose, mqttConnect, numArg, otherCpuBetween,
  otherProcessesCpu, parseJsonLine, percentile, printResult, printTable, round, runMain, sleep, spawnTracked, tempDir, waitForLine, waitForQuiet,
} from './lib.mjs'

const RATE = numArg('rate', 1000)
const SECONDS = numArg('seconds', 10)
const WARMUP_MS = numArg('warmup-ms', 2000)
const QOS = numArg('qos', 0)
const ROUNDS = numArg('rounds', 3)
const OTHER_MAX = numArg('other-max', 0.25)
const RETRIES = numArg('retries', 3)
const PROFILE = process.argv.includes('--profile')
const MODES = ['plain', 'task']
const TARGET = { p50Ms: 1, p99Ms: 5 }

const IN_TOPIC = { plain: 'things/dev-1/plain', task: 'things/dev-1/telemetry' }
const OUT_TOPIC = { plain: 'bench/out/plain', task: 'bench/out/task' }

/** The handler both modes run; only its output topic differs. */
const handler = (out) => `exports.handler = async (event, ctx) => {
  const reading = event.json
  await ctx.publish('${out}', { seq: reading.seq, device: event.topic.split('/')[1], fahrenheit: reading.celsius * 9 / 5 + 32 }, { qos: ${QOS} })
}`

async function startHost(dataDir) {
  const options = {
    dataDir,
    anonymousPolicies: ['bench-sink'],
    policies: [{ name: 'bench-sink', statements: [{ effect: 'allow', actions: ['subscribe'], resources: ['bench/out/#'] }] }],
    tasks: [{
      name: 'relay',
      body: handler(OUT_TOPIC.task),
      extra: { triggers: [{ type: 'mqtt', filter: 'things/+/telemetry' }], permissions: { subscribe: ['things/+/telemetry'], publish: [OUT_TOPIC.task] } },
    }],
    plain: [{ filter: 'things/+/plain', body: handler(OUT_TOPIC.plain) }],
  }
  const child = spawnTracked(process.execPath, ['--no-node-snapshot', join(BENCH_DIR, 'task-host.mjs'), JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'inherit'], cwd: ROOT })
  const ready = await waitForLine(child.stdout, (line) => (parseJsonLine(line)?.ready === true ? parseJsonLine(line) : undefined), 30_000, 'task host ready')
  const ask = (line, match, what) => {
    const answer = waitForLine(child.stdout, (l) => match(parseJsonLine(l)) || undefined, 30_000, what)
    child.stdin.write(`${line}\n`)
    return answer
  }
  return {
    port: ready.port,
    pid: child.pid,
    metrics: async (name) => (await ask(`metrics ${name}`, (m) => m?.metrics !== undefined && m, 'task metrics')).metrics,
    profileStart: () => ask('profile-start', (m) => m?.profiling === true, 'profiler start'),
    profileStop: (file) => ask(`profile-stop ${file}`, (m) => m?.profiled === file, 'profile written'),
    stop: async () => {
      child.stdin.end()
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await child.exited
      clearTimeout(timer)
    },
  }
}

/** The device and the subscriber; `phase` sends at RATE and records end-to-end latencies. */
async function startLoad(port) {
  const device = await mqttConnect(port, { clientId: 'dev-1' })
  const sink = await mqttConnect(port, { clientId: 'bench-sink' })
  const granted = await sink.subscribeAsync('bench/out/#', { qos: QOS })
  if (granted[0]?.qos !== QOS) throw new Error(`subscription refused: ${JSON.stringify(granted)}`)
  const sentAt = new Map()
  let nextSeq = 0
  let latencies = []
  let unmatched = 0
  sink.on('message', (_topic, payload) => {
    const now = performance.now()
    const { seq } = JSON.parse(payload.toString('utf8'))
    const t0 = sentAt.get(seq)
    if (t0 === undefined) {
      unmatched++
      return
    }
    sentAt.delete(seq)
    latencies.push(now - t0)
  })
  return {
    /** Publishes RATE messages a second for `ms`; resolves with the latencies of the answers. */
    phase: async (mode, ms) => {
      latencies = []
      sentAt.clear()
      const total = Math.round((RATE * ms) / 1000)
      const t0 = performance.now()
      let sent = 0
      await new Promise((resolve) => {
        const timer = setInterval(() => {
          const due = Math.min(total, Math.floor(((performance.now() - t0) * RATE) / 1000))
          while (sent < due) {
            const seq = nextSeq++
            sentAt.set(seq, performance.now())
            device.publish(IN_TOPIC[mode], JSON.stringify({ seq, celsius: 21.5 }), { qos: QOS })
            sent++
          }
          if (sent >= total) {
            clearInterval(timer)
            resolve()
          }
        }, 1)
      })
      const seconds = (performance.now() - t0) / 1000
      // Stragglers: wait for answers still on their way.
      for (let i = 0; i < 100 && sentAt.size > 0; i++) await sleep(20)
      return { sent, seconds, latencies, lost: sentAt.size, unmatched }
    },
    close: async () => {
      await mqttClose(device)
      await mqttClose(sink)
    },
  }
}

/** Undisturbed runs only, unless every run was disturbed. */
function summarize(mode, all) {
  const clean = all.filter((r) => !r.disturbed)
  const runs = clean.length > 0 ? clean : all
  const latencies = runs.flatMap((r) => r.latencies)
  const sent = runs.reduce((n, r) => n + r.sent, 0)
  const seconds = runs.reduce((n, r) => n + r.seconds, 0)
  const hostCpu = runs.reduce((n, r) => n + r.hostCpu, 0)
  return {
    mode,
    ratePerSec: round(sent / seconds),
    sent,
    received: latencies.length,
    lost: runs.reduce((n, r) => n + r.lost, 0),
    p50Ms: round(percentile(latencies, 50), 3),
    p90Ms: round(percentile(latencies, 90), 3),
    p99Ms: round(percentile(latencies, 99), 3),
    maxMs: round(Math.max(...latencies), 2),
    hostCpu: round(hostCpu / seconds, 3),
    hostCpuUsPerMsg: round((hostCpu / sent) * 1e6, 1),
    otherCpu: round(Math.max(...runs.map((r) => r.otherCpu)), 2),
    runs: runs.length,
    disturbedRuns: all.length - clean.length,
  }
}

async function main() {
  process.stdout.write(`Figure: task latency, device publish -> handler -> publish -> subscriber, ${fmtInt(RATE)} msg/s (open loop, QoS ${QOS}), ` +
    `${ROUNDS} round(s) of ${SECONDS} s per mode after ${WARMUP_MS} ms warm-up\n`)
  const loadBefore = loadAverage()
  const data = tempDir('edge-bench-task-latency-')
  const host = await startHost(data.dir)
  let load
  const runs = { plain: [], task: [] }
  let profile
  try {
    load = await startLoad(host.port)
    for (const mode of MODES) await load.phase(mode, WARMUP_MS)
    const pids = [process.pid, host.pid]
    for (let round_ = 0; round_ < ROUNDS; round_++) {
      for (const mode of MODES) {
        for (let attempt = 0; attempt <= RETRIES; attempt++) {
          await waitForQuiet(pids, { threshold: OTHER_MAX, what: `the ${mode} run` })
          const cpu0 = cpuSecondsOf(host.pid)
          const others0 = otherProcessesCpu(pids)
          const r = await load.phase(mode, SECONDS * 1000)
          const otherCpu = otherCpuBetween(others0, otherProcessesCpu(pids)) / r.seconds
          const run = { ...r, hostCpu: cpuSecondsOf(host.pid) - cpu0, otherCpu, disturbed: otherCpu > OTHER_MAX }
          process.stdout.write(`  ${mode.padEnd(5)} round ${round_ + 1}: sent ${fmtInt(r.sent)}  received ${fmtInt(r.latencies.length)}  ` +
            `p50 ${round(percentile(r.latencies, 50), 3)} ms  p99 ${round(percentile(r.latencies, 99), 3)} ms  max ${round(Math.max(...r.latencies), 1)} ms  ` +
            `host cpu ${fmtPct(run.hostCpu / r.seconds)}  other ${fmtPct(otherCpu)}${run.disturbed ? '  (disturbed)' : ''}\n`)
          runs[mode].push(run)
          if (!run.disturbed) break
        }
      }
    }
    if (PROFILE) {
      const dir = tempDir('edge-bench-prof-')
      const file = join(arg('profile-dir', undefined) ?? dir.dir, 'task-latency-host.cpuprofile')
      await host.profileStart()
      await load.phase('task', SECONDS * 1000)
      await host.profileStop(file)
      profile = summarizeProfile(file, 15)
      printProfileSummary(`CPU profile of the broker + task runtime process, one ${SECONDS} s task run`, profile)
    }
  } finally {
    await load?.close()
  }
  const relay = await host.metrics('relay')
  const hostPeakRssMb = round(memoryOf(host.pid).hwmKb / 1024, 1)
  await host.stop()
  data.remove()

  const results = Object.fromEntries(MODES.map((m) => [m, summarize(m, runs[m])]))
  const { plain, task } = results
  const ratios = { p50: round(task.p50Ms / plain.p50Ms, 2), p99: round(task.p99Ms / plain.p99Ms, 2), cpuPerMsg: round(task.hostCpuUsPerMsg / plain.hostCpuUsPerMsg, 2) }
  const LABEL = { plain: 'plain function (baseline)', task: 'task in its sandbox' }
  printTable(`End-to-end latency at ${fmtInt(RATE)} msg/s`, ['handler', 'msg/s', 'sent', 'received', 'lost', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'host CPU', 'CPU µs/msg'],
    MODES.map((m) => {
      const x = results[m]
      return [LABEL[m], fmtInt(x.ratePerSec), fmtInt(x.sent), fmtInt(x.received), x.lost, x.p50Ms, x.p90Ms, x.p99Ms, x.maxMs, fmtPct(x.hostCpu), x.hostCpuUsPerMsg]
    }))
  process.stdout.write(`task / baseline: p50 x${ratios.p50}, p99 x${ratios.p99}, host CPU per message x${ratios.cpuPerMsg}\n`)
  process.stdout.write(`task: p50 ${task.p50Ms} ms (target <= ${TARGET.p50Ms} ms: ${task.p50Ms <= TARGET.p50Ms ? 'met' : 'NOT met'}), ` +
    `p99 ${task.p99Ms} ms (target <= ${TARGET.p99Ms} ms: ${task.p99Ms <= TARGET.p99Ms ? 'met' : 'NOT met'}); ` +
    `relay task metrics: calls ${relay?.calls}, failures ${relay?.failures}, rejected ${relay?.rejected}\n`)
  printResult({
    figure: 'task-latency',
    machine: machine(),
    loadAverageBefore: loadBefore,
    params: { ratePerSec: RATE, seconds: SECONDS, rounds: ROUNDS, warmupMs: WARMUP_MS, qos: QOS, otherMax: OTHER_MAX, taskLimits: 'defaults (maxConcurrent 1)' },
    results,
    ratios,
    relayMetrics: relay,
    hostPeakRssMb,
    target: TARGET,
    ...(profile ? { profile: { self: profile.self.slice(0, 10), components: profile.components.slice(0, 10) } } : {}),
  })
}

runMain(main)
