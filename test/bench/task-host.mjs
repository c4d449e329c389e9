// The broker and task runtime under test in their own process, so they have a core to themselves
// and do not share an event loop with the load generator.
// Usage: node --no-node-snapshot task-host.mjs OPTIONS_JSON
//   OPTIONS_JSON = { dataDir, policies, anonymousPolicies, maxConcurrentCalls,
//                    tasks: [{ name, body, extra }],          installed through TaskService
//                    plain: [{ filter, body }] }              the handler body as a plain function
//                                                             subscribed on the same broker
// Prints one JSON line { ready: true, port, pid } and runs until stdin closes or SIGTERM.
// stdin commands (one a line): 'metrics NAME' answers { metrics: TaskInfo.metrics };
// 'profile-start' / 'profile-stop FILE' run the V8 CPU profiler over just that stretch.
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { plainHandler, startTaskStack, taskBundle } from './task-stack.mjs'
import { serveStdinCommands } from './lib.mjs'

const options = JSON.parse(process.argv[2] ?? '{}')
const stack = await startTaskStack(options)
for (const t of options.tasks ?? []) await stack.service.install(taskBundle(t.name, t.body, t.extra))
for (const p of options.plain ?? []) {
  const plain = plainHandler(p.body, stack.broker)
  await stack.broker.subscribe(p.filter, (topic, payload) => {
    plain.onMessage(topic, payload).catch((err) => process.stderr.write(`task-host: plain handler failed: ${err.stack}\n`))
  })
}
const port = await stack.listen()

let stopping = false
async function stop() {
  if (stopping) return
  stopping = true
  const deadline = setTimeout(() => process.exit(1), 15_000)
  deadline.unref()
  try {
    await stack.close()
  } finally {
    // A normal exit (not a signal) so that --cpu-prof writes its profile.
    process.exit(0)
  }
}

const answer = (value) => process.stdout.write(`${JSON.stringify(value)}\n`)
let session
async function command(line) {
  const [cmd, arg] = line.trim().split(' ')
  if (cmd === 'metrics') {
    answer({ metrics: stack.service.get(arg)?.metrics ?? null })
  } else if (cmd === 'profile-start') {
    session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 500 })
    await session.post('Profiler.start')
    answer({ profiling: true })
  } else if (cmd === 'profile-stop' && session !== undefined) {
    const { profile } = await session.post('Profiler.stop')
    session.disconnect()
    session = undefined
    writeFileSync(arg, JSON.stringify(profile))
    answer({ profiled: arg })
  }
}
serveStdinCommands('task-host', command, stop)

answer({ ready: true, port, pid: process.pid })
