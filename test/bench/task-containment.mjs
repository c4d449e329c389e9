// Figure: task containment at the host boundary. A well-behaved echo task is invoked 100 times a
// second (open loop) while one hostile task attacks what its sandbox does not bound by itself; the
// same run with no attacker is the baseline, side by side. Each class runs in a fresh process (the
// "daemon": broker, shadow service and task service as the coordinator builds them, with the
// generic board's memory budget and the default host limits), so a class that kills it cannot
// take the others down and RSS is the daemon's alone.
//   none      no attacker (the baseline)
//   publish   a handler publishing 1 KB messages in a tight loop without awaiting them
//   log       a handler logging 8 KB lines in a tight loop
//   result    a handler returning a half-million-object result
//   slots     maxConcurrent 64 and cpuMsPerCall 10 000, 64 callers keeping every slot busy spinning
//   timers    a long-lived task with 64 zero-delay intervals, each burning CPU
//   calls     a handler firing shadow updates and ctx.invoke calls in a tight loop
// Figures per class: the echo task's calls answered and lost (no answer within --lost-ms), p50 and
// p99 latency and p99 as a ratio of the baseline's; the daemon's RSS at the start, its peak during
// the attack and --settle-ms after the attacker was removed; whether the daemon stayed up; the
// attacker's failures, COORD_TASK_LIMIT refusals and final state. The attackers run under a
// relaxed restart policy (1 ms pauses, never broken) so the attack lasts the whole run: the worst
// case, not the default (which marks them broken within about a second).
//
//   node --no-node-snapshot test/bench/task-containment.mjs [--rate 100] [--seconds 10] [--settle-ms 10000]
//        [--classes none,publish,log,result,slots,timers,calls] [--lost-ms 5000] [--guard-mb 1500]
import { fileURLToPath } from 'node:url'
import {
  arg, fmtInt, loadAverage, machine, numArg, parseJsonLine, percentile, printResult, printTable, round, runMain, sleep, spawnTracked, stopChild,
  tempDir, waitForLine, openLoop,
} from './lib.mjs'

const RATE = numArg('rate', 100)
const SECONDS = numArg('seconds', 10)
const SETTLE_MS = numArg('settle-ms', 10_000)
const LOST_MS = numArg('lost-ms', 5000)
const GUARD_MB = numArg('guard-mb', 1500)
const CLASSES = arg('classes', 'none,publish,log,result,slots,timers,calls').split(',')
const CHILD = arg('child', undefined)
const TARGET = { p99Ms: 20, lost: 0, rssAfterMb: 32 }
const MiB = 1024 * 1024

const ECHO = 'exports.handler = async (event) => ({ seq: event.payload.seq })'
const SINK = 'exports.handler = async (event) => event.payload'
const ATTACKS = {
  publish: {
    body: "exports.handler = async (event, ctx) => { const p = 'x'.repeat(1024); for (;;) ctx.publish('flood/a', p).catch(() => {}) }",
    extra: { permissions: { publish: ['flood/#'] } },
    callers: 2,
  },
  log: {
    body: "exports.handler = async (event, ctx) => { const line = 'x'.repeat(8000); for (let i = 0; ; i++) ctx.log.info(line, { i }) }",
    callers: 2,
  },
  result: {
    body: "exports.handler = async () => { const out = []; for (let i = 0; i < 5e5; i++) out.push({ i, s: 'payload' }); return out }",
    extra: { limits: { memoryMb: 128, cpuMsPerCall: 2000, wallMsPerCall: 10_000 } },
    callers: 2,
  },
  slots: {
    body: 'exports.handler = async () => { for (;;) {} }',
    extra: { limits: { maxConcurrent: 64, cpuMsPerCall: 10_000, wallMsPerCall: 20_000 } },
    callers: 64,
  },
  timers: {
    body: `exports.start = async () => {
      for (let i = 0; i < 64; i++) setInterval(() => { let x = 0; for (let j = 0; j < 2e5; j++) x += j }, 0)
    }
    exports.handler = async () => null`,
    extra: { mode: 'long-lived' },
    callers: 0,
  },
  calls: {
    body: `exports.handler = async (event, ctx) => {
      for (let i = 0; ; i++) {
        ctx.shadow.update('lamp-1', { state: { reported: { i } } }).catch(() => {})
        ctx.invoke('sink', i).catch(() => {})
      }
    }`,
    extra: { permissions: { devices: ['lamp-1'], invoke: ['sink'] } },
    callers: 2,
  },
}
const RELAXED = { initialBackoffMs: 1, maxBackoffMs: 1, brokenAfter: Number.MAX_SAFE_INTEGER, windowMs: 3_600_000 }

