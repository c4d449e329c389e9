#!/usr/bin/env node
import { main } from '../dist/cloud-shim/cli/edge.js'

await main(process.argv)
