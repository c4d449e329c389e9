// Shadow replies under a many-key attack. VICTIMS well-behaved devices (dev-NNN) each send a small
// '$aws/things/dev-NNN/shadow/update' RATE times a second (open loop: sent on a timer, so a stall
// shows as latency) and time each until its 'update/accepted'. One attacker device ('mallory', in
// its own process) floods its own shadow with updates of KEYS keys (~5 MB at 400,000 keys), keeping
// --attack-inflight of them outstanding. The coordinator runs with its shipped config in its own
// process. Three phases in one run, side by side: no attack, attack, and after the attack.
// --max-packet-bytes raises the broker's packet limit (shipped: 1 MB, which closes the attacker's
// connection at its first update) above the attack, so that the shadow's own bounds are what
// refuse it.
//
//   node --no-node-snapshot test/bench/shadow-attack.mjs [--victims 20] [--rate 10] [--phase-ms 10000]
//        [--keys 400000] [--attack-inflight 2] [--max-packet-bytes N]
//
// Target: the victims' p99 under the attack <= 20 ms.
import { fileURLToPath } from 'node:url'
import {
  arg, connectMany, cpuSecondsOf, fmtInt, fmtPct, loadAverage, machine, memoryOf, mqttClose, mqttConnect, numArg, parseJsonLine,
  percentile, printResult, printTable, round, runMain, sleep, spawnTracked, startBrokerHost, tempDir, waitForLine, waitForQuiet,
} from './lib.mjs'

const VICTIMS = numArg('victims', 20)
const RATE = numArg('rate', 10)
const PHASE_MS = numArg('phase-ms', 10_000)
const KEYS = numArg('keys', 400_000)
const ATTACK_INFLIGHT = numArg('attack-inflight', 2)
const MAX_PACKET_BYTES = arg('max-packet-bytes', null)
const TARGET_P99_MS = 20

/** `{"state":{"reported":{"k000000":1,…}}}` with `keys` keys: 12 bytes a key. */
function manyKeys(keys) {
  const members = Array.from({ length: keys }, (_, i) => `"k${String(i).padStart(6, '0')}":1`)
  return Buffer.from(`{"state":{"reported":{${members.join(',')}}}}`)
}

/**
 * The attacker process: floods until stdin closes, then prints what it sent and what came back.
 * Replies (413 rejections) are counted by code; a closed connection is reconnected and counted.
 */
async function attacker(port) {
  const payload = manyKeys(KEYS)
  const topic = '$aws/things/mallory/shadow/update'
  const stats = { sent: 0, replies: {}, bytes: 0, disconnects: 0, payloadBytes: payload.length }
  let running = true
  let client
  const connectAttacker = async () => {
    client = await mqttConnect(port, { clientId: 'mallory' })
    client.on('close', () => { stats.disconnects++ })
    await client.subscribeAsync([`${topic}/accepted`, `${topic}/rejected`], { qos: 1 })
    client.on('message', (t, message) => {
      const code = t.endsWith('/accepted') ? 200 : JSON.parse(message.toString('utf8')).code
      stats.replies[code] = (stats.replies[code] ?? 0) + 1
      if (running) send()
    })
  }
  const send = () => {
    stats.sent++
    stats.bytes += payload.length
    client.publish(topic, payload, { qos: 1 })
  }
  await connectAttacker()
  process.stdout.write(`${JSON.stringify({ attackerReady: true })}\n`)
  process.stdin.once('data', () => {
    for (let i = 0; i < ATTACK_INFLIGHT; i++) send()
  })
  await new Promise((res) => process.stdin.once('end', res))
  running = false
  process.stdout.write(`${JSON.stringify({ attacker: stats })}\n`)
  client.end(true)
  process.exit(0)
}

async function startAttacker(port) {
  const child = spawnTracked(process.execPath, ['--no-node-snapshot', fileURLToPath(import.meta.url), '--attacker', String(port), '--keys', String(KEYS),
    '--attack-inflight', String(ATTACK_INFLIGHT)], { stdio: ['pipe', 'pipe', 'inherit'] })
  await waitForLine(child.stdout, (l) => parseJsonLine(l)?.attackerReady, 60_000, 'attacker ready')
  return {
    pid: child.pid,
    start: () => child.stdin.write('go\n'),
    stop: async () => {
      const result = waitForLine(child.stdout, (l) => parseJsonLine(l)?.attacker, 30_000, 'attacker stats')
      child.stdin.end()
      return result
    },
  }
}

