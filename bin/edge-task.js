#!/usr/bin/env -S node --no-node-snapshot
// --no-node-snapshot as in edge-coordinator: this CLI loads no isolates, but both binaries start the same way.
import { main } from '../dist/tasks/cli/index.js'

await main(process.argv)
