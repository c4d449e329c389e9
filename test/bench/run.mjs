// Runs the benchmark figures in sequence, each in its own process (`npm run bench` builds first).
//
//   npm run bench                         every figure
//   npm run bench -- broker               one figure (a name in FIGURES below), or several;
//                                         with no name: broker, shadow, startup
//   npm run bench -- broker --runs 7      flags after the names go to the figure scripts
//   npm run bench -- --out results.json   also write the figures' JSON lines to a file
//
// Each figure prints a table and ends with one JSON line of its figures; this runner collects
// those lines and ends with one JSON line of its own: { bench: { date, machine, figures: [...] } }.
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

// Not importing lib.mjs: its signal handlers are for the figure processes.
const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(BENCH_DIR, '..', '..')

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0)
  return {
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    cpus: cpuinfo.split('\n').filter((l) => l.startsWith('processor')).length,
    memGiB: Math.round((memKb / 1024 / 1024) * 10) / 10,
    node: process.version,
  }
}

const FIGURES = {
  broker: 'broker.mjs',
  shadow: 'shadow.mjs',
  startup: 'startup.mjs',
  outbox: 'outbox.mjs',
  'task-latency': 'task-latency.mjs',
  'task-throughput': 'task-throughput.mjs',
  'task-memory': 'task-memory.mjs',
  'task-isolation': 'task-isolation.mjs',
  'task-fairness': 'task-fairness.mjs',
  'task-cpu-limit': 'task-cpu-limit.mjs',
  'task-containment': 'task-containment.mjs',
  swarm: 'swarm.mjs',
  rollout: 'rollout.mjs',
  'db-check': 'db-check.mjs',
  'token-flood': 'token-flood.mjs',
  'shadow-attack': 'shadow-attack.mjs',
}
/**
 * Run by default; the others only when named (outbox: the cloud link's figure, owned elsewhere;
 * task-*: the task runtime's figures, about 4 minutes together; swarm: 1,000 devices on the daemon
 * and two baselines, about 5 minutes; rollout: a fleet deployment to 20 coordinator processes, about
 * 1 minute; shadow-attack: devices' shadow replies while one device floods 5 MB updates, 1 minute).
 */
const DEFAULT_FIGURES = ['broker', 'shadow', 'startup']

const argv = process.argv.slice(2)
let out
const names = []
const passThrough = []
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--out') out = argv[++i]
  else if (argv[i].startsWith('--out=')) out = argv[i].slice('--out='.length)
  else if (passThrough.length === 0 && !argv[i].startsWith('-')) names.push(argv[i])
  else passThrough.push(argv[i])
}
for (const name of names) {
  if (!(name in FIGURES)) {
    process.stderr.write(`unknown figure '${name}'; choose from: ${Object.keys(FIGURES).join(', ')}\n`)
    process.exit(2)
  }
}
const selected = names.length > 0 ? names : DEFAULT_FIGURES
for (const name of selected) {
  if (!existsSync(join(BENCH_DIR, FIGURES[name]))) {
    process.stderr.write(`figure '${name}': ${FIGURES[name]} does not exist\n`)
    process.exit(2)
  }
}

let current
process.on('exit', () => {
  // SIGTERM: the figure then removes its own temp dirs and child processes.
  if (current !== undefined && current.exitCode === null) current.kill('SIGTERM')
})
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    // The figure cleans up on its own signal (it shares our process group on Ctrl-C); make sure.
    current?.kill('SIGTERM')
    setTimeout(() => process.exit(130), 3000).unref()
  })
}

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return null
  }
}

/** Runs one figure script, echoing its output; resolves with its exit code and last JSON line. */
function runFigure(name) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--no-node-snapshot', join(BENCH_DIR, FIGURES[name]), ...passThrough], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    current = child
    let buffered = ''
    let last
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk)
      buffered += chunk.toString('utf8')
      let nl
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim()
        buffered = buffered.slice(nl + 1)
        if (line.startsWith('{')) {
          try {
            last = JSON.parse(line)
          } catch { /* not a result line */ }
        }
      }
    })
    child.on('exit', (code, signal) => {
      current = undefined
      resolve({ code: code ?? (signal ? 128 : 1), result: last })
    })
  })
}

const started = new Date()
process.stdout.write(`edge-coordinator benchmarks, ${started.toISOString()}, commit ${gitCommit() ?? 'unknown'}, ` +
  `${machine().cpus} x ${machine().cpuModel}, node ${process.version}; figures: ${selected.join(', ')}\n`)
const figures = []
const failed = []
for (const name of selected) {
  process.stdout.write(`\n=== ${name} ===\n`)
  const t0 = performance.now()
  const { code, result } = await runFigure(name)
  const seconds = Math.round((performance.now() - t0) / 100) / 10
  if (code !== 0 || result === undefined) {
    failed.push(name)
    process.stdout.write(`=== ${name} FAILED (exit ${code}) after ${seconds} s ===\n`)
  } else {
    figures.push(result)
    process.stdout.write(`=== ${name} done in ${seconds} s ===\n`)
  }
}
const summary = { bench: { date: started.toISOString(), commit: gitCommit(), machine: machine(), figures, failed } }
if (out !== undefined) writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`)
process.stdout.write(`\n${JSON.stringify(summary)}\n`)
process.exit(failed.length > 0 ? 1 : 0)