// ---------------------------------------------------------------------------------------------
// The daemon process: one class, then one JSON line of its figures.

async function child(name) {
  const { startTaskStack, taskBundle } = await import('./task-stack.mjs')
  const { profileLimits } = await import(new URL('../../dist/hardware/index.js', import.meta.url).href)
  const attack = ATTACKS[name]
  const rss = () => process.memoryUsage.rss()
  let peak = rss()
  const sampler = setInterval(() => {
    const now = rss()
    peak = Math.max(peak, now)
    // A class that would take this machine down (other work shares it) ends here, as a death.
    if (now > GUARD_MB * MiB) {
      process.stdout.write(`${JSON.stringify({ died: `RSS ${Math.round(now / MiB)} MB passed the --guard-mb ${GUARD_MB}` })}\n`)
      process.exit(3)
    }
  }, 100)
  const data = tempDir(`edge-bench-containment-${name}-`)
  const generic = profileLimits('generic').tasks
  const stack = await startTaskStack({
    dataDir: data.dir, restart: RELAXED,
    serviceOptions: { limits: { maxTasks: generic.maxTasks, maxMemoryMb: generic.maxMemoryMb, memoryBudgetMb: generic.memoryBudgetMb } },
  })
  let flooded = 0
  await stack.broker.subscribe('flood/#', () => void flooded++)
  await stack.service.install(taskBundle('echo', ECHO, { limits: { maxConcurrent: 4 } }))
  await drive(stack.service, 1000)
  await sleep(2000)
  const baselineMb = rss() / MiB
  peak = rss()
  let stopHammer = async () => {}
  if (attack !== undefined) {
    if (name === 'calls') await stack.service.install(taskBundle('sink', SINK, { limits: { maxConcurrent: 4 } }))
    await stack.service.install(taskBundle('attacker', attack.body, attack.extra ?? {}))
    stopHammer = hammer(stack.service, 'attacker', attack.callers)
  }
  const run = await drive(stack.service, SECONDS * 1000)
  const attacker = stack.service.get('attacker')
  const peakMb = peak / MiB
  await stopHammer()
  if (attack !== undefined) {
    await stack.service.remove('attacker')
    if (name === 'calls') await stack.service.remove('sink')
  }
  // RSS after removal: the lowest reading over the settle time (V8 and malloc return memory lazily).
  let afterMb = rss() / MiB
  const settleEnd = Date.now() + SETTLE_MS
  while (Date.now() < settleEnd) {
    await sleep(500)
    afterMb = Math.min(afterMb, rss() / MiB)
  }
  clearInterval(sampler)
  await stack.close()
  data.remove()
  process.stdout.write(`${JSON.stringify({
    class: name,
    calls: run.latencies.length,
    lost: run.lost,
    failed: run.failures.length,
    failures: [...new Set(run.failures)].slice(0, 3),
    p50Ms: round(percentile(run.latencies, 50), 2),
    p99Ms: round(percentile(run.latencies, 99), 2),
    maxMs: round(Math.max(...run.latencies), 1),
    baselineMb: round(baselineMb, 1),
    peakMb: round(peakMb, 1),
    afterMb: round(afterMb, 1),
    attacker: attacker === undefined ? null : { state: attacker.state, calls: attacker.metrics.calls, failures: attacker.metrics.failures, limited: attacker.metrics.limited ?? null },
    flooded,
  })}\n`)
  process.exit(0)
}

/** Calls the echo task RATE times a second for `ms`; a call with no answer within LOST_MS is lost. */
function drive(service, ms) {
  return openLoop((seq) => service.invoke('echo', { seq }).then((r) => {
    if (r.seq !== seq) throw new Error(`wrong answer ${JSON.stringify(r)} to ${seq}`)
  }), { rate: RATE, ms, lostMs: LOST_MS })
}

/** `callers` loops invoking the attacker back to back until stopped. */
function hammer(service, name, callers) {
  let running = true
  const loop = async () => {
    while (running) await service.invoke(name, null).catch(() => sleep(1))
  }
  const loops = Array.from({ length: callers }, loop)
  return async () => {
    running = false
    await Promise.race([Promise.all(loops), sleep(LOST_MS)])
  }
}

