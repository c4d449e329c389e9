// Summarises a V8 .cpuprofile (from `node --cpu-prof`): top frames by self time, time per
// component (which package or which part of the coordinator), inclusive time of coordinator
// functions, and optionally of named stages (a stage is a set of function names; a sample counts
// once for each stage that has a frame on its stack). Usable alone: node test/bench/profile.mjs FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

function component(url, name) {
  if (url === '') {
    if (name === '(garbage collector)') return 'gc'
    if (name === '(idle)' || name === '(program)' || name === '(root)') return name
    return 'native'
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (nm) return nm[1]
  const coord = /\/dist\/coordinator\/(.*?)\.js$/.exec(url)
  if (coord) return `coordinator/${coord[1]}`
  if (url.startsWith('node:')) return 'node-core'
  return url.replace(/^file:\/\//, '')
}

const label = (f) => `${f.functionName || '(anonymous)'} ${component(f.url, f.functionName)}:${f.lineNumber + 1}`

/**
 * The shadow update path's stages, by the functions that do them (test/bench/shadow.mjs); a name
 * may be qualified by its component, `put@coordinator/store/shadow-store`.
 */
export const SHADOW_STAGES = {
  'request topic and queue': ['#onMqttRequest', '#submit'],
  'parse and validate the request': ['parseUpdateRequest'],
  'load (SQLite get, JSON.parse)': ['#load'],
  'merge and metadata': ['mergeDocument'],
  'size checks and serialization of the document': ['sectionsJson'],
  'reply bodies (accepted, delta: build and JSON)': ['updateAcceptedBody', 'updateDeltaBody', 'replyOf'],
  'SQLite put': ['put@coordinator/store/shadow-store'],
  'reply publishes through aedes': ['#publish'],
  'broker: authorize and deliver the request': ['authorizePublish', 'deliver@coordinator/broker/broker'],
  gc: ['(garbage collector)'],
}

export function summarizeProfile(file, top = 15, stages = {}) {
  const profile = JSON.parse(readFileSync(file, 'utf8'))
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map()
  const inclusive = new Map()
  const components = new Map()
  const stageTime = new Map(Object.keys(stages).map((k) => [k, 0]))
  const stageOf = new Map(Object.entries(stages).flatMap(([stage, names]) => names.map((n) => [n, stage])))
  let total = 0
  let idle = 0
  profile.samples.forEach((id, i) => {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000
    const node = byId.get(id)
    const f = node.callFrame
    if (f.functionName === '(idle)') {
      idle += dt
      return
    }
    total += dt
    const key = label(f)
    self.set(key, (self.get(key) ?? 0) + dt)
    const comp = component(f.url, f.functionName)
    components.set(comp, (components.get(comp) ?? 0) + dt)
    const seen = new Set()
    const inStages = new Set()
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur).callFrame
      const stage = stageOf.get(`${cf.functionName}@${component(cf.url, cf.functionName)}`) ?? stageOf.get(cf.functionName)
      if (stage !== undefined && !inStages.has(stage)) {
        inStages.add(stage)
        stageTime.set(stage, stageTime.get(stage) + dt)
      }
      if (!cf.url.includes('/dist/coordinator/')) continue
      const k = label(cf)
      if (seen.has(k)) continue
      seen.add(k)
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt)
    }
  })
  const rank = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, ms]) => ({ frame: k, ms: Math.round(ms), pct: Math.round((ms / total) * 1000) / 10 }))
  const stageRows = [...stageTime].map(([k, ms]) => ({ frame: k, ms: Math.round(ms), pct: Math.round((ms / total) * 1000) / 10 }))
  return { busyMs: Math.round(total), idleMs: Math.round(idle), self: rank(self), components: rank(components), coordinatorInclusive: rank(inclusive), stages: stageRows }
}

export function printProfileSummary(title, s) {
  const out = [`\n${title}: ${s.busyMs} ms busy, ${s.idleMs} ms idle`]
  out.push('  top self time:')
  for (const r of s.self) out.push(`    ${String(r.pct).padStart(5)}%  ${r.frame}`)
  out.push('  self time by component:')
  for (const r of s.components) out.push(`    ${String(r.pct).padStart(5)}%  ${r.frame}`)
  if (s.stages.length > 0) {
    out.push('  stages, inclusive (a sample can be in several):')
    for (const r of s.stages) out.push(`    ${String(r.pct).padStart(5)}%  ${r.frame}`)
  }
  if (s.coordinatorInclusive.length > 0) {
    out.push('  coordinator code, inclusive:')
    for (const r of s.coordinatorInclusive) out.push(`    ${String(r.pct).padStart(5)}%  ${r.frame}`)
  }
  process.stdout.write(`${out.join('\n')}\n`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, top = '15'] = process.argv.slice(2)
  if (file === undefined) {
    process.stderr.write('usage: node test/bench/profile.mjs FILE.cpuprofile [TOP]\n')
    process.exit(2)
  }
  printProfileSummary(file, summarizeProfile(file, Number(top)))
}
