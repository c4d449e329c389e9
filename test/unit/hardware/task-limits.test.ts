import { afterEach, describe, expect, it } from 'vitest'
import { bundle, echoBody, manifest, taskHarness, type TaskHarness } from '../../helpers/tasks.js'

describe("the board's task limits (tasks.maxTasks, tasks.maxMemoryMb)", () => {
  let h: TaskHarness | undefined
  afterEach(async () => {
    await h?.close()
    h = undefined
  })

  it('refuses a task beyond maxTasks but still replaces installed ones', async () => {
    h = await taskHarness({ limits: { maxTasks: 2, maxMemoryMb: 64 } })
    await h.service.install(bundle(manifest('one'), echoBody))
    await h.service.install(bundle(manifest('two'), echoBody))
    await expect(h.service.install(bundle(manifest('three'), echoBody))).rejects.toMatchObject({
      code: 'COORD_TASK_LIMIT_REACHED', message: expect.stringMatching(/2 tasks are installed, the most this coordinator runs \(tasks\.maxTasks\)/),
    })
    const upgraded = await h.service.install(bundle(manifest('two', { version: '1.1.0' }), echoBody))
    expect(upgraded.version).toBe('1.1.0')
    await h.service.remove('one')
    await h.service.install(bundle(manifest('three'), echoBody))
  })

  it('refuses a manifest asking more isolate memory than the board allows', async () => {
    h = await taskHarness({ limits: { maxTasks: 8, maxMemoryMb: 64 } })
    await expect(h.service.install(bundle(manifest('big', { limits: { memoryMb: 128 } }), echoBody))).rejects.toMatchObject({
      code: 'COORD_TASK_MANIFEST_INVALID', message: expect.stringMatching(/limits\.memoryMb is 128 MB; this coordinator allows at most 64 MB per task \(tasks\.maxMemoryMb\)/),
    })
    await h.service.install(bundle(manifest('fits', { limits: { memoryMb: 64 } }), echoBody))
  })
})