/** Victim load: each device publishes on its own timer, staggered; latency is publish to accepted. */
async function victims(port) {
  const ids = Array.from({ length: VICTIMS }, (_, i) => `dev-${String(i).padStart(3, '0')}`)
  const clients = await connectMany(port, ids, 10)
  await Promise.all(clients.map((c, i) => c.subscribeAsync([`$aws/things/${ids[i]}/shadow/update/accepted`, `$aws/things/${ids[i]}/shadow/update/rejected`], { qos: 1 })))
  const pending = new Map()
  let phase = null
  const timers = []
  clients.forEach((client, i) => {
    const id = ids[i]
    const topic = `$aws/things/${id}/shadow/update`
    let seq = 0
    client.on('message', (t, message) => {
      const now = performance.now()
      const body = JSON.parse(message.toString('utf8'))
      const sent = pending.get(body.clientToken)
      if (sent === undefined) return
      pending.delete(body.clientToken)
      if (sent.phase === null) return
      if (t.endsWith('/accepted')) sent.phase.latencies.push(now - sent.at)
      else sent.phase.rejected[body.code] = (sent.phase.rejected[body.code] ?? 0) + 1
    })
    const tick = () => {
      const clientToken = `${id}:${++seq}`
      pending.set(clientToken, { at: performance.now(), phase })
      if (phase !== null) phase.sent++
      client.publish(topic, JSON.stringify({ state: { reported: { seq, temperature: 20 + (seq % 7) } }, clientToken }), { qos: 1 })
    }
    setTimeout(() => timers.push(setInterval(tick, 1000 / RATE)), (i * 1000) / RATE / VICTIMS)
  })
  return {
    /** Runs one phase: resolves with its latencies once every request sent in it is answered or given up on. */
    async phase(name, ms) {
      const p = { name, sent: 0, latencies: [], rejected: {}, unanswered: 0 }
      phase = p
      await sleep(ms)
      phase = null
      const deadline = performance.now() + 30_000
      while ([...pending.values()].some((s) => s.phase === p) && performance.now() < deadline) await sleep(50)
      p.unanswered = [...pending.values()].filter((s) => s.phase === p).length
      return p
    },
    async stop() {
      for (const t of timers) clearInterval(t)
      await Promise.all(clients.map(mqttClose))
    },
  }
}

async function main() {
  process.stdout.write(`Shadow replies under a many-key attack: ${VICTIMS} devices x ${RATE} updates/s (open loop), ` +
    `an attacker flooding ${fmtInt(KEYS)}-key updates (${ATTACK_INFLIGHT} in flight), phases of ${PHASE_MS} ms\n`)
  const loadBefore = loadAverage()
  const data = tempDir('edge-bench-shadow-attack-')
  const overrides = MAX_PACKET_BYTES === null ? {} : { broker: { maxPacketBytes: Number(MAX_PACKET_BYTES) } }
  const target = await startBrokerHost('coordinator', { dataDir: data.dir, overrides })
  const attack = await startAttacker(target.port)
  const load = await victims(target.port)
  const phases = []
  const sample = () => ({ cpu: cpuSecondsOf(target.pid), t: performance.now() })
  let attackStats
  try {
    await sleep(2000)
    await waitForQuiet([process.pid, target.pid, attack.pid], { what: 'the first phase' })
    for (const name of ['no attack', 'attack', 'after']) {
      if (name === 'attack') attack.start()
      const before = sample()
      const p = await load.phase(name, PHASE_MS)
      const after = sample()
      if (name === 'attack') attackStats = await attack.stop()
      p.coordinatorCpu = (after.cpu - before.cpu) / ((after.t - before.t) / 1000)
      p.coordinatorRssMb = memoryOf(target.pid).rssKb / 1024
      phases.push(p)
      process.stdout.write(`  ${name.padEnd(9)}: ${p.latencies.length} accepted, p50 ${round(percentile(p.latencies, 50), 2)} ms, p99 ${round(percentile(p.latencies, 99), 2)} ms, ` +
        `max ${round(Math.max(...p.latencies), 1)} ms, unanswered ${p.unanswered}, coordinator CPU ${fmtPct(p.coordinatorCpu)}\n`)
    }
  } finally {
    await load.stop()
    await target.stop()
    data.remove()
  }
  const attacked = phases.find((p) => p.name === 'attack')
  const rows = phases.map((p) => [
    p.name, fmtInt(p.sent), fmtInt(p.latencies.length), round(percentile(p.latencies, 50), 2), round(percentile(p.latencies, 99), 2),
    round(Math.max(...p.latencies), 1), p.unanswered, JSON.stringify(p.rejected), fmtPct(p.coordinatorCpu), round(p.coordinatorRssMb, 1),
  ])
  printTable('Victims\' shadow updates (publish to update/accepted)', ['phase', 'sent', 'accepted', 'p50 ms', 'p99 ms', 'max ms', 'unanswered', 'rejected', 'coordinator CPU', 'RSS MB'], rows)
  const p99 = percentile(attacked.latencies, 99)
  process.stdout.write(`attacker: ${fmtInt(attackStats.sent)} updates of ${fmtInt(attackStats.payloadBytes)} bytes sent, replies by code ${JSON.stringify(attackStats.replies)}, ` +
    `disconnects ${attackStats.disconnects}\n`)
  process.stdout.write(`victims' p99 under the attack: ${round(p99, 2)} ms (target <= ${TARGET_P99_MS} ms: ${p99 <= TARGET_P99_MS && attacked.unanswered === 0 ? 'met' : 'NOT met'})\n`)
  printResult({
    figure: 'shadow-attack',
    machine: machine(),
    loadAverageBefore: loadBefore,
    params: { victims: VICTIMS, ratePerVictim: RATE, phaseMs: PHASE_MS, keys: KEYS, attackInflight: ATTACK_INFLIGHT, maxPacketBytes: MAX_PACKET_BYTES === null ? 'shipped' : Number(MAX_PACKET_BYTES) },
    phases: phases.map((p) => ({
      name: p.name, sent: p.sent, accepted: p.latencies.length, p50Ms: round(percentile(p.latencies, 50), 2), p99Ms: round(percentile(p.latencies, 99), 2),
      maxMs: round(Math.max(...p.latencies), 1), unanswered: p.unanswered, rejected: p.rejected, coordinatorCpu: round(p.coordinatorCpu, 2), coordinatorRssMb: round(p.coordinatorRssMb, 1),
    })),
    attacker: attackStats,
    target: { victimP99Ms: TARGET_P99_MS },
  })
}

const attackerPort = arg('attacker', undefined)
if (attackerPort !== undefined) attacker(Number(attackerPort))
else runMain(main)
