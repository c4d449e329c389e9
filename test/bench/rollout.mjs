// Figure "rollout": a fleet deployment to N real coordinator processes on this machine.
//
//   node --no-node-snapshot test/bench/rollout.mjs [--coordinators 20] [--concurrency 5,20] [--health-check-ms 3000]
//
// A cloud shim runs in this process (dist/); each coordinator is `edge-coordinator start --join`
// with its own data directory and ports 0. Two signed bundles are deployed to a dynamic group per
// run (a new version each run, so every coordinator downloads, stages, swaps and health-checks),
// timed from POST /v1/deployments to every coordinator `succeeded`. Per-coordinator apply time is
// the cloud's view: desired write to final report. Baseline: the same bundle files pushed to each
// coordinator's local API (POST /v1/tasks), one coordinator after another.
import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { arg, machine, median, parseJsonLine, percentile, printResult, printTable, round, runMain, spawnTracked, stopChild, tempDir, withTimeout, ROOT } from './lib.mjs'
import { encodeBundle } from '../../dist/coordinator/protocol/index.js'
import { silentLogger } from '../../dist/coordinator/core/log.js'
import { loadCloudConfig } from '../../dist/cloud-shim/config/index.js'
import { CloudShim } from '../../dist/cloud-shim/kernel/index.js'

const N = Number(arg('coordinators', 20))
const CONCURRENCY = String(arg('concurrency', '5,20')).split(',').map(Number)
const HEALTH_MS = Number(arg('health-check-ms', 3000))
const TARGET_MS = 30_000
const BIN = join(ROOT, 'bin', 'edge-coordinator.js')
/** Coordinators started at once: each start is CPU-bound for a moment on a 2-core box. */
const START_PARALLEL = 4

async function api(base, method, path, body) {
  const init = body === undefined ? { method } : { method, headers: { 'content-type': body instanceof Uint8Array ? 'application/octet-stream' : 'application/json' }, body: body instanceof Uint8Array ? body : JSON.stringify(body) }
  const res = await fetch(`${base}${path}`, init)
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return text === '' ? undefined : JSON.parse(text)
}

function bundles(version, key) {
  const make = (name, extra) => encodeBundle({
    manifestText: JSON.stringify({ name, version, entry: 'index.js', triggers: [{ type: 'invoke' }], ...extra }),
    // ~20 KB of code each, about what esbuild makes of a small task with one dependency.
    code: `var __edgeTask = (() => { const exports = {}; exports.table = '${'x'.repeat(20_000)}'; exports.handler = async () => '${version}'; return exports })()`,
  }, { privateKeyPem: key })
  return [make('aggregator', {}), make('controller', { mode: 'long-lived' })]
}

async function startCoordinator(dir, name, joinFile, config) {
  const child = spawnTracked(process.execPath, ['--no-node-snapshot', BIN, 'start', '--config', config, '--join', joinFile, '--data-dir', join(dir, name),
    '--mqtt-port', '0', '--mqtts-port', '0', '--ws-port', '0', '--http-port', '0'])
  // One reader for the child's whole life: its log pipe must keep draining or the child blocks.
  let ready
  let connected = false
  const up = new Promise((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const e = parseJsonLine(line)
      if (e?.msg === 'coordinator ready') ready = e
      if (e?.msg === 'cloud link state' && e.state === 'connected') connected = true
      if (ready !== undefined && connected) resolve()
    })
  })
  await withTimeout(up, 60_000, `${name} ready and connected`)
  return { name, child, http: `http://127.0.0.1:${ready.endpoints.http.port}` }
}

async function startFleet(dir, cloudUrl, publicKeyFile) {
  const config = join(dir, 'coordinator.json')
  writeFileSync(config, JSON.stringify({ log: { level: 'info' }, tasks: { trustedKeys: [publicKeyFile] }, cloud: { deploy: { healthCheckMs: HEALTH_MS } } }))
  const names = Array.from({ length: N }, (_, i) => `bench-${String(i + 1).padStart(2, '0')}`)
  const fleet = []
  for (let i = 0; i < names.length; i += START_PARALLEL) {
    fleet.push(...await Promise.all(names.slice(i, i + START_PARALLEL).map(async (name) => {
      const joinDoc = await api(cloudUrl, 'POST', '/v1/coordinators', { name, attributes: { fleet: 'bench' } })
      const joinFile = join(dir, `${name}.join.json`)
      writeFileSync(joinFile, JSON.stringify(joinDoc), { mode: 0o600 })
      return startCoordinator(dir, name, joinFile, config)
    })))
  }
  return fleet
}

