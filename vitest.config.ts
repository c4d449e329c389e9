import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // isolated-vm needs --no-node-snapshot on Node 20, in every worker too.
    pool: 'forks',
    poolOptions: { forks: { execArgv: ['--no-node-snapshot'] } },
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
