/**
 * `npm run demo` (the built dist/demo) as a newcomer runs it: it reaches its steady state, the
 * deployment succeeded and the heater is really on, and Ctrl-C stops every process it started,
 * exits 0 and removes its data directory.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { TaskInfo } from '../../coordinator/protocol/index.js'
import { alive, background, descendants, type Background } from '../helpers/background.js'
import { DEMO, READY, demoValues } from '../helpers/demo.js'
import { tempDir } from '../helpers/tmp.js'

const startDemo = (args: string[] = []): Background => background(process.execPath, ['--no-node-snapshot', DEMO, ...args])
const getJson = async <T>(url: string): Promise<T> => (await (await fetch(url)).json()) as T

describe('npm run demo', () => {
  const started: Background[] = []
  const tmp = tempDir('edge-demo-test-')

  afterEach(async () => {
    // A failed test must not leave a demo (and its daemons) running.
    await Promise.all(started.splice(0).map((d) => d.stop('SIGINT')))
  })
  afterAll(() => tmp.remove())

  it('should reach its steady state with the heater on, then stop everything and remove its data on Ctrl-C', async () => {
    const demo = startDemo()
    started.push(demo)
    const [, deploymentId] = await demo.waitFor(READY, 120_000)
    const v = demoValues(demo.stdout())
    expect(v.pids.demo).toBe(demo.pid)
    expect(existsSync(join(v.dataDir, 'coordinator.log'))).toBe(true)

    // The heater is on as the coordinator's own API reports it: commanded by the task, obeyed by the plug.
    const heater = await getJson<{ state: Record<string, unknown> }>(`${v.coordinatorUrl}/things/heater-1/shadow`)
    expect(heater.state).toMatchObject({ desired: { on: true }, reported: { on: true } })
    const { tasks } = await getJson<{ tasks: TaskInfo[] }>(`${v.coordinatorUrl}/v1/tasks`)
    expect(Object.fromEntries(tasks.map((t) => [t.name, t.state]))).toEqual({ thermostat: 'running', 'telemetry-aggregator': 'running', 'health-check': 'running' })
    const { deployments } = await getJson<{ deployments: Array<{ id: string; status: string }> }>(`${v.cloudUrl}/v1/deployments`)
    expect(deployments).toEqual([expect.objectContaining({ id: deploymentId, status: 'succeeded' })])
    await demo.waitFor(/^\d\d:\d\d:\d\d {2}heater-1 on \(/m, 15_000)

    const processes = descendants(demo.pid)
    expect(processes).toEqual(expect.arrayContaining([v.pids.cloudShim, v.pids.coordinator]))
    demo.signal('SIGINT')
    const code = await Promise.race([demo.exited, new Promise((resolve) => setTimeout(() => resolve('no exit within 30 s'), 30_000))])
    expect(code, demo.stdout() + demo.stderr()).toBe(0)
    expect(demo.stdout()).toMatch(/^SIGINT: stopping the demo\nstopped\n$/m)
    expect(processes.filter(alive)).toEqual([])
    expect(existsSync(v.dataDir)).toBe(false)
  }, 180_000)

  it('should start from an emptied --data-dir, and keep it with --keep', async () => {
    const dir = join(tmp.dir, 'demo-data')
    mkdirSync(dir)
    writeFileSync(join(dir, '.edge-demo'), '')
    writeFileSync(join(dir, 'left-over-from-last-run'), '')
    const demo = startDemo(['--data-dir', dir, '--keep'])
    started.push(demo)
    await demo.waitFor(READY, 120_000)
    expect(demoValues(demo.stdout()).dataDir).toBe(dir)
    expect(existsSync(join(dir, 'left-over-from-last-run'))).toBe(false)

    const before = readdirSync(dir).sort()
    const second = startDemo(['--data-dir', dir])
    expect(await second.exited).toBe(1)
    expect(second.stderr()).toMatch(new RegExp(`demo: ${dir} is in use by a running demo \\(its cloud is pid \\d+\\)`))
    expect(readdirSync(dir).sort()).toEqual(before)

    expect(await demo.stop('SIGTERM')).toBe(0)
    expect(demo.stdout()).toContain(`data kept in ${dir}`)
    expect(readdirSync(dir)).toEqual(expect.arrayContaining(['cloud.log', 'coordinator.log', 'coordinator', 'cloud']))
  }, 180_000)

  it('should refuse a --data-dir it did not make, and leave it untouched', async () => {
    const dir = join(tmp.dir, 'precious')
    mkdirSync(dir)
    writeFileSync(join(dir, 'thesis.tex'), '')
    const demo = startDemo(['--data-dir', dir])
    expect(await demo.exited).toBe(1)
    expect(demo.stderr()).toContain(`demo: ${dir} is not empty and not a previous demo's data directory`)
    expect(readdirSync(dir)).toEqual(['thesis.tex'])
  })
})
