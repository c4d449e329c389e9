import type { CoordinatorInfo } from '../api/index.js'
import type { CoordinatorConfig } from '../config/index.js'
import type { Logger } from '../core/log.js'
import type { ShadowService } from '../shadow/index.js'
import { detectBoard, HardwareRuntime, type Board } from '../../hardware/index.js'

/** The board the coordinator runs on and its hardware adapters (hardware/README.md). */
export interface HardwareConnection {
  board: Board
  runtime: HardwareRuntime
  info(): CoordinatorInfo
  close(): Promise<void>
}

/**
 * Detects the board (its profile's limits were applied when the config was loaded; this logs them
 * with the capability tags) and starts the adapters that present local GPIO lines and serial
 * sensors as devices with shadows. Adapters that fail retry in the background: hardware never
 * stops the coordinator from starting.
 */
export async function connectHardware(config: CoordinatorConfig, shadows: ShadowService, log: Logger): Promise<HardwareConnection> {
  const board = detectBoard({ root: config.hardware.root, profile: config.hardware.profile })
  const limits = limitsInForce(config)
  log.info({ profile: board.profile, detectedProfile: board.detectedProfile, model: board.model, capabilities: board.tags, limits }, 'board detected')
  const runtime = await HardwareRuntime.start(config.hardware, { shadows, log: log.child({ module: 'hardware' }) })
  const { profile, detectedProfile, model, memoryMb, arch } = board
  return {
    board,
    runtime,
    info: () => ({ board: { profile, detectedProfile, model, memoryMb, arch }, capabilities: [...board.tags], limits, hardware: runtime.status() }),
    close: () => runtime.close(),
  }
}

/** The limits a board profile sets, as they stand after the config file had its say. */
function limitsInForce(config: CoordinatorConfig): Record<string, unknown> {
  const { maxConcurrentCalls, maxTasks, maxMemoryMb, memoryBudgetMb } = config.tasks
  return {
    tasks: { maxConcurrentCalls, maxTasks, maxMemoryMb, memoryBudgetMb },
    broker: { concurrency: config.broker.concurrency, maxPacketBytes: config.broker.maxPacketBytes },
    cloud: { outbox: { maxBytes: config.cloud.outbox.maxBytes } },
    log: { maxBytes: config.log.maxBytes, maxFiles: config.log.maxFiles },
  }
}
