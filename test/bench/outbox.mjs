// Figure: the cloud link's durable outbox.
//   1. Enqueue rate into the SQLite outbox with synchronous FULL and NORMAL: enqueueMany batches,
//      enqueueAsync group commit (bursts resolved per event-loop turn), and one enqueue() per
//      message (one commit each, the worst case).
//   2. Bytes on disk per queued message: (DB + WAL) / count while open, and the DB after the
//      checkpoint that closing does.
//   3. Drain rate: --count messages queued while disconnected, then the CloudLink connects to a
//      broker and drains them to a QoS 1 subscriber (the "cloud app"); time from start() until the
//      subscriber has every message and the outbox is empty. Targets: bare aedes (own process) and
//      mosquitto. Baseline in the same run, same broker and subscriber: a plain MQTT.js client
//      publishing the same messages at QoS 1 with the same in-flight window, no outbox.
//
//   node --no-node-snapshot test/bench/outbox.mjs [--count 100000] [--payload 200] [--window 64]
//        [--runs 3] [--single 2000] [--targets aedes,mosquitto]
//
// Needs the build (npx tsc -p tsconfig.build.json). Prints tables, then one JSON line.
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { CloudLink, Outbox } from '../../dist/coordinator/cloud/index.js'
import {
  arg, cpuSecondsOf, fmtInt, machine, median, mqttClose, mqttConnect, numArg, printResult, printTable, round, runMain,
  selfCpuSeconds, startBrokerHost, startMosquitto, tempDir, withTimeout,
} from './lib.mjs'

const COUNT = numArg('count', 100_000)
const PAYLOAD_BYTES = numArg('payload', 200)
const WINDOW = numArg('window', 64)
const RUNS = numArg('runs', 3)
const SINGLE = numArg('single', 2000)
const TARGETS = arg('targets', 'aedes,mosquitto').split(',')
const THING = 'bench-coord'
const DRAIN_LIMIT_MS = 180_000
const BATCH = 500

/** COUNT telemetry messages over 16 topics; the first 4 payload bytes carry the sequence number. */
function makeMessages(count) {
  return Array.from({ length: count }, (_, i) => {
    const payload = Buffer.alloc(PAYLOAD_BYTES, 0x61)
    payload.writeUInt32BE(i, 0)
    return { topic: `up/${THING}/telemetry/${i % 16}`, payload, qos: 1 }
  })
}

const MESSAGES = makeMessages(COUNT)
const rate = (n, ms) => (n * 1000) / ms
const pct = (v) => (Number.isFinite(v) ? `${Math.round(v * 100)}%` : 'n/a')
const fileSize = (path) => { try { return statSync(path).size } catch { return 0 } }

// ---------------------------------------------------------------------------------------------
// 1 + 2: enqueue rates and bytes on disk

function enqueueBatched(outbox) {
  const t0 = performance.now()
  for (let i = 0; i < COUNT; i += BATCH) outbox.enqueueMany(MESSAGES.slice(i, i + BATCH))
  return rate(COUNT, performance.now() - t0)
}

async function enqueueGroupCommit(outbox) {
  const t0 = performance.now()
  for (let i = 0; i < COUNT; i += BATCH) await Promise.all(MESSAGES.slice(i, i + BATCH).map((m) => outbox.enqueueAsync(m)))
  return rate(COUNT, performance.now() - t0)
}

function enqueueSingle(outbox) {
  const t0 = performance.now()
  for (let i = 0; i < SINGLE; i++) outbox.enqueue(MESSAGES[i])
  return rate(SINGLE, performance.now() - t0)
}

/** One fresh outbox file per measurement, so each starts from the same empty state. */
async function measureEnqueue(synchronous) {
  const runs = { batched: [], groupCommit: [], single: [] }
  let disk
  for (let r = 0; r < RUNS; r++) {
    for (const [kind, fn] of [['batched', enqueueBatched], ['groupCommit', enqueueGroupCommit], ['single', enqueueSingle]]) {
      const tmp = tempDir('edge-bench-outbox-')
      const file = join(tmp.dir, 'outbox.sqlite')
      const outbox = Outbox.open(file, { synchronous })
      runs[kind].push(await fn(outbox))
      if (kind === 'batched' && r === 0) disk = diskUse(outbox, file)
      else outbox.close()
      tmp.remove()
    }
  }
  return { synchronous, batched: median(runs.batched), groupCommit: median(runs.groupCommit), single: median(runs.single), disk }
}

