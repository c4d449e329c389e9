// Figure: a well-behaved task's calls under CPU contention, with the per-call CPU limit enforced
// two ways in the same run, alternating:
//   wall-timeout  isolated-vm's `timeout` set to the CPU limit on each entry (how the sandbox
//                 enforced limits.cpuMsPerCall before): a wall-clock deadline, the baseline
//   watchdog      TaskSandbox as it is now: wall time by `timeout`, CPU time by its watchdog
//   baseline-sandbox  with --baseline-dist DIR: TaskSandbox from another build's dist/ (say, of
//                 main: `git archive main | tar -x -C /tmp/main && (cd /tmp/main && npx tsc -p
//                 tsconfig.build.json)` with node_modules linked in), to compare whole sandboxes
// The handler does about half a millisecond of work; --burners processes spin meanwhile (the
// gateway busy with other work), then none. Reported: calls, calls failed at the CPU limit,
// latency, and the host's CPU per call (the watchdog's cost).
//
//   node --no-node-snapshot test/bench/task-cpu-limit.mjs [--cpu-ms 5] [--burners 4]
//        [--window-ms 5000] [--rounds 2] [--work 150000] [--baseline-dist DIR]
import { cpus } from 'node:os'
import ivm from 'isolated-vm'
import { arg, fmtInt, fmtPct, loadAverage, machine, numArg, percentile, printResult, printTable, round, runMain, selfCpuSeconds, sleep, spawnTracked, stopChild } from './lib.mjs'

const dist = (path) => new URL(`../../dist/${path}`, import.meta.url).href
const { TaskSandbox } = await import(dist('coordinator/sandbox/index.js'))
const { silentLogger } = await import(dist('coordinator/core/log.js'))

const CPU_MS = numArg('cpu-ms', 5)
const BURNERS = numArg('burners', cpus().length * 2)
const WINDOW_MS = numArg('window-ms', 5000)
const ROUNDS = numArg('rounds', 2)
const WORK = numArg('work', 150_000)
const BASELINE_DIST = arg('baseline-dist', '')
const MODES = arg('modes', BASELINE_DIST === '' ? 'wall-timeout,watchdog' : 'wall-timeout,baseline-sandbox,watchdog').split(',')
const Baseline = BASELINE_DIST === '' ? undefined : (await import(new URL(`file://${BASELINE_DIST}/coordinator/sandbox/index.js`).href)).TaskSandbox

const HANDLER = `(event) => { let x = 0; for (let i = 0; i < ${WORK}; i++) x += i % 7; return { seq: event.payload, x } }`
const idleHost = new Proxy({}, { get: () => async () => { throw new Error('not available in this benchmark') } })

async function startMode(mode) {
  if (mode === 'wall-timeout') {
    const isolate = new ivm.Isolate({ memoryLimit: 32 })
    const context = await isolate.createContext()
    const handler = await context.eval(HANDLER, { reference: true })
    return {
      call: (seq) => handler.apply(undefined, [{ type: 'invoke', payload: seq }], { timeout: CPU_MS, arguments: { copy: true }, result: { copy: true } }),
      isLimit: (err) => /timed out/.test(String(err?.message)),
      close: () => isolate.dispose(),
    }
  }
  const Sandbox = mode === 'baseline-sandbox' ? Baseline : TaskSandbox
  const sandbox = await Sandbox.create({
    taskName: 'bench', version: '1.0.0', code: `var __edgeTask = { handler: ${HANDLER} }`, handler: 'handler', mode: 'on-demand',
    limits: { memoryMb: 32, cpuMsPerCall: CPU_MS, wallMsPerCall: 5000 }, host: idleHost, config: {}, log: silentLogger(),
  })
  return { call: (seq) => sandbox.call({ type: 'invoke', payload: seq }), isLimit: (err) => err?.code === 'COORD_SANDBOX_CPU_LIMIT' || err?.limit?.kind === 'cpu', close: () => sandbox.dispose() }
}

/** Closed loop, one call at a time, for WINDOW_MS; a sandbox lost at its limit is rebuilt, as the runner would. */
async function window(mode) {
  let m = await startMode(mode)
  const latencies = []
  let limited = 0
  let other = 0
  const cpu0 = selfCpuSeconds()
  const end = Date.now() + WINDOW_MS
  for (let seq = 0; Date.now() < end; seq++) {
    const t0 = performance.now()
    try {
      await m.call(seq)
      latencies.push(performance.now() - t0)
    } catch (err) {
      if (m.isLimit(err)) limited++
      else other++
      m.close()
      m = await startMode(mode)
    }
  }
  const cpu = selfCpuSeconds() - cpu0
  m.close()
  const calls = latencies.length + limited + other
  return { calls, limited, other, p50: percentile(latencies, 50), p99: percentile(latencies, 99), cpuPerCallUs: (cpu / calls) * 1e6 }
}

function burn(n) {
  return Array.from({ length: n }, () => spawnTracked(process.execPath, ['-e', 'for (;;) {}']))
}

runMain(async () => {
  const results = []
  for (const burners of [BURNERS, 0]) {
    const procs = burn(burners)
    await sleep(200)
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of MODES) results.push({ burners, mode, round, load: loadAverage(), ...(await window(mode)) })
    }
    await Promise.all(procs.map((p) => stopChild(p)))
  }
  const rows = []
  const figures = []
  for (const burners of [BURNERS, 0]) {
    for (const mode of MODES) {
      const rs = results.filter((r) => r.burners === burners && r.mode === mode)
      const calls = rs.reduce((a, r) => a + r.calls, 0)
      const limited = rs.reduce((a, r) => a + r.limited, 0)
      const p99 = Math.max(...rs.map((r) => r.p99 ?? 0))
      const cpuUs = rs.reduce((a, r) => a + r.cpuPerCallUs * r.calls, 0) / calls
      figures.push({ burners, mode, calls, limited, limitedShare: limited / calls, p99Ms: round(p99, 2), hostCpuPerCallUs: round(cpuUs, 1) })
      rows.push([`${mode}, ${burners} burners`, fmtInt(calls), fmtInt(limited), fmtPct(limited / calls, 2), round(p99, 2), round(cpuUs, 1)])
    }
  }
  printTable(`Well-behaved calls (about 0.5 ms of work) at a ${CPU_MS} ms CPU limit, ${ROUNDS} x ${WINDOW_MS} ms per mode and load`, ['mode', 'calls', 'failed at CPU limit', 'share', 'p99 ms', 'host CPU/call µs'], rows)
  printResult({ figure: 'task-cpu-limit', machine: machine(), cpuMs: CPU_MS, work: WORK, figures })
})