async function rollout(cloudUrl, version, maxConcurrent) {
  const started = performance.now()
  const { id } = await api(cloudUrl, 'POST', '/v1/deployments', {
    target: { group: 'bench' }, bundles: [{ name: 'aggregator', version }, { name: 'controller', version }],
    rollout: { maxConcurrent, failureThreshold: { count: 1 }, perCoordinatorTimeoutMs: 120_000 },
  })
  for (;;) {
    const d = await api(cloudUrl, 'GET', `/v1/deployments/${id}`)
    if (d.status !== 'in-progress') {
      const totalMs = performance.now() - started
      if (d.status !== 'succeeded') throw new Error(`rollout ${id} ended ${d.status}: ${JSON.stringify(d.coordinators.filter((c) => c.error))}`)
      return { id, maxConcurrent, totalMs, applyMs: d.coordinators.map((c) => c.durationMs) }
    }
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

async function baseline(fleet, files) {
  const perCoordinatorMs = []
  const started = performance.now()
  for (const c of fleet) {
    const t0 = performance.now()
    for (const file of files) await api(c.http, 'POST', '/v1/tasks', file)
    perCoordinatorMs.push(performance.now() - t0)
  }
  return { totalMs: performance.now() - started, perCoordinatorMs }
}

const spread = (xs) => ({ min: round(Math.min(...xs)), median: round(median(xs)), p95: round(percentile(xs, 95)), max: round(Math.max(...xs)) })

async function main() {
  const tmp = tempDir('edge-bench-rollout-')
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const publicKeyFile = join(tmp.dir, 'signer.pub')
  writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }).toString())
  const config = loadCloudConfig({ overrides: { dataDir: join(tmp.dir, 'cloud'), log: { level: 'silent' }, listeners: { mqtt: { port: 0 }, mqtts: { port: 0 }, http: { port: 0 } },
    bundles: { trustedKeys: [publicKey.export({ type: 'spki', format: 'pem' }).toString()], allowUnsigned: false, maxBundleBytes: 1 << 20 } } })
  const shim = await CloudShim.start(config, silentLogger())
  const cloudUrl = `http://127.0.0.1:${shim.endpoints.http.port}`
  try {
    const versions = CONCURRENCY.map((_, i) => `1.${i}.0`)
    for (const v of versions) for (const file of bundles(v, key)) await api(cloudUrl, 'POST', '/v1/bundles', file)
    await api(cloudUrl, 'POST', '/v1/groups', { name: 'bench', query: 'attributes.fleet = "bench"' })
    const t0 = performance.now()
    const fleet = await startFleet(tmp.dir, cloudUrl, publicKeyFile)
    process.stdout.write(`${N} coordinators started and connected in ${round((performance.now() - t0) / 1000, 1)} s\n`)
    const runs = []
    for (const [i, maxConcurrent] of CONCURRENCY.entries()) runs.push(await rollout(cloudUrl, versions[i], maxConcurrent))
    const base = await baseline(fleet, bundles('9.9.9', key))
    report(runs, base)
    await Promise.all(fleet.map((c) => stopChild(c.child)))
  } finally {
    await shim.close()
  }
}

function report(runs, base) {
  const secs = (ms) => round(ms / 1000, 2)
  printTable(`Rollout of 2 bundles (~20 KB each) to ${N} coordinator processes; health check ${HEALTH_MS} ms`,
    ['run', 'total s', 'apply min s', 'median s', 'p95 s', 'max s', 'median - health s', `< ${TARGET_MS / 1000} s`], [
      ...runs.map((r) => {
        const s = spread(r.applyMs)
        return [`deployment, maxConcurrent ${r.maxConcurrent}`, secs(r.totalMs), secs(s.min), secs(s.median), secs(s.p95), secs(s.max), secs(s.median - HEALTH_MS), r.totalMs < TARGET_MS ? 'yes' : 'NO']
      }),
      ['baseline: POST /v1/tasks, in sequence', secs(base.totalMs), ...Object.values(spread(base.perCoordinatorMs)).map(secs), '', ''],
    ])
  process.stdout.write('apply = desired write to final report, per coordinator, as the cloud saw it: get, download, verify, stage, swap,\n' +
    'health window, report through the outbox. The baseline installs without a health window or any report.\n')
  printResult({
    figure: 'rollout', machine: machine(), params: { coordinators: N, healthCheckMs: HEALTH_MS, bundles: 2 },
    runs: runs.map((r) => ({ maxConcurrent: r.maxConcurrent, totalMs: round(r.totalMs), applyMs: spread(r.applyMs) })),
    baseline: { totalMs: round(base.totalMs), perCoordinatorMs: spread(base.perCoordinatorMs) },
    target: { totalMs: TARGET_MS }, met: runs.every((r) => r.totalMs < TARGET_MS),
  })
}

runMain(() => withTimeout(main(), 10 * 60_000, 'rollout figure'))
