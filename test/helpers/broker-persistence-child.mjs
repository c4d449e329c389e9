// An aedes broker on the SQLite persistence in its own process, so a test can SIGKILL it.
// Usage: node broker-persistence-child.mjs <db file>; prints {"port":n} once listening.
// Imports the compiled module: needs `npm run build` first.
import { createServer } from 'node:net'
import { Aedes } from 'aedes'
import { openDatabase } from '../../dist/coordinator/store/db.js'
import { createBrokerPersistence } from '../../dist/coordinator/store/broker-persistence.js'

const file = process.argv[2]
if (file === undefined) throw new Error('usage: broker-persistence-child.mjs <db file>')

const aedes = await Aedes.createBroker({ persistence: createBrokerPersistence(openDatabase(file)) })
const server = createServer(aedes.handle)
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`)
})
