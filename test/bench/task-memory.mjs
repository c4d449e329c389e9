// Figure: task memory. What an installed task that is not running costs.
//   isolate  in this process: RSS before and after loading --tasks sandboxes of an idle task (after
//            a full GC each time), divided by their number; and V8's heap figure per isolate
//   daemon   the real daemon (bin/edge-coordinator.js) with --tasks idle tasks pushed through its
//            local API: RSS with none; right after the installs; once settled (the installs leave
//            garbage in the daemon's own heap, which V8's memory reducer collects after some
//            seconds of idleness, so RSS is sampled every second for --settle-ms); after one call
//            of each task
//
//   node --no-node-snapshot test/bench/task-memory.mjs [--tasks 50] [--settle-ms 20000]
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import {
  ROOT, fmtInt, loadAverage, machine, median, memoryOf, numArg, parseJsonLine, printResult, printTable, round, runMain, sleep, spawnTracked,
  stopChild, tempDir, waitForLine,
} from './lib.mjs'
import { iife, taskBundle } from './task-stack.mjs'

const dist = (path) => new URL(`../../dist/${path}`, import.meta.url).href
const { TaskSandbox } = await import(dist('coordinator/sandbox/index.js'))
const { silentLogger } = await import(dist('coordinator/core/log.js'))

const TASKS = numArg('tasks', 50)
const SETTLE_MS = numArg('settle-ms', 20_000)
const QUIET_MS = 3000
const TARGET = { isolateMb: 2, daemonRssMb: 150 }

// A full collection before each reading, so garbage of the set-up is not counted as the tasks'.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')

/** An idle task: a handler that is never called until the "warm" reading, with two triggers bound. */
const BODY = `exports.handler = async (event, ctx) => ({ got: event.payload, from: ctx.task.name })`
const EXTRA = { triggers: [{ type: 'invoke' }, { type: 'schedule', every: '1h' }] }
const idleHost = new Proxy({}, { get: () => async () => { throw new Error('not available in this benchmark') } })

const mb = (kb) => kb / 1024

async function settledRssKb() {
  for (let i = 0; i < 3; i++) {
    gc()
    await sleep(100)
  }
  return memoryOf(process.pid).rssKb
}

async function inProcess() {
  const log = silentLogger()
  const limits = { memoryMb: 32, cpuMsPerCall: 100, wallMsPerCall: 5000, maxConcurrent: 1, queueSize: 1000 }
  const create = (i) => TaskSandbox.create({ taskName: `idle-${i}`, version: '1.0.0', code: iife(BODY), handler: 'handler', mode: 'on-demand', limits, host: idleHost, config: {}, log })
  // One isolate first: isolated-vm's own start-up (its threads, the first isolate's shared parts) is not per task.
  const first = await create(0)
  const before = await settledRssKb()
  const sandboxes = []
  for (let i = 1; i <= TASKS; i++) sandboxes.push(await create(i))
  const loaded = await settledRssKb()
  for (const s of sandboxes) await s.call({ type: 'invoke', payload: 1 })
  const warm = await settledRssKb()
  const heap = sandboxes.map((s) => s.metrics().heapUsedBytes)
  for (const s of [first, ...sandboxes]) s.dispose()
  return {
    rssBeforeMb: round(mb(before), 1),
    rssLoadedMb: round(mb(loaded), 1),
    rssWarmMb: round(mb(warm), 1),
    perTaskLoadedMb: round(mb(loaded - before) / TASKS, 2),
    perTaskWarmMb: round(mb(warm - before) / TASKS, 2),
    heapUsedPerIsolateMb: round(median(heap) / 1024 / 1024, 2),
  }
}

