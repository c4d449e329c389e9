export const print = (s: string): void => {
  process.stdout.write(`${s}\n`)
}

export const printJson = (v: unknown): void => print(JSON.stringify(v, null, 2))

/** Left-aligned columns, two spaces apart; the header in upper case. */
export function printTable(header: string[], rows: string[][]): void {
  const all = [header.map((h) => h.toUpperCase()), ...rows]
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)))
  for (const r of all) print(r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join('  ').trimEnd())
}

export const formatAttributes = (a: Record<string, string>): string => Object.entries(a).map(([k, v]) => `${k}=${v}`).join(' ')

const UNITS = ['B', 'KiB', 'MiB', 'GiB']

export function formatBytes(n: number): string {
  let value = n
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`
}
