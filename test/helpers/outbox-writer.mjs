// Enqueues into an outbox forever and prints each accepted id on stdout, one a line, only after
// the call that accepted it returned (committed). A test SIGKILLs it mid-stream and checks that
// every printed id survived. Mixes the three entry points: enqueue, enqueueMany, enqueueAsync.
// Usage: node outbox-writer.mjs <db file> <full|normal>. Imports the compiled module: build first.
import { Outbox } from '../../dist/coordinator/cloud/index.js'

const [file, synchronous = 'full'] = process.argv.slice(2)
if (file === undefined) throw new Error('usage: outbox-writer.mjs <db file> <full|normal>')

const outbox = Outbox.open(file, { synchronous })
let seq = 0
const next = () => ({ topic: `up/writer/${seq}`, payload: Buffer.from(`payload-${seq++}`), qos: 1 })
const report = (results) => {
  const ids = results.filter((r) => r.accepted).map((r) => r.id)
  if (ids.length > 0) process.stdout.write(`${ids.join('\n')}\n`)
}

async function round(i) {
  if (i % 3 === 0) report([outbox.enqueue(next())])
  else if (i % 3 === 1) report(outbox.enqueueMany(Array.from({ length: 1 + (i % 50) }, next)))
  else report(await Promise.all(Array.from({ length: 1 + (i % 40) }, () => outbox.enqueueAsync(next()))))
}

for (let i = 0; ; i++) await round(i)