// ---------------------------------------------------------------------------------------------
// The figure: one daemon process per class.

async function runClass(name) {
  const self = fileURLToPath(import.meta.url)
  const proc = spawnTracked(process.execPath, ['--no-node-snapshot', '--max-semi-space-size=4', self, '--child', name, ...process.argv.slice(2)])
  const stderr = []
  proc.stderr.on('data', (c) => stderr.push(c.toString()))
  const line = await waitForLine(proc.stdout, (l) => (l.startsWith('{') ? l : undefined), (SECONDS + SETTLE_MS / 1000 + 120) * 1000, `the ${name} class`).catch(() => null)
  const exit = await stopChild(proc, 10_000)
  const result = line === null ? null : parseJsonLine(line)
  if (result == null || result.died !== undefined) {
    return { class: name, daemonUp: false, died: result?.died ?? `exit ${exit.code ?? exit.signal}: ${stderr.join('').trim().split('\n').slice(-3).join(' | ')}` }
  }
  return { ...result, daemonUp: true }
}

async function main() {
  process.stdout.write(`Figure: containment, an echo task invoked ${RATE}/s for ${SECONDS} s beside one hostile task per class, each class in a fresh daemon process\n`)
  const loadBefore = loadAverage()
  const results = {}
  for (const name of CLASSES) {
    if (name !== 'none' && ATTACKS[name] === undefined) throw new Error(`unknown class '${name}'; choose from none, ${Object.keys(ATTACKS).join(', ')}`)
    results[name] = await runClass(name)
    const r = results[name]
    process.stdout.write(r.daemonUp
      ? `  ${name.padEnd(8)} p99 ${r.p99Ms} ms  lost ${r.lost}  failed ${r.failed}  RSS ${r.baselineMb} -> peak ${r.peakMb} -> after ${r.afterMb} MB  attacker ${JSON.stringify(r.attacker)}\n`
      : `  ${name.padEnd(8)} the daemon died: ${r.died}\n`)
  }
  const base = results.none
  const rows = Object.values(results).map((r) => r.daemonUp
    ? [
        r.class, 'yes', fmtInt(r.calls), r.lost + r.failed, r.p50Ms, r.p99Ms, base?.p99Ms ? `x${round(r.p99Ms / base.p99Ms, 2)}` : '',
        r.baselineMb, round(r.peakMb - r.baselineMb, 1), round(r.afterMb - r.baselineMb, 1),
        r.attacker === null ? '' : `${r.attacker.state}, ${fmtInt(r.attacker.failures)} failed, ${fmtInt(r.attacker.limited)} limited`,
        verdict(r),
      ]
    : [r.class, 'NO', '', '', '', '', '', '', '', '', r.died, 'NOT met'])
  printTable(`Echo task at ${RATE} calls/s beside each attack (targets: no call lost, p99 <= ${TARGET.p99Ms} ms, RSS after removal within ${TARGET.rssAfterMb} MB of the start)`,
    ['class', 'daemon up', 'echo calls', 'lost+failed', 'p50 ms', 'p99 ms', 'p99 vs none', 'RSS start MB', 'peak +MB', 'after +MB', 'attacker', 'targets'], rows)
  printResult({
    figure: 'task-containment',
    machine: machine(),
    loadAverageBefore: loadBefore,
    params: { ratePerSec: RATE, seconds: SECONDS, settleMs: SETTLE_MS, lostMs: LOST_MS, guardMb: GUARD_MB, attackerRestartPolicy: RELAXED },
    results,
    target: TARGET,
  })
}

function verdict(r) {
  const misses = []
  if (r.lost + r.failed > TARGET.lost) misses.push('calls lost')
  if (!(r.p99Ms <= TARGET.p99Ms)) misses.push('p99')
  if (!(r.afterMb - r.baselineMb <= TARGET.rssAfterMb)) misses.push('RSS after')
  return misses.length === 0 ? 'met' : `NOT met (${misses.join(', ')})`
}

if (CHILD !== undefined) {
  child(CHILD).catch((err) => {
    process.stderr.write(`task-containment child: ${err.stack}\n`)
    process.exit(1)
  })
} else {
  runMain(main)
}
