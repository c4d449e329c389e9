/**
 * Board profiles: the default limits a coordinator runs with on each supported board, sized to its
 * RAM and storage. Greengrass fixes one JVM heap for every board and users on small ones ran out of
 * memory; a Pi Zero 2 W and a Pi 5 need different numbers.
 *
 * The values are defaults under the config file: any key an operator writes wins.
 */

export const PROFILE_NAMES = ['pi-zero-2w', 'pi3', 'pi4', 'pi5', 'generic'] as const
export type ProfileName = (typeof PROFILE_NAMES)[number]

const KiB = 1024
const MiB = 1024 * KiB

interface ProfileSpec {
  /** RAM assumed when the board's own cannot be read: the smallest variant sold. */
  nominalRamMb: number
  /** Task calls at once: the core count, halved on the Zero whose cores are shared with the broker. */
  maxConcurrentCalls: number
  /** Messages in flight through the broker at once (aedes `concurrency`). */
  brokerConcurrency: number
  /** Largest MQTT packet (AWS IoT's own is 128 KB): one in flight per connection may be held whole. */
  brokerMaxPacketBytes: number
  /** Outbox ceiling; small storage lowers it further (storageShare). */
  outboxMaxBytes: number
  /** Per file; kept small where the card is small and slow to wear-level. */
  logMaxBytes: number
  logMaxFiles: number
}

const PROFILES: Readonly<Record<ProfileName, ProfileSpec>> = {
  'pi-zero-2w': { nominalRamMb: 512, maxConcurrentCalls: 2, brokerConcurrency: 100, brokerMaxPacketBytes: 256 * KiB, outboxMaxBytes: 32 * MiB, logMaxBytes: 4 * MiB, logMaxFiles: 2 },
  pi3: { nominalRamMb: 1024, maxConcurrentCalls: 4, brokerConcurrency: 250, brokerMaxPacketBytes: MiB, outboxMaxBytes: 64 * MiB, logMaxBytes: 8 * MiB, logMaxFiles: 3 },
  pi4: { nominalRamMb: 2048, maxConcurrentCalls: 8, brokerConcurrency: 1000, brokerMaxPacketBytes: MiB, outboxMaxBytes: 128 * MiB, logMaxBytes: 16 * MiB, logMaxFiles: 3 },
  pi5: { nominalRamMb: 4096, maxConcurrentCalls: 8, brokerConcurrency: 1000, brokerMaxPacketBytes: MiB, outboxMaxBytes: 256 * MiB, logMaxBytes: 16 * MiB, logMaxFiles: 3 },
  generic: { nominalRamMb: 1024, maxConcurrentCalls: 8, brokerConcurrency: 1000, brokerMaxPacketBytes: MiB, outboxMaxBytes: 64 * MiB, logMaxBytes: 16 * MiB, logMaxFiles: 3 },
}

/** The outbox may take at most this share of the data directory's file system. */
const OUTBOX_STORAGE_SHARE = 0.05
const OUTBOX_FLOOR_BYTES = 4 * MiB

/** The profile's limits, shaped like the config sections they fill (coordinator/config/schema.ts). */
export interface ProfileLimits {
  tasks: { maxConcurrentCalls: number; maxTasks: number; maxMemoryMb: number; memoryBudgetMb: number }
  broker: { concurrency: number; maxPacketBytes: number }
  cloud: { outbox: { maxBytes: number } }
  log: { maxBytes: number; maxFiles: number }
}

export interface BoardResources {
  /** Installed RAM in MB (a nominal size, see nominalMemoryMb); the profile's smallest variant when unknown. */
  ramMb?: number | undefined
  /** Size of the file system holding the data directory, in bytes. */
  storageBytes?: number | undefined
}

export function profileLimits(name: ProfileName, resources: BoardResources = {}): ProfileLimits {
  const spec = PROFILES[name]
  const ramMb = resources.ramMb ?? spec.nominalRamMb
  return {
    tasks: { maxConcurrentCalls: spec.maxConcurrentCalls, maxTasks: maxTasksFor(ramMb), maxMemoryMb: isolateMemoryFor(ramMb), memoryBudgetMb: memoryBudgetFor(ramMb) },
    broker: { concurrency: spec.brokerConcurrency, maxPacketBytes: spec.brokerMaxPacketBytes },
    cloud: { outbox: { maxBytes: outboxBytesFor(spec, resources.storageBytes) } },
    log: { maxBytes: spec.logMaxBytes, maxFiles: spec.logMaxFiles },
  }
}

/**
 * One isolate may take an eighth of RAM (a power of two, 32-512 MB: the manifest's own range): a
 * single runaway task then cannot push the coordinator (broker, SQLite caches) into the OOM killer.
 */
function isolateMemoryFor(ramMb: number): number {
  return clamp(2 ** Math.floor(Math.log2(Math.max(1, ramMb / 8))), 32, 512)
}

/**
 * The coordinator's own resident memory budget: 60% of RAM, leaving the rest to the kernel, its
 * page cache (SQLite reads through it) and the system's services. A 512 MB Pi Zero 2 W shows about
 * 430 MB to Linux, of which an idle Raspberry Pi OS Lite uses about 70 MB: 307 MB still fits.
 */
function memoryBudgetFor(ramMb: number): number {
  return Math.max(128, Math.floor(ramMb * 0.6))
}

/** An idle isolate costs a few MB and a busy one its heap: one task per 64 MB of RAM, 4 to 64. */
function maxTasksFor(ramMb: number): number {
  return clamp(Math.floor(ramMb / 64), 4, 64)
}

function outboxBytesFor(spec: ProfileSpec, storageBytes: number | undefined): number {
  if (storageBytes === undefined) return spec.outboxMaxBytes
  return clamp(Math.floor(storageBytes * OUTBOX_STORAGE_SHARE), OUTBOX_FLOOR_BYTES, spec.outboxMaxBytes)
}

const STANDARD_SIZES_MB = [256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]

/**
 * MemTotal is below the size printed on the board (kernel, GPU split): a Pi Zero 2 W shows about
 * 430 MB. The nominal size is the smallest standard size that holds it.
 */
export function nominalMemoryMb(memTotalMb: number): number {
  return STANDARD_SIZES_MB.find((size) => memTotalMb <= size) ?? Math.ceil(memTotalMb / 1024) * 1024
}

/** `512mb`, `4gb`: lower case, because manifest `requires` tags are (a-z 0-9 . _ : = -). */
export function memoryTag(nominalMb: number): string {
  return nominalMb < 1024 ? `memory=${nominalMb}mb` : `memory=${nominalMb / 1024}gb`
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n))
}
