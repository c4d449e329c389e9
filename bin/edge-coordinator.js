#!/usr/bin/env -S node --no-node-snapshot --max-semi-space-size=4
// --no-node-snapshot: isolated-vm (task sandboxes) needs it on Node 20.
// --max-semi-space-size=4: a smaller young generation keeps ~25 MB less resident under load at no
// measurable CPU cost (docs/benchmarks.md, "1,000 devices"); memory matters more on a Pi.
import { main } from '../dist/coordinator/cli/index.js'

await main(process.argv)
