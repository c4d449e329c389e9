#!/usr/bin/env -S node --no-node-snapshot
// --no-node-snapshot: isolated-vm (task sandboxes) needs it on Node 20.
import { main } from '../dist/coordinator/cli/index.js'

await main(process.argv)
