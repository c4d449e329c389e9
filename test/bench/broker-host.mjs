// Runs one broker under test in its own process, so it has a core to itself and does not share an
// event loop with the load generator. Usage: node --no-node-snapshot broker-host.mjs KIND [OPTIONS_JSON]
//   aedes        bare aedes 1.2: Aedes.createBroker() (memory persistence, no hooks) on a net server
//   aedes-echo   the same plus an in-process responder: '$aws/things/+/shadow/update' is echoed
//                verbatim to '<topic>/accepted' at QoS 1 (the shadow benchmark's baseline)
//   coordinator  the full Coordinator (auth + ACL hooks, SQLite persistence, shadow service, all
//                listeners on 127.0.0.1 port 0); OPTIONS_JSON = { dataDir, overrides, dist? }, where
//                dist is another checkout's dist/ directory to run instead of this one's
// OPTIONS_JSON may also say { serverNoDelay: true }: a diagnostic that turns Nagle off on the
// broker's server-side sockets (see below).
// Prints one JSON line { ready: true, port, pid } and runs until stdin closes or SIGTERM.
// stdin commands (one a line): 'profile-start' and 'profile-stop FILE' run the V8 CPU profiler
// over just that stretch (written as a .cpuprofile) and answer { profiling } / { profiled: FILE }.
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import net from 'node:net'
import { syncBuiltinESMExports } from 'node:module'
import { pathToFileURL } from 'node:url'
import { serveStdinCommands } from './lib.mjs'

const [kind, optionsJson = '{}'] = process.argv.slice(2)
const options = JSON.parse(optionsJson)
const HOST = '127.0.0.1'

// Diagnostic only (options.serverNoDelay): every net server created in this process, the
// coordinator's listeners included, sets TCP_NODELAY on its sockets. Production code is not
// changed; net.createServer is wrapped before the coordinator is imported.
if (options.serverNoDelay === true) {
  const original = net.createServer
  net.createServer = (opts, listener) => (typeof opts === 'function' || opts === undefined
    ? original({ noDelay: true }, opts)
    : original({ ...opts, noDelay: true }, listener))
  syncBuiltinESMExports()
}

async function startAedes(withEcho) {
  const { Aedes } = await import('aedes')
  const broker = await Aedes.createBroker()
  if (withEcho) {
    const echo = (packet, done) => {
      broker.publish({ cmd: 'publish', topic: `${packet.topic}/accepted`, payload: packet.payload, qos: 1, retain: false, dup: false }, () => {})
      done()
    }
    await new Promise((res) => broker.subscribe('$aws/things/+/shadow/update', echo, res))
  }
  const server = net.createServer(broker.handle)
  await new Promise((res, rej) => {
    server.once('error', rej)
    server.listen(0, HOST, res)
  })
  const sockets = new Set()
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  return {
    port: server.address().port,
    close: async () => {
      await new Promise((res) => {
        server.close(() => res())
        for (const s of sockets) s.destroy()
      })
      await new Promise((res) => broker.close(() => res()))
    },
  }
}

async function startCoordinator() {
  // options.dist: another checkout's build (the broker benchmark's --baseline), else this one's.
  const dist = options.dist === undefined ? new URL('../../dist/', import.meta.url) : pathToFileURL(`${options.dist}/`)
  const { loadConfig } = await import(new URL('coordinator/config/index.js', dist).href)
  const { silentLogger } = await import(new URL('coordinator/core/log.js', dist).href)
  const { Coordinator } = await import(new URL('coordinator/kernel/coordinator.js', dist).href)
  const overrides = options.overrides ?? {}
  const config = loadConfig({
    overrides: {
      ...overrides,
      dataDir: options.dataDir,
      listeners: { mqtt: { port: 0 }, mqtts: { port: 0 }, ws: { port: 0 }, http: { port: 0 } },
    },
  })
  const coordinator = await Coordinator.start(config, silentLogger())
  return { port: coordinator.endpoints.mqtt.port, close: () => coordinator.close() }
}

let running
if (kind === 'aedes') running = await startAedes(false)
else if (kind === 'aedes-echo') running = await startAedes(true)
else if (kind === 'coordinator') running = await startCoordinator()
else throw new Error(`unknown broker kind '${kind}'`)

let stopping = false
async function stop() {
  if (stopping) return
  stopping = true
  const deadline = setTimeout(() => process.exit(1), 8000)
  deadline.unref()
  try {
    await running.close()
  } finally {
    // A normal exit (not a signal) so that --cpu-prof writes its profile.
    process.exit(0)
  }
}
let session
async function command(line) {
  const [cmd, file] = line.trim().split(' ')
  if (cmd === 'profile-start') {
    session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 500 })
    await session.post('Profiler.start')
    process.stdout.write(`${JSON.stringify({ profiling: true })}\n`)
  } else if (cmd === 'profile-stop' && session !== undefined) {
    const { profile } = await session.post('Profiler.stop')
    session.disconnect()
    session = undefined
    writeFileSync(file, JSON.stringify(profile))
    process.stdout.write(`${JSON.stringify({ profiled: file })}\n`)
  }
}
serveStdinCommands('broker-host', command, stop)

process.stdout.write(`${JSON.stringify({ ready: true, port: running.port, pid: process.pid })}\n`)
