// Start-up cost of the integrity check: every SQLite file is opened through openDatabase, which
// runs `PRAGMA quick_check` before anything else. Side by side in one run, for databases of
// several sizes (rows shaped like stored shadows: a thing name and an 8 KB-ish JSON document):
//   baseline: new Database(file) + journal_mode=WAL (what opening cost before the check)
//   checked:  openDatabase(file) from dist/ (the same, plus quick_check and the file-mode steps)
// The page cache is warm (the file was just written or read); a cold SD card reads slower, so on a
// Pi the check costs about the time to read the file once.
//
//   node --no-node-snapshot test/bench/db-check.mjs [--sizes-mb 8,64] [--reps 5]
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { ROOT, arg, fmtInt, machine, median, numArg, printResult, printTable, round, runMain, tempDir } from './lib.mjs'

const SIZES_MB = String(arg('sizes-mb', '8,64')).split(',').map(Number)
const REPS = numArg('reps', 5)

/** Fills a database with shadow-like rows up to about `mb` megabytes, with an index as stores keep. */
function build(file, mb) {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec('CREATE TABLE shadows (thing TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (thing, name))')
  db.exec('CREATE INDEX shadows_version ON shadows (version)')
  const insert = db.prepare('INSERT INTO shadows VALUES (?, ?, ?, ?)')
  const doc = JSON.stringify({ state: { reported: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, i * 1.5])) } })
  const rows = Math.ceil((mb * 1024 * 1024) / (doc.length + 40))
  db.transaction(() => {
    for (let i = 0; i < rows; i++) insert.run(`thing-${i}`, '', doc, i)
  })()
  db.close()
  return rows
}

function timeIt(fn) {
  const t0 = performance.now()
  fn()
  return performance.now() - t0
}

async function main() {
  const { openDatabase } = await import(join(ROOT, 'dist', 'coordinator', 'store', 'db.js'))
  const tmp = tempDir()
  const rows = []
  const figures = []
  for (const mb of SIZES_MB) {
    const file = join(tmp.dir, `shadows-${mb}.db`)
    const count = build(file, mb)
    const baseline = []
    const checked = []
    // Alternated, so that both see the same page cache and machine load.
    for (let r = 0; r < REPS; r++) {
      baseline.push(timeIt(() => {
        const db = new Database(file)
        db.pragma('journal_mode = WAL')
        db.close()
      }))
      checked.push(timeIt(() => openDatabase(file).close()))
    }
    const b = median(baseline)
    const c = median(checked)
    rows.push([`${mb} MB (${fmtInt(count)} rows)`, `${round(b, 2)} ms`, `${round(c, 1)} ms`, `${round(c - b, 1)} ms`, `${fmtInt(mb / ((c - b) / 1000))} MB/s`])
    figures.push({ sizeMb: mb, rows: count, baselineMs: round(b, 2), checkedMs: round(c, 1), checkMs: round(c - b, 1) })
  }
  printTable(`open + quick_check, median of ${REPS} (warm page cache)`, ['database', 'open only', 'openDatabase (checked)', 'check cost', 'check rate'], rows)
  tmp.remove()
  printResult({ figure: 'db-check', machine: machine(), reps: REPS, sizes: figures })
}

runMain(main)
