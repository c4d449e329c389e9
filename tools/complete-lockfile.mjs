#!/usr/bin/env node
// The npm registry mirror this project is built against lacks some platform-specific optional
// packages (other OSes' rollup and cbor-extract binaries), so `npm install` leaves them out of
// package-lock.json, and `npm ci` then refuses the lock file as out of sync. This adds a lock entry
// for every optional dependency that has none (exact version from its parent, marked optional);
// `npm ci` skips them when they cannot be fetched. Run it after any `npm install` that changes the lock.
import { readFileSync, writeFileSync } from 'node:fs'

const file = new URL('../package-lock.json', import.meta.url)
const lock = JSON.parse(readFileSync(file, 'utf8'))
const packages = lock.packages
let added = 0
for (const meta of Object.values(packages)) {
  for (const [name, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`
    if (packages[key] !== undefined) continue
    packages[key] = { version, optional: true, ...(meta.dev === true ? { dev: true } : {}) }
    added++
  }
}
const order = Object.keys(packages).sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b)))
lock.packages = Object.fromEntries(order.map((k) => [k, packages[k]]))
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`)
console.log(`package-lock.json: added ${added} optional entr${added === 1 ? 'y' : 'ies'}`)
