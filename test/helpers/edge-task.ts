import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const BIN = fileURLToPath(new URL('../../bin/edge-task.js', import.meta.url))

/** The task examples shipped in tasks/examples/. */
export const EXAMPLES = fileURLToPath(new URL('../../tasks/examples/', import.meta.url))

export interface EdgeTaskResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs the built `edge-task` (needs dist/) in `cwd`, without EDGE_COORDINATOR from the caller's shell. */
export function edgeTask(args: string[], cwd: string, timeoutMs = 30_000): Promise<EdgeTaskResult> {
  const { EDGE_COORDINATOR: _ignored, ...env } = process.env
  return new Promise((resolve) => {
    execFile(process.execPath, ['--no-node-snapshot', BIN, ...args], { cwd, env, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

/** Like edgeTask, but throws with the CLI's output unless it exits 0. */
export async function edgeTaskOk(args: string[], cwd: string): Promise<string> {
  const r = await edgeTask(args, cwd)
  if (r.code !== 0) throw new Error(`edge-task ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`)
  return r.stdout
}
