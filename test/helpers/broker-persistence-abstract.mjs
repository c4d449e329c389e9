// Runs aedes-persistence's conformance suite (node:test) against the compiled SQLite persistence.
// Spawned by test/unit/store/broker-persistence.test.ts; needs `npm run build` first.
import { after, test } from 'node:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import abstractPersistence from 'aedes-persistence/abstract.js'
import { openDatabase } from '../../dist/coordinator/store/db.js'
import { createBrokerPersistence } from '../../dist/coordinator/store/broker-persistence.js'

const dir = mkdtempSync(join(tmpdir(), 'broker-persistence-abstract-'))
after(() => rmSync(dir, { recursive: true, force: true }))

let instances = 0

/** A fresh database file per instance; the suite's destroy() also closes it. */
function persistence() {
  const db = openDatabase(join(dir, `${++instances}.sqlite`))
  const instance = createBrokerPersistence(db)
  const destroy = instance.destroy.bind(instance)
  instance.destroy = async () => {
    await destroy()
    db.close()
  }
  return instance
}

abstractPersistence({ test, persistence, testAsync: true })
