#!/usr/bin/env node
import { main } from '../dist/cloud-shim/cli/index.js'

await main(process.argv)
