import { mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../../coordinator/core/log.js'
import { GpioAdapter, GpiodBackend, gpiodCommands, parseGpiodVersion, type GpioLine } from '../../../hardware/index.js'
import { tempDir } from '../../helpers/tmp.js'
import { fakeGpiod } from './fake-gpiod.js'
import { shadowHarness, until } from './helpers.js'

describe('gpiod tools: versions and command lines', () => {
  it('tells v1 from v2 by `gpioset --version`', () => {
    expect(parseGpiodVersion('gpioset (libgpiod) v1.6.3\nCopyright (C) 2017-2018 Bartosz Golaszewski\n')).toBe(1)
    expect(parseGpiodVersion('gpioset (libgpiod) v2.1\n')).toBe(2)
    expect(() => parseGpiodVersion('gpioset 0.1')).toThrow(/unsupported libgpiod tools version/)
  })

  it('builds each command in the syntax of its version', () => {
    const v1 = gpiodCommands(1)
    expect(v1.hold('gpiochip0', 17, true)).toEqual({ tool: 'gpioset', args: ['--mode=signal', 'gpiochip0', '17=1'] })
    expect(v1.get('gpiochip0', 5)).toEqual({ tool: 'gpioget', args: ['gpiochip0', '5'] })
    expect(v1.monitor('gpiochip0', 5)).toEqual({ tool: 'gpiomon', args: ['--line-buffered', '--format=%e', 'gpiochip0', '5'] })
    const v2 = gpiodCommands(2)
    expect(v2.hold('gpiochip4', 17, false)).toEqual({ tool: 'gpioset', args: ['-c', 'gpiochip4', '17=0'] })
    expect(v2.get('gpiochip0', 5)).toEqual({ tool: 'gpioget', args: ['--numeric', '-c', 'gpiochip0', '5'] })
    expect(v2.monitor('gpiochip0', 5)).toEqual({ tool: 'gpiomon', args: ['--format=%e', '-c', 'gpiochip0', '5'] })
  })
})

describe('GpiodBackend driving (fake) gpiod tools', () => {
  const tmp = tempDir('edge-gpiod-')
  afterAll(() => tmp.remove())
  const open: GpioLine[] = []
  afterEach(async () => {
    for (const line of open.splice(0)) await line.close()
  })
  const setup = (version: '1.6.3' | '2.1'): { dir: string; fake: ReturnType<typeof fakeGpiod>; backend: GpiodBackend } => {
    const dir = mkdtempSync(join(tmp.dir, 'tools-'))
    return { dir, fake: fakeGpiod(dir, version), backend: new GpiodBackend({ toolDir: dir, settleMs: 50 }) }
  }

  it('holds an output with a gpioset process and replaces it to change the level (v1)', async () => {
    const { fake, backend } = setup('1.6.3')
    const line = await backend.open({ chip: 'gpiochip0', line: 17, direction: 'out', initial: true })
    open.push(line)
    const first = fake.holderPid()
    await line.write(true)
    await line.write(false)
    expect(fake.calls()).toEqual(['gpioset --mode=signal gpiochip0 17=1', 'gpioset --mode=signal gpiochip0 17=0'])
    expect(() => process.kill(first, 0)).toThrow()
    expect(await line.read()).toBe(false)
    await line.close()
    expect(() => process.kill(fake.holderPid(), 0)).toThrow()
  })

  it('uses the v2 syntax with v2 tools', async () => {
    const { fake, backend } = setup('2.1')
    open.push(await backend.open({ chip: 'gpiochip0', line: 17, direction: 'out', initial: false }))
    expect(fake.calls()).toEqual(['gpioset -c gpiochip0 17=0'])
  })

  it('reads an input, then follows its edges', async () => {
    const { fake, backend } = setup('2.1')
    fake.setLevel(1)
    const line = await backend.open({ chip: 'gpiochip0', line: 5, direction: 'in', initial: false })
    open.push(line)
    const edges: boolean[] = []
    line.onEdge((level) => edges.push(level))
    expect(await line.read()).toBe(true)
    await until(() => fake.calls().some((c) => c.startsWith('gpiomon')), 'gpiomon started')
    fake.edge('2')
    fake.edge('1')
    await until(() => edges.length === 2, 'two edges')
    expect(edges).toEqual([false, true])
    expect(fake.calls()).toEqual(['gpioget --numeric -c gpiochip0 5', 'gpiomon --format=%e -c gpiochip0 5'])
  })

  it('rejects a line held elsewhere as busy, with the tool\'s own words', async () => {
    const { fake, backend } = setup('1.6.3')
    fake.refuse()
    await expect(backend.open({ chip: 'gpiochip0', line: 17, direction: 'out', initial: false }))
      .rejects.toMatchObject({ code: 'COORD_HARDWARE_BUSY', message: expect.stringMatching(/Device or resource busy/) })
  })

  it('names the missing package when the tools are not installed', async () => {
    const backend = new GpiodBackend({ toolDir: mkdtempSync(join(tmp.dir, 'empty-')) })
    await expect(backend.open({ chip: 'gpiochip0', line: 17, direction: 'out', initial: false }))
      .rejects.toMatchObject({ code: 'COORD_HARDWARE_TOOL_MISSING', message: expect.stringMatching(/'gpioset' not found: .*apt-get install gpiod/) })
  })

  it('says so when the process holding an output dies', async () => {
    const { fake, backend } = setup('1.6.3')
    const line = await backend.open({ chip: 'gpiochip0', line: 17, direction: 'out', initial: false })
    open.push(line)
    const lost = new Promise<Error>((resolve) => line.onLost(resolve))
    process.kill(fake.holderPid(), 'SIGKILL')
    expect((await lost).message).toMatch(/gpioset holding the line exited \(SIGKILL\)/)
  })

  it('drives a relay from its shadow through the real backend', async () => {
    const { fake, backend } = setup('1.6.3')
    const h = await shadowHarness()
    const relay = new GpioAdapter({ thing: 'relay-1', chip: 'gpiochip0', line: 17, direction: 'out', activeLow: false, initial: false, backend, shadows: h.shadows, log: silentLogger() })
    try {
      await relay.start(() => {})
      await h.update('relay-1', { desired: { on: true } })
      await until(async () => (await h.state('relay-1'))?.reported?.['on'] === true, 'relay reported on')
      expect(fake.calls()).toEqual(['gpioset --mode=signal gpiochip0 17=0', 'gpioset --mode=signal gpiochip0 17=1'])
    } finally {
      await relay.stop()
      await h.close()
    }
  })
})
