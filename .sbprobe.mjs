const which = process.argv[2]
const base = which === 'old' ? '/tmp/main-src/dist' : '/work/wt/sandbox/dist'
const { TaskSandbox } = await import(`${base}/coordinator/sandbox/index.js`)
const { silentLogger } = await import(`${base}/coordinator/core/log.js`)
const work = Number(process.argv[3] ?? 150000)
const HANDLER = `(event) => { let x = 0; for (let i = 0; i < ${work}; i++) x += i % 7; return { seq: event.payload, x } }`
const sb = await TaskSandbox.create({ taskName: 'b', version: '1.0.0', code: `var __edgeTask = { handler: ${HANDLER} }`, handler: 'handler', mode: 'on-demand',
  limits: { memoryMb: 32, cpuMsPerCall: 5, wallMsPerCall: 5000 }, host: {}, config: {}, log: silentLogger() })
for (let i = 0; i < 200; i++) await sb.call({ type: "invoke", payload: i }).catch(() => {})
const t0 = performance.now(); const c0 = process.cpuUsage()
let n = 0
while (performance.now() - t0 < 3000) { try { await sb.call({ type: "invoke", payload: n }) } catch {} ; n++ }
const c = process.cpuUsage(c0)
console.log(which, work, 'calls/s', Math.round(n / 3), 'cpu/call us', Math.round((c.user + c.system) / n), 'metrics cpu/call ms', (sb.metrics().cpuTimeMs / sb.metrics().calls).toFixed(3))
sb.dispose()