/** (DB + WAL) / queued while open, then the DB alone after close (which checkpoints and removes the WAL). */
function diskUse(outbox, file) {
  const queued = outbox.stats().queued
  const openBytes = fileSize(file) + fileSize(`${file}-wal`)
  outbox.close()
  const closedBytes = fileSize(file) + fileSize(`${file}-wal`)
  return { queued, openBytesPerMessage: openBytes / queued, bytesPerMessage: closedBytes / queued, payloadBytes: PAYLOAD_BYTES }
}

// ---------------------------------------------------------------------------------------------
// 3: drain rate, outbox vs plain MQTT.js

async function startTarget(kind) {
  if (kind === 'aedes') return startBrokerHost('aedes')
  if (kind === 'mosquitto') return startMosquitto('max_queued_messages 200000\nmax_inflight_messages 0\n')
  throw new Error(`unknown target ${kind}`)
}

/** The cloud-side app: one QoS 1 subscription; each run counts what it receives by sequence number. */
async function startSubscriber(port) {
  const client = await mqttConnect(port, { clientId: 'bench-cloud-app', clean: true })
  await client.subscribeAsync(`up/${THING}/#`, { qos: 1 })
  const state = { seen: new Uint8Array(COUNT), unique: 0, total: 0, done: undefined }
  client.on('message', (_topic, payload) => {
    state.total++
    const seq = payload.readUInt32BE(0)
    if (state.seen[seq] === 1) return
    state.seen[seq] = 1
    if (++state.unique === COUNT) state.done?.()
  })
  return {
    client,
    /** Resets the counts; resolves once every message of the run has arrived once. */
    expect() {
      state.seen.fill(0)
      state.unique = 0
      state.total = 0
      return {
        all: withTimeout(new Promise((res) => { state.done = res }), DRAIN_LIMIT_MS, `${COUNT} messages at the subscriber`),
        duplicates: () => state.total - state.unique,
      }
    },
  }
}

async function drainWithOutbox(target, subscriber, synchronous) {
  const tmp = tempDir('edge-bench-outbox-drain-')
  const outbox = Outbox.open(join(tmp.dir, 'outbox.sqlite'), { synchronous })
  for (let i = 0; i < COUNT; i += BATCH) outbox.enqueueMany(MESSAGES.slice(i, i + BATCH))
  const link = new CloudLink({ url: `mqtt://127.0.0.1:${target.port}`, thingName: THING, outbox, window: WINDOW })
  const run = subscriber.expect()
  const cpu0 = { self: selfCpuSeconds(), broker: cpuSecondsOf(target.pid) }
  const t0 = performance.now()
  link.start()
  await run.all
  while (outbox.stats().queued > 0) await new Promise((res) => setTimeout(res, 1))
  const ms = performance.now() - t0
  const result = {
    msgPerSec: rate(COUNT, ms), ms, duplicates: run.duplicates(),
    clientCpu: (selfCpuSeconds() - cpu0.self) / (ms / 1000), brokerCpu: (cpuSecondsOf(target.pid) - cpu0.broker) / (ms / 1000),
  }
  await link.close()
  outbox.close()
  tmp.remove()
  return result
}

/** The same messages from a plain MQTT.js client, QoS 1, the same window of unacknowledged publishes. */
async function drainPlain(target, subscriber) {
  const client = await mqttConnect(target.port, { clientId: 'bench-baseline', clean: true })
  const run = subscriber.expect()
  const cpu0 = { self: selfCpuSeconds(), broker: cpuSecondsOf(target.pid) }
  const t0 = performance.now()
  await new Promise((resolve, reject) => {
    let next = 0
    let acked = 0
    const send = () => {
      const m = MESSAGES[next++]
      client.publish(m.topic, m.payload, { qos: 1 }, (err) => {
        if (err) return reject(err)
        if (++acked === COUNT) return resolve()
        if (next < COUNT) send()
      })
    }
    for (let i = 0; i < Math.min(WINDOW, COUNT); i++) send()
  })
  await run.all
  const ms = performance.now() - t0
  const result = {
    msgPerSec: rate(COUNT, ms), ms, duplicates: run.duplicates(),
    clientCpu: (selfCpuSeconds() - cpu0.self) / (ms / 1000), brokerCpu: (cpuSecondsOf(target.pid) - cpu0.broker) / (ms / 1000),
  }
  await mqttClose(client)
  return result
}

