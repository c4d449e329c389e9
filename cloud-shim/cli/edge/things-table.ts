import { formatAttributes, print, printJson, printTable } from './output.js'

/** A thing as the API answers it. */
export interface ThingView {
  name: string
  kind: string
  attributes: Record<string, string>
  tags: string[]
  coordinator: string | null
  groups?: string[]
}

export function printThings(things: ThingView[], json: boolean): void {
  if (json) return printJson(things)
  if (things.length === 0) return print('no things')
  printTable(['name', 'kind', 'coordinator', 'tags', 'attributes'], things.map((t) => [t.name, t.kind, t.coordinator ?? '-', t.tags.join(',') || '-', formatAttributes(t.attributes)]))
}
