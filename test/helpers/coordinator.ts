import { loadConfig } from '../../coordinator/config/index.js'
import { silentLogger } from '../../coordinator/core/log.js'
import { Coordinator, type Endpoints } from '../../coordinator/kernel/coordinator.js'
import type { Clock } from '../../coordinator/core/clock.js'
import { tempDir } from './tmp.js'

export interface RunningCoordinator {
  coordinator: Coordinator
  dataDir: string
  endpoints: Required<Endpoints>
  mqttUrl: string
  httpUrl: string
  /** Stops the coordinator and, unless kept, removes its data directory. */
  stop(opts?: { keepData?: boolean }): Promise<void>
}

/** An in-process coordinator on 127.0.0.1 with every port picked by the OS. */
export async function startCoordinator(overrides: Record<string, unknown> = {}, opts: { dataDir?: string; clock?: Clock } = {}): Promise<RunningCoordinator> {
  const tmp = opts.dataDir === undefined ? tempDir() : { dir: opts.dataDir, remove: () => {} }
  const config = loadConfig({
    overrides: {
      dataDir: tmp.dir,
      ...overrides,
      // Merged per listener, so overriding one port never brings back another's default.
      listeners: { mqtt: { port: 0 }, mqtts: { port: 0 }, ws: { port: 0 }, http: { port: 0 }, ...(overrides['listeners'] as object | undefined) },
    },
  })
  const coordinator = await Coordinator.start(config, silentLogger(), opts.clock)
  const endpoints = coordinator.endpoints as Required<Endpoints>
  return {
    coordinator,
    dataDir: tmp.dir,
    endpoints,
    mqttUrl: `mqtt://127.0.0.1:${endpoints.mqtt.port}`,
    httpUrl: `http://127.0.0.1:${endpoints.http.port}`,
    stop: async ({ keepData = false } = {}) => {
      await coordinator.close()
      if (!keepData) tmp.remove()
    },
  }
}
