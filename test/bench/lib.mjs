// Shared helpers for the benchmark scripts: child processes and temp dirs that are cleaned up
// even on failure, free loopback ports, /proc readings, statistics and table output.
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect as netConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
export const ROOT = resolve(BENCH_DIR, '..', '..')
export const HOST = '127.0.0.1'
export const MOSQUITTO = process.env.MOSQUITTO ?? '/usr/sbin/mosquitto'
const CLK_TCK = 100

// ---------------------------------------------------------------------------------------------
// Cleanup: every child and temp dir is registered; they go on normal exit, on error and on signals.

const children = new Set()
const dirs = new Set()

function cleanupSync() {
  for (const child of children) {
    try {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    } catch { /* already gone */ }
  }
  children.clear()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  dirs.clear()
}

process.on('exit', cleanupSync)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, cleaning up\n`)
    cleanupSync()
    process.exit(130)
  })
}

/** Runs a figure's main(); any failure cleans up and exits non-zero. */
export function runMain(main) {
  const hardLimitMs = Number(process.env.BENCH_HARD_LIMIT_MS ?? 15 * 60_000)
  const guard = setTimeout(() => {
    process.stderr.write(`bench: hard time limit of ${hardLimitMs} ms reached, aborting\n`)
    cleanupSync()
    process.exit(2)
  }, hardLimitMs)
  guard.unref()
  main().then(
    () => {
      cleanupSync()
      process.exit(0)
    },
    (err) => {
      process.stderr.write(`bench failed: ${err?.stack ?? err}\n`)
      cleanupSync()
      process.exit(1)
    },
  )
}

export function tempDir(prefix = 'edge-bench-') {
  const base = process.env.BENCH_TMPDIR ?? tmpdir()
  const dir = mkdtempSync(join(base, prefix))
  dirs.add(dir)
  return {
    dir,
    remove: () => {
      rmSync(dir, { recursive: true, force: true })
      dirs.delete(dir)
    },
  }
}

/** spawn() with the child registered for cleanup. */
export function spawnTracked(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  children.add(child)
  child.once('exit', () => children.delete(child))
  child.exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })))
  return child
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
export async function stopChild(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  const result = await child.exited
  clearTimeout(timer)
  return result
}

// ---------------------------------------------------------------------------------------------
// Time and waiting

export const sleep = (ms) => new Promise((res) => setTimeout(res, ms))

/**
 * Calls `call(seq)` `rate` times a second for `ms`, open loop: a slow answer does not slow the
 * sending, as devices and triggers do not wait either. A call not answered within `lostMs` of being
 * sent counts as lost; after the last one is sent, the others are awaited at most `graceMs`
 * (`unanswered`: still out then). A rejection counts as a failure, by its code.
 */
export async function openLoop(call, { rate, ms, lostMs = Infinity, graceMs = Infinity }) {
  const total = Math.round((rate * ms) / 1000)
  const latencies = []
  const failures = []
  const calls = []
  let lost = 0
  let sent = 0
  const issue = (seq) => {
    const start = performance.now()
    let answered = false
    const answer = call(seq).then(
      () => {
        answered = true
        latencies.push(performance.now() - start)
      },
      (err) => {
        answered = true
        failures.push(err.code ?? String(err))
      },
    )
    if (lostMs === Infinity) return answer
    return Promise.race([answer, sleep(lostMs).then(() => {
      if (!answered) lost++
    })])
  }
  const t0 = performance.now()
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000))
      while (sent < due) calls.push(issue(sent++))
      if (sent >= total) {
        clearInterval(timer)
        resolve()
      }
    }, 1)
  })
  const seconds = (performance.now() - t0) / 1000
  await (graceMs === Infinity ? Promise.all(calls) : Promise.race([Promise.all(calls), sleep(graceMs)]))
  return { sent, latencies, failures, lost, unanswered: sent - latencies.length - failures.length - lost, seconds }
}

export function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Calls `onLine` for each stdout line of a child; resolves with the first line `match` accepts. */
export function waitForLine(stream, match, ms, what) {
  return withTimeout(new Promise((res, rej) => {
    let buf = ''
    const onData = (chunk) => {
      buf += chunk.toString('utf8')
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        const found = match(line)
        if (found !== undefined && found !== false) {
          stream.off('data', onData)
          res(found)
          return
        }
      }
    }
    stream.on('data', onData)
    stream.once('end', () => rej(new Error(`stream ended before: ${what}`)))
  }), ms, what)
}

export function parseJsonLine(line) {
  try {
    return JSON.parse(line)
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------
// Ports

/** A port that was free a moment ago on 127.0.0.1 (bind 0, read, close). */
export function freePort() {
  return new Promise((res, rej) => {
    const server = createServer()
    server.once('error', rej)
    server.listen(0, HOST, () => {
      const { port } = server.address()
      server.close(() => res(port))
    })
  })
}

/** One TCP connect attempt; true when accepted. */
export function tryConnect(port, host = HOST) {
  return new Promise((res) => {
    const socket = netConnect({ port, host })
    socket.once('connect', () => {
      socket.destroy()
      res(true)
    })
    socket.once('error', () => {
      socket.destroy()
      res(false)
    })
  })
}

/** Polls until the port accepts a TCP connection; resolves with performance.now() at acceptance. */
export async function waitForPort(port, ms, intervalMs = 5) {
  const deadline = performance.now() + ms
  while (performance.now() < deadline) {
    if (await tryConnect(port)) return performance.now()
    await sleep(intervalMs)
  }
  throw new Error(`port ${port} did not accept a connection within ${ms} ms`)
}

// ---------------------------------------------------------------------------------------------
// /proc

/** KiB values of VmRSS and VmHWM from /proc/<pid>/status. */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') }
}

/** CPU seconds (user+system) a process has used so far. */
export function cpuSecondsOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is state (field 3); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

/** Busy CPU seconds of the whole machine, all cores (from /proc/stat; iowait and steal excluded). */
export function systemBusySeconds() {
  const [, ...f] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/)
  const [user, nice, system, , , irq, softirq] = f.map(Number)
  return (user + nice + system + irq + softirq) / CLK_TCK
}

/** CPU seconds used so far by every user-space process except `exclude` (kernel threads left out). */
function processesCpu(exclude) {
  const out = new Map()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const pid = Number(name)
    if (exclude.includes(pid)) continue
    let stat
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    } catch {
      continue
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ppid = Number(f[1])
    if (pid === 2 || ppid === 2) continue
    // utime + stime + cutime + cstime: children reaped meanwhile count through their parent.
    out.set(pid, (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK)
  }
  return out
}

/**
 * A snapshot for measuring how much CPU the rest of the (shared) machine used: the figures use it
 * to spot and retry runs that something else disturbed. `pids` are ours (load generator, broker).
 */
export function otherProcessesCpu(pids) {
  const ours = pids.reduce((n, pid) => n + cpuSecondsOf(pid), 0)
  return { system: systemBusySeconds(), ours, processes: processesCpu(pids) }
}

/**
 * CPU seconds the rest of the machine used between two snapshots: the smaller of (machine busy
 * time minus ours), which also counts kernel work such as loopback softirq and fsync, and (the sum
 * over other processes), which over-counts when a long-lived child is reaped meanwhile.
 */
export function otherCpuBetween(before, after) {
  const residual = (after.system - before.system) - (after.ours - before.ours)
  let processes = 0
  for (const [pid, t] of after.processes) processes += Math.max(0, t - (before.processes.get(pid) ?? 0))
  return Math.max(0, Math.min(residual, processes))
}

/**
 * Waits until the rest of the machine is quiet: samples other processes' CPU over `sampleMs`
 * until it is at most `threshold` (1 = one core), or `maxWaitMs` has passed. The machine is
 * shared; a figure measured while something else runs says little. Resolves with the last level.
 */
export async function waitForQuiet(pids, { threshold = 0.25, maxWaitMs = Number(process.env.BENCH_QUIET_WAIT_MS ?? 60_000), sampleMs = 500, what = '' } = {}) {
  const t0 = performance.now()
  let announced = false
  for (;;) {
    const before = otherProcessesCpu(pids)
    await sleep(sampleMs)
    const level = otherCpuBetween(before, otherProcessesCpu(pids)) / (sampleMs / 1000)
    const waited = performance.now() - t0
    if (level <= threshold) {
      if (announced) process.stdout.write(`  machine quiet again after ${Math.round(waited / 1000)} s\n`)
      return level
    }
    if (waited > maxWaitMs) {
      process.stdout.write(`  machine still busy after ${Math.round(waited / 1000)} s (other processes at ${Math.round(level * 100)}% CPU); going on\n`)
      return level
    }
    if (!announced) {
      process.stdout.write(`  other processes are using ${Math.round(level * 100)}% CPU${what ? ` before ${what}` : ''}; waiting for the machine to be quiet\n`)
      announced = true
    }
  }
}

/** 1-minute load average. */
export function loadAverage() {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0])
}

/** CPU seconds of this process (user+system). */
export function selfCpuSeconds() {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

export function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown'
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0)
  const cpus = cpuinfo.split('\n').filter((l) => l.startsWith('processor')).length
  return { cpuModel: model, cpus, memGiB: Math.round((memKb / 1024 / 1024) * 10) / 10, node: process.version }
}

// ---------------------------------------------------------------------------------------------
// Brokers under test

/**
 * Starts test/bench/broker-host.mjs in its own process: `kind` is 'aedes', 'aedes-echo' or
 * 'coordinator'; resolves with { port, pid, child, stop() } once it listens.
 */
export async function startBrokerHost(kind, options = {}) {
  const execArgv = ['--no-node-snapshot']
  const child = spawnTracked(process.execPath, [...execArgv, join(BENCH_DIR, 'broker-host.mjs'), kind, JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'inherit'],
    cwd: ROOT,
  })
  const ready = await waitForLine(child.stdout, (line) => {
    const msg = parseJsonLine(line)
    return msg?.ready === true ? msg : undefined
  }, 30_000, `${kind} broker host ready`)
  /** Sends a command line and waits for the answer line that `match` accepts. */
  const ask = (line, match, what) => {
    const answer = waitForLine(child.stdout, (l) => match(parseJsonLine(l)) || undefined, 30_000, what)
    child.stdin.write(`${line}\n`)
    return answer
  }
  return {
    kind,
    port: ready.port,
    pid: child.pid,
    child,
    /** Starts the V8 CPU profiler in the broker process. */
    profileStart: () => ask('profile-start', (m) => m?.profiling === true, `${kind} profiler start`),
    /** Stops it and writes the profile to `file`. */
    profileStop: (file) => ask(`profile-stop ${file}`, (m) => m?.profiled === file, `${kind} profile written`),
    /** Closing stdin asks the host to close its broker and exit (needed for --cpu-prof to be written). */
    stop: async () => {
      child.stdin.end()
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await child.exited
      clearTimeout(timer)
    },
  }
}

/** mosquitto on a free loopback port with a temp config; resolves once it accepts connections. */
export async function startMosquitto(extraConf = '') {
  const tmp = tempDir('edge-bench-mosq-')
  const port = await freePort()
  const conf = join(tmp.dir, 'mosquitto.conf')
  writeFileSync(conf, `listener ${port} ${HOST}\nallow_anonymous true\npersistence false\n${extraConf}log_dest stderr\nlog_type error\n`)
  const t0 = performance.now()
  const child = spawnTracked(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  const early = child.exited.then(({ code }) => { throw new Error(`mosquitto exited early (code ${code}): ${stderr.trim()}`) })
  const acceptedAt = await Promise.race([waitForPort(port, 10_000, 2), early])
  early.catch(() => {})
  return {
    kind: 'mosquitto',
    port,
    pid: child.pid,
    child,
    startMs: acceptedAt - t0,
    stop: async () => {
      await stopChild(child)
      tmp.remove()
    },
  }
}

// ---------------------------------------------------------------------------------------------
// MQTT clients

/** TCP_NODELAY on the load generator's sockets (BENCH_NODELAY=0 keeps Nagle on). */
const NO_DELAY = process.env.BENCH_NODELAY !== '0'

export function mqttConnect(port, opts = {}) {
  return withTimeout(new Promise((res, rej) => {
    const client = mqtt.connect(`mqtt://${HOST}:${port}`, { reconnectPeriod: 0, connectTimeout: 10_000, keepalive: 60, ...opts })
    client.once('connect', () => {
      if (NO_DELAY) client.stream?.setNoDelay?.(true)
      res(client)
    })
    client.once('error', (err) => {
      client.end(true)
      rej(err)
    })
  }), 15_000, `MQTT connect to ${port} as ${opts.clientId ?? '(random id)'}`)
}