async function inDaemon() {
  const data = tempDir('edge-bench-task-memory-')
  const config = join(data.dir, 'config.json')
  writeFileSync(config, JSON.stringify({ tasks: { allowUnsigned: true }, log: { level: 'info', pretty: false } }))
  const child = spawnTracked(process.execPath, ['--no-node-snapshot', join(ROOT, 'bin', 'edge-coordinator.js'), 'start', '--config', config, '--data-dir', join(data.dir, 'data'),
    '--mqtt-port', '0', '--mqtts-port', '0', '--ws-port', '0', '--http-port', '0'], { cwd: ROOT })
  try {
    const ready = await waitForLine(child.stdout, (line) => {
      const msg = parseJsonLine(line)
      return msg?.msg === 'coordinator ready' ? msg : undefined
    }, 30_000, 'coordinator ready line')
    // Keep reading the daemon's log so it never blocks on a full pipe.
    child.stdout.on('data', () => {})
    const api = `http://127.0.0.1:${ready.endpoints.http.port}`
    await sleep(QUIET_MS)
    const empty = memoryOf(child.pid).rssKb
    for (let i = 0; i < TASKS; i++) {
      const res = await fetch(`${api}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: taskBundle(`idle-${i}`, BODY, EXTRA) })
      if (res.status !== 201) throw new Error(`install of idle-${i}: ${res.status} ${await res.text()}`)
    }
    const samples = []
    for (let t = 0; t <= SETTLE_MS; t += 1000) {
      samples.push(memoryOf(child.pid).rssKb)
      await sleep(1000)
    }
    const afterInstalls = samples[0]
    const loaded = samples.at(-1)
    const settledAfterS = samples.findIndex((kb) => kb <= loaded)
    const { tasks } = await (await fetch(`${api}/v1/tasks`)).json()
    if (tasks.filter((t) => t.state === 'running').length !== TASKS) throw new Error(`not every task is running: ${JSON.stringify(tasks.map((t) => t.state))}`)
    for (let i = 0; i < TASKS; i++) {
      const res = await fetch(`${api}/v1/tasks/idle-${i}/invoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '1' })
      if (res.status !== 200) throw new Error(`invoke of idle-${i}: ${res.status} ${await res.text()}`)
    }
    await sleep(QUIET_MS)
    const warm = memoryOf(child.pid)
    const heaps = (await (await fetch(`${api}/v1/tasks`)).json()).tasks.map((t) => t.metrics.heapUsedBytes)
    return {
      rssEmptyMb: round(mb(empty), 1),
      rssAfterInstallsMb: round(mb(afterInstalls), 1),
      rssLoadedMb: round(mb(loaded), 1),
      settledAfterS,
      rssWarmMb: round(mb(warm.rssKb), 1),
      peakRssMb: round(mb(warm.hwmKb), 1),
      perTaskLoadedMb: round(mb(loaded - empty) / TASKS, 2),
      perTaskWarmMb: round(mb(warm.rssKb - empty) / TASKS, 2),
      heapUsedPerIsolateMb: round(median(heaps) / 1024 / 1024, 2),
    }
  } finally {
    await stopChild(child, 10_000)
    data.remove()
  }
}

async function main() {
  process.stdout.write(`Figure: task memory, ${TASKS} idle tasks (an invoke and an hourly schedule trigger, default 32 MB limit each)\n`)
  const loadBefore = loadAverage()
  const isolate = await inProcess()
  process.stdout.write(`  in-process: ${isolate.perTaskLoadedMb} MB RSS per loaded isolate, ${isolate.perTaskWarmMb} MB after one call each\n`)
  const daemon = await inDaemon()
  process.stdout.write(`  daemon: ${daemon.rssEmptyMb} MB with no task, ${daemon.rssAfterInstallsMb} MB right after ${TASKS} installs, ` +
    `${daemon.rssLoadedMb} MB settled (after ${daemon.settledAfterS} s), ${daemon.rssWarmMb} MB after one call each\n`)
  printTable(`Memory of idle tasks (${TASKS})`, ['where', 'RSS, no task', 'just installed', `RSS, ${TASKS} loaded`, 'after 1 call each', 'per task, loaded', 'per task, called', 'V8 heap used/isolate'],
    [
      ['isolates in one process (after GC)', `${isolate.rssBeforeMb} MB`, '', `${isolate.rssLoadedMb} MB`, `${isolate.rssWarmMb} MB`, `${isolate.perTaskLoadedMb} MB`, `${isolate.perTaskWarmMb} MB`, `${isolate.heapUsedPerIsolateMb} MB`],
      ['daemon (edge-coordinator start)', `${daemon.rssEmptyMb} MB`, `${daemon.rssAfterInstallsMb} MB`, `${daemon.rssLoadedMb} MB`, `${daemon.rssWarmMb} MB`, `${daemon.perTaskLoadedMb} MB`, `${daemon.perTaskWarmMb} MB`, `${daemon.heapUsedPerIsolateMb} MB`],
    ])
  const perTask = Math.max(isolate.perTaskWarmMb, daemon.perTaskWarmMb)
  process.stdout.write(`idle task: ${perTask} MB (target <= ${TARGET.isolateMb} MB: ${perTask <= TARGET.isolateMb ? 'met' : 'NOT met'}); ` +
    `daemon with ${TASKS} idle tasks: ${daemon.rssLoadedMb} MB RSS settled, ${daemon.rssWarmMb} MB after a call each ` +
    `(target <= ${TARGET.daemonRssMb} MB: ${Math.max(daemon.rssLoadedMb, daemon.rssWarmMb) <= TARGET.daemonRssMb ? 'met' : 'NOT met'}); ` +
    `peak ${fmtInt(daemon.peakRssMb)} MB, right after the installs\n`)
  printResult({
    figure: 'task-memory',
    machine: machine(),
    loadAverageBefore: loadBefore,
    params: { tasks: TASKS, settleMs: SETTLE_MS, quietMs: QUIET_MS },
    results: { isolate, daemon },
    target: TARGET,
  })
}

runMain(main)
