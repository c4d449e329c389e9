/** Reading what the demo (demo/index.ts) prints once it is ready. */
import { fileURLToPath } from 'node:url'

export const DEMO = fileURLToPath(new URL('../../dist/demo/index.js', import.meta.url))

/** The line the demo prints once the deployment succeeded and the heater reported on. */
export const READY = /^ready: deployment (\S+) succeeded, heater-1 is on$/m

export interface DemoValues {
  dataDir: string
  cloudUrl: string
  coordinatorUrl: string
  mqttPort: number
  pids: { demo: number; cloudShim: number; coordinator: number }
}

export function demoValues(out: string): DemoValues {
  const field = (pattern: RegExp): string => {
    const m = pattern.exec(out)
    if (m?.[1] === undefined) throw new Error(`no ${pattern} in the demo's output:\n${out}`)
    return m[1]
  }
  const pid = (name: string): number => Number(field(new RegExp(`^\\s*pids\\s.*\\b${name}=(\\d+)`, 'm')))
  return {
    dataDir: field(/^\s*data\s+(\S+)$/m),
    cloudUrl: field(/^\s*cloud shim API\s+(http:\/\/\S+)/m),
    coordinatorUrl: field(/^\s*coordinator API\s+(http:\/\/\S+)/m),
    mqttPort: Number(field(/^\s*coordinator MQTT\s+mqtt:\/\/127\.0\.0\.1:(\d+)/m)),
    pids: { demo: pid('demo'), cloudShim: pid('cloud-shim'), coordinator: pid('coordinator') },
  }
}
