import { appendFileSync, chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Stand-ins for libgpiod's gpioset/gpioget/gpiomon: each logs its arguments to `calls`; gpioset
 * holds "the line" (sleeps) until signalled, or fails like a busy line when `refuse` exists;
 * gpioget prints `level`; gpiomon prints each line appended to `events`.
 */
export function fakeGpiod(dir: string, version: '1.6.3' | '2.1'): {
  calls(): string[]
  setLevel(level: 0 | 1): void
  edge(token: string): void
  refuse(): void
  holderPid(): number
} {
  const tool = (name: string, body: string): void => {
    writeFileSync(join(dir, name), `#!/bin/sh\nd=$(dirname "$0")\n${body}\n`)
    chmodSync(join(dir, name), 0o755)
  }
  writeFileSync(join(dir, 'events'), '')
  tool('gpioset', [
    `if [ "$1" = "--version" ]; then echo "gpioset (libgpiod) v${version}"; exit 0; fi`,
    'echo "gpioset $*" >> "$d/calls"',
    'if [ -f "$d/refuse" ]; then echo "gpioset: error setting the GPIO line values: Device or resource busy" >&2; exit 1; fi',
    'echo $$ > "$d/holder.pid"',
    'exec sleep 3600',
  ].join('\n'))
  tool('gpioget', 'echo "gpioget $*" >> "$d/calls"\ncat "$d/level" 2>/dev/null || echo 0')
  tool('gpiomon', 'echo "gpiomon $*" >> "$d/calls"\nexec tail -n +1 -f "$d/events"')
  return {
    calls: () => (existsSync(join(dir, 'calls')) ? readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n') : []),
    setLevel: (level) => writeFileSync(join(dir, 'level'), `${level}\n`),
    edge: (token) => appendFileSync(join(dir, 'events'), `${token}\n`),
    refuse: () => writeFileSync(join(dir, 'refuse'), ''),
    holderPid: () => Number(readFileSync(join(dir, 'holder.pid'), 'utf8')),
  }
}
