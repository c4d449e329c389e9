/**
 * `edge-task ls | head -1`: the reader of a CLI's output goes away before the CLI is done writing.
 * Each of the four CLIs runs as a real child process whose stdout pipe is closed at once, before it
 * can write a line; it must end with exit code 0 and nothing on stderr, not an EPIPE stack.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCoordinator, type RunningCoordinator } from '../helpers/coordinator.js'
import { CLOUD_BIN, EDGE_BIN, startCloudShim, type RunningCloudShim } from '../helpers/cloud-shim.js'
import { bundle, echoBody, manifest } from '../helpers/tasks.js'

const bin = (name: string): string => fileURLToPath(new URL(`../../bin/${name}.js`, import.meta.url))

/** Runs a CLI with its stdout pipe closed by the reader before the CLI writes anything. */
function withClosedStdout(file: string, args: string[]): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const { EDGE_COORDINATOR: _c, EDGE_CLOUD: _e, ...env } = process.env
  const child = spawn(process.execPath, ['--no-node-snapshot', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
  child.stdout.destroy()
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stderr })))
}

describe('CLI output into a closed pipe', () => {
  let coordinator: RunningCoordinator
  let cloud: RunningCloudShim

  beforeAll(async () => {
    coordinator = await startCoordinator({ tasks: { allowUnsigned: true } })
    cloud = await startCloudShim()
    for (const name of ['alpha', 'beta', 'gamma']) {
      const res = await fetch(`${coordinator.httpUrl}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bundle(manifest(name), echoBody) })
      expect(res.status).toBe(201)
    }
  }, 60_000)

  afterAll(async () => {
    await coordinator?.stop()
    await cloud?.stop()
  })

  const CASES: Array<[string, () => [string, string[]]]> = [
    ['edge-task ls', () => [bin('edge-task'), ['ls', '--coordinator', coordinator.httpUrl]]],
    ['edge-task ls --json', () => [bin('edge-task'), ['ls', '--json', '--coordinator', coordinator.httpUrl]]],
    ['edge-coordinator devices list', () => [bin('edge-coordinator'), ['devices', 'list', '--data-dir', coordinator.dataDir]]],
    ['edge-cloud coordinators list', () => [CLOUD_BIN, ['coordinators', 'list', '--data-dir', cloud.dataDir]]],
    ['edge things ls', () => [EDGE_BIN, ['--cloud', cloud.httpUrl, 'things', 'ls']]],
  ]

  it.each(CASES)('%s exits 0 without an EPIPE stack', async (_what, command) => {
    const [file, args] = command()
    const r = await withClosedStdout(file, args)
    expect(r).toEqual({ code: 0, signal: null, stderr: '' })
  })
})
