import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

/** Files under a fake `/` (proc, sys, dev); device nodes are stood in for by empty files. */
export function writeFakeRoot(root: string, files: Record<string, string>, devices: string[] = []): string {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), text)
  }
  mkdirSync(join(root, 'dev'), { recursive: true })
  for (const name of devices) writeFileSync(join(root, 'dev', name), '')
  return root
}

const meminfo = (kb: number): string => `MemTotal:       ${kb} kB\nMemFree:          123456 kB\nMemAvailable:     234567 kB\n`
const ARMV7 = 'processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nBogoMIPS\t: 38.40\n'
const A72 = 'processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n'

/** What each supported board exposes, as read on real boards (device-tree model is NUL-terminated). */
export const BOARDS = {
  'pi-zero-2w': {
    arch: 'arm64',
    files: { 'proc/device-tree/model': 'Raspberry Pi Zero 2 W Rev 1.0\0', 'proc/meminfo': meminfo(437_344), 'proc/cpuinfo': A72 },
    devices: ['gpiochip0', 'gpiochip1', 'i2c-1', 'serial0', 'ttyS0', 'ttyAMA0'],
  },
  pi3: {
    arch: 'arm',
    files: { 'proc/device-tree/model': 'Raspberry Pi 3 Model B Plus Rev 1.3\0', 'proc/meminfo': meminfo(949_448), 'proc/cpuinfo': ARMV7 },
    devices: ['gpiochip0', 'gpiochip1', 'ttyS0'],
  },
  pi4: {
    arch: 'arm64',
    files: {
      'proc/device-tree/model': 'Raspberry Pi 4 Model B Rev 1.4\0', 'proc/meminfo': meminfo(3_884_844), 'proc/cpuinfo': A72,
      'sys/class/video4linux/video0/name': 'unicam-image\n',
    },
    devices: ['gpiochip0', 'gpiochip1', 'i2c-1', 'i2c-20', 'ttyUSB0', 'video10', 'video11'],
  },
  pi5: {
    arch: 'arm64',
    files: { 'sys/firmware/devicetree/base/model': 'Raspberry Pi 5 Model B Rev 1.0\0', 'proc/meminfo': meminfo(8_245_968), 'proc/cpuinfo': A72 },
    devices: ['gpiochip0', 'gpiochip4', 'ttyAMA10', 'video19', 'video20'],
  },
  generic: {
    arch: 'x64',
    files: { 'proc/meminfo': meminfo(16_303_540), 'proc/cpuinfo': 'processor\t: 0\nmodel name\t: Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz\n' },
    devices: ['ttyS0', 'ttyS1', 'ttyS2', 'ttyS3', 'video0'],
  },
} as const
