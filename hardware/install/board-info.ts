/**
 * Prints the board this runs on, its capability tags and the limits its profile sets, for the
 * installer (and operators): `node dist/hardware/install/board-info.js [--root DIR] [--data-dir DIR]`.
 */
import { parseArgs } from 'node:util'
import { boardLimits, detectBoard, storageBytesAt } from '../detect.js'

/** `{ tasks: { maxTasks: 8 } }` -> `tasks.maxTasks=8`. */
function flatten(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null) return [`${prefix}=${String(value)}`]
  return Object.entries(value).flatMap(([k, v]) => flatten(v, prefix === '' ? k : `${prefix}.${k}`))
}

const { values } = parseArgs({ options: { root: { type: 'string', default: '/' }, 'data-dir': { type: 'string', default: '/var/lib/edge-coordinator' } } })
const board = detectBoard({ root: values.root })
const memory = board.memoryMb === null ? 'RAM unknown' : `${board.memoryMb} MB RAM`
process.stdout.write([
  `board:        ${board.profile} (${board.model ?? 'no device-tree model'}), ${memory}, ${board.arch}`,
  `capabilities: ${board.tags.join(' ')}`,
  `limits:       ${flatten(boardLimits(board, storageBytesAt(values['data-dir']))).join(' ')}`,
  '',
].join('\n'))