export async function mqttClose(client) {
  await withTimeout(client.endAsync(), 5000, 'MQTT disconnect').catch(() => client.end(true))
}

/** Connects many clients, `parallel` at a time. */
export async function connectMany(port, ids, parallel = 10) {
  const clients = []
  try {
    for (let i = 0; i < ids.length; i += parallel) {
      clients.push(...await Promise.all(ids.slice(i, i + parallel).map((clientId) => mqttConnect(port, { clientId }))))
    }
  } catch (err) {
    for (const c of clients) c.end(true)
    throw err
  }
  return clients
}

// ---------------------------------------------------------------------------------------------
// Statistics and output

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Nearest-rank percentile of an unsorted array (p in 0..100). */
export function percentile(values, p) {
  if (values.length === 0) return NaN
  const sorted = Float64Array.from(values).sort()
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]
}

export const round = (v, digits = 0) => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : null)

export function fmtInt(v) {
  return Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a'
}

export function fmtPct(v, digits = 0) {
  return Number.isFinite(v) ? `${(v * 100).toFixed(digits)}%` : 'n/a'
}

/** Prints rows (arrays of cells) as an aligned text table with a header row. */
export function printTable(title, header, rows) {
  const cells = [header, ...rows].map((r) => r.map((c) => String(c ?? '')))
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0)))
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  const out = [`\n${title}`, line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)]
  process.stdout.write(`${out.join('\n')}\n`)
}

/** The last line of every figure: its figures as one JSON object. */
export function printResult(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

/** `--name value` or `--name=value` from argv, else `fallback`. */
export function arg(name, fallback) {
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${name}`) return argv[i + 1]
    if (argv[i].startsWith(`--${name}=`)) return argv[i].slice(name.length + 3)
  }
  return fallback
}

export const numArg = (name, fallback) => Number(arg(name, String(fallback)))

/** A host child's control channel: one command per stdin line; stdin closing or a signal stops it. */
export function serveStdinCommands(label, command, stop) {
  let pending = ''
  process.stdin.on('data', (chunk) => {
    pending += chunk
    let nl
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl)
      pending = pending.slice(nl + 1)
      command(line).catch((err) => process.stderr.write(`${label}: ${err.stack}\n`))
    }
  })
  process.stdin.on('end', stop)
  process.stdin.on('error', stop)
  process.stdin.resume()
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
