// A coordinator's upstream half in its own process, so a test can SIGKILL it mid-drain: opens the
// outbox file, queues COUNT sequence-numbered messages the first time (empty file), and drains
// it to the broker on PORT. Prints {"ready":true,"queued":n} once started; closing stdin closes the
// link and the outbox and exits.
// Usage: node cloud-link-child.mjs <db file> <port> <count>. Imports the compiled module: build first.
import { CloudLink, Outbox } from '../../dist/coordinator/cloud/index.js'

const [file, port, count] = process.argv.slice(2)
if (file === undefined || port === undefined || count === undefined) throw new Error('usage: cloud-link-child.mjs <db file> <port> <count>')

const outbox = Outbox.open(file)
const fresh = outbox.stats()
if (fresh.queued === 0 && fresh.delivered === 0) {
  outbox.enqueueMany(Array.from({ length: Number(count) }, (_, i) => {
    const payload = Buffer.alloc(100)
    payload.writeUInt32BE(i, 0)
    return { topic: 'up/coord-kill/seq', payload, qos: 1 }
  }))
}
const link = new CloudLink({ url: `mqtt://127.0.0.1:${port}`, thingName: 'coord-kill', outbox, backoff: { initialMs: 20, maxMs: 200 } })
link.start()
process.stdout.write(`${JSON.stringify({ ready: true, queued: outbox.stats().queued })}\n`)

process.stdin.resume()
process.stdin.once('end', async () => {
  await link.close()
  outbox.close()
  process.exit(0)
})
