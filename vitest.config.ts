import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const noDefaultPorts = fileURLToPath(new URL('./test/guards/no-default-ports.mjs', import.meta.url))

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // isolated-vm needs --no-node-snapshot on Node 20, in every worker too.
    pool: 'forks',
    poolOptions: { forks: { execArgv: ['--no-node-snapshot', `--import=${noDefaultPorts}`] } },
    // Node children the tests spawn inherit the guard through the environment.
    env: { NODE_OPTIONS: [process.env['NODE_OPTIONS'], `--import=${noDefaultPorts}`].filter(Boolean).join(' ') },
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