/** Median by rate over RUNS runs, baseline and outbox runs interleaved so drift hits both alike. */
async function measureDrain(kind) {
  const target = await startTarget(kind)
  const subscriber = await startSubscriber(target.port)
  const runs = { plain: [], full: [], normal: [] }
  try {
    for (let r = 0; r < RUNS; r++) {
      runs.plain.push(await drainPlain(target, subscriber))
      runs.full.push(await drainWithOutbox(target, subscriber, 'full'))
      runs.normal.push(await drainWithOutbox(target, subscriber, 'normal'))
    }
  } finally {
    await mqttClose(subscriber.client)
    await target.stop()
  }
  const pick = (list) => {
    const mid = median(list.map((x) => x.msgPerSec))
    return { ...list.find((x) => x.msgPerSec === mid) ?? list[0], msgPerSec: mid, runs: list.map((x) => round(x.msgPerSec)) }
  }
  return { target: kind, plain: pick(runs.plain), full: pick(runs.full), normal: pick(runs.normal) }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const enqueue = []
  for (const synchronous of ['full', 'normal']) enqueue.push(await measureEnqueue(synchronous))
  printTable(`Outbox enqueue (${fmtInt(COUNT)} x ${PAYLOAD_BYTES}-byte payloads; single: ${fmtInt(SINGLE)}; median of ${RUNS})`,
    ['synchronous', 'enqueueMany msg/s', 'enqueueAsync msg/s', 'enqueue() msg/s', 'disk B/msg (open)', 'disk B/msg (checkpointed)'],
    enqueue.map((e) => [e.synchronous, fmtInt(e.batched), fmtInt(e.groupCommit), fmtInt(e.single), fmtInt(e.disk.openBytesPerMessage), fmtInt(e.disk.bytesPerMessage)]))

  const drains = []
  for (const kind of TARGETS) drains.push(await measureDrain(kind))
  printTable(`Drain ${fmtInt(COUNT)} queued messages to a QoS 1 subscriber (window ${WINDOW}; median of ${RUNS})`,
    ['target', 'sender', 'msg/s', 'vs plain MQTT.js', 'duplicates', 'client CPU', 'broker CPU', 'runs'],
    drains.flatMap((d) => [
      [d.target, 'plain MQTT.js QoS 1', fmtInt(d.plain.msgPerSec), '100%', d.plain.duplicates, pct(d.plain.clientCpu), pct(d.plain.brokerCpu), d.plain.runs.map(fmtInt).join(' ')],
      ...['full', 'normal'].map((s) => [d.target, `outbox + link (${s})`, fmtInt(d[s].msgPerSec), pct(d[s].msgPerSec / d.plain.msgPerSec),
        d[s].duplicates, pct(d[s].clientCpu), pct(d[s].brokerCpu), d[s].runs.map(fmtInt).join(' ')]),
    ]))
  for (const d of drains) {
    process.stdout.write(`${d.target}: outbox drain ${fmtInt(d.full.msgPerSec)} msg/s with synchronous=full (target >= 5,000/s: ${d.full.msgPerSec >= 5000 ? 'met' : 'NOT met'})\n`)
  }

  printResult({
    figure: 'outbox',
    machine: machine(),
    params: { count: COUNT, payloadBytes: PAYLOAD_BYTES, window: WINDOW, runs: RUNS, single: SINGLE, batch: BATCH, subscriberQos: 1 },
    enqueue: Object.fromEntries(enqueue.map((e) => [e.synchronous, {
      enqueueManyPerSec: round(e.batched), enqueueAsyncPerSec: round(e.groupCommit), enqueuePerSec: round(e.single),
      diskBytesPerMessageOpen: round(e.disk.openBytesPerMessage, 1), diskBytesPerMessage: round(e.disk.bytesPerMessage, 1),
    }])),
    drain: Object.fromEntries(drains.map((d) => [d.target, {
      plainMqttjsPerSec: round(d.plain.msgPerSec),
      outboxFullPerSec: round(d.full.msgPerSec),
      outboxNormalPerSec: round(d.normal.msgPerSec),
      ratioFull: round(d.full.msgPerSec / d.plain.msgPerSec, 3),
      ratioNormal: round(d.normal.msgPerSec / d.plain.msgPerSec, 3),
      duplicates: { full: d.full.duplicates, normal: d.normal.duplicates },
    }])),
    target: { drainPerSec: 5000, enqueuePerSec: 5000 },
  })
}

runMain(main)
