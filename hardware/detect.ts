/**
 * Board detection from the files Linux exposes: the device-tree model (Raspberry Pi kernels), the
 * `Model` line of /proc/cpuinfo (older Pi kernels), MemTotal from /proc/meminfo, and which device
 * nodes exist under /dev. Every path is read below `root`, so tests point it at a fake tree.
 */
import { arch as osArch } from 'node:os'
import { readdirSync, readFileSync, statfsSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { memoryTag, nominalMemoryMb, profileLimits, type ProfileLimits, type ProfileName } from './profiles.js'

export interface DetectOptions {
  /** Where /proc, /sys and /dev are read from; '/' on a real board. */
  root?: string
  /** Applied instead of the detected profile; 'auto' (the default) uses the detected one. */
  profile?: ProfileName | 'auto'
  /** `os.arch()` unless given (tests). */
  arch?: string
}

export interface Board {
  /** The profile whose limits apply. */
  profile: ProfileName
  /** The profile the hardware looks like, whatever was configured. */
  detectedProfile: ProfileName
  /** Device-tree or cpuinfo model string; null on boards without one (most PCs). */
  model: string | null
  /** Nominal installed RAM (512, 1024, ...), null when /proc/meminfo is unreadable. */
  memoryMb: number | null
  arch: string
  /** What the coordinator advertises: board=, arch=, memory= and present hardware (gpio, i2c, serial, camera). */
  tags: string[]
}

export function detectBoard(opts: DetectOptions = {}): Board {
  const root = opts.root ?? '/'
  const model = readModel(root)
  const detectedProfile = profileOfModel(model)
  const memTotal = readMemTotalMb(root)
  const memoryMb = memTotal === null ? null : nominalMemoryMb(memTotal)
  const arch = archTag(opts.arch ?? osArch(), root)
  const profile = opts.profile === undefined || opts.profile === 'auto' ? detectedProfile : opts.profile
  const tags = [`board=${detectedProfile}`, `arch=${arch}`, ...(memoryMb === null ? [] : [memoryTag(memoryMb)]), ...hardwareTags(root)]
  return { profile, detectedProfile, model, memoryMb, arch, tags }
}

/**
 * The limits of the board's profile. The board's measured RAM counts only when the applied profile
 * is its own: a profile forced onto other hardware (a Pi Zero's limits tried on a PC) gets that
 * profile's own RAM.
 */
export function boardLimits(board: Board, storageBytes?: number): ProfileLimits {
  const ramMb = board.profile === board.detectedProfile ? board.memoryMb ?? undefined : undefined
  return profileLimits(board.profile, { ramMb, storageBytes })
}

/** Bytes of the file system that holds `dir` (or its nearest existing parent: the data dir may not exist yet). */
export function storageBytesAt(dir: string): number | undefined {
  let at = dir
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at)
  try {
    const s = statfsSync(at)
    return s.blocks * s.bsize
  } catch {
    return undefined
  }
}

export function profileOfModel(model: string | null): ProfileName {
  if (model === null) return 'generic'
  if (/^Raspberry Pi Zero 2/.test(model)) return 'pi-zero-2w'
  if (/^Raspberry Pi (3|Compute Module 3)/.test(model)) return 'pi3'
  if (/^Raspberry Pi (4|400|Compute Module 4)/.test(model)) return 'pi4'
  if (/^Raspberry Pi (5|500|Compute Module 5)/.test(model)) return 'pi5'
  // Pi 1, Pi 2, Zero and Zero W run armv6/early armv7 builds Node no longer ships (§J39).
  return 'generic'
}

function readModel(root: string): string | null {
  for (const path of ['proc/device-tree/model', 'sys/firmware/devicetree/base/model']) {
    // The device-tree property is a NUL-terminated string.
    const text = readText(join(root, path))?.replace(/\0+$/, '').trim()
    if (text) return text
  }
  const cpuinfo = readText(join(root, 'proc/cpuinfo'))
  return /^Model\s*:\s*(.+)$/m.exec(cpuinfo ?? '')?.[1]?.trim() ?? null
}

function readMemTotalMb(root: string): number | null {
  const kb = /^MemTotal:\s*(\d+)\s*kB/m.exec(readText(join(root, 'proc/meminfo')) ?? '')?.[1]
  return kb === undefined ? null : Math.round(Number(kb) / 1024)
}

/** Node's `arm` covers armv6 and armv7; cpuinfo tells them apart (an armv6 board has no usable Node 20+). */
function archTag(nodeArch: string, root: string): string {
  if (nodeArch !== 'arm') return nodeArch
  return /^model name\s*:.*\(v6l\)/m.test(readText(join(root, 'proc/cpuinfo')) ?? '') ? 'armv6' : 'armv7'
}

/**
 * Hardware present on the board. Legacy PC serial ports (ttyS*) exist whether or not anything is
 * wired, so only the Pi UART alias and USB serial adapters count. The Pi's CSI receivers (unicam,
 * rp1-cfe) register video nodes only when the firmware found a camera.
 */
function hardwareTags(root: string): string[] {
  const dev = listDir(join(root, 'dev'))
  const has = (re: RegExp): boolean => dev.some((name) => re.test(name))
  const tags: string[] = []
  if (has(/^gpiochip\d+$/)) tags.push('gpio')
  if (has(/^i2c-\d+$/)) tags.push('i2c')
  if (has(/^(serial\d|ttyAMA\d+|ttyUSB\d+|ttyACM\d+)$/)) tags.push('serial')
  if (has(/^video0$/) || hasPiCamera(root)) tags.push('camera')
  return tags
}

function hasPiCamera(root: string): boolean {
  const dir = join(root, 'sys/class/video4linux')
  return listDir(dir).some((node) => /unicam|rp1-cfe/.test(readText(join(dir, node, 'name')) ?? ''))
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path)
  } catch {
    return []
  }
}

/** The board's limits as config defaults (loadConfig's `boardDefaults`: they sit under the config file). */
export function boardConfigDefaults(selection: { profile: ProfileName | 'auto'; root: string; dataDir: string }): Record<string, unknown> {
  return { ...boardLimits(detectBoard({ root: selection.root, profile: selection.profile }), storageBytesAt(selection.dataDir)) }
}
