import { describe, expect, it } from 'vitest'
import { CoordinatorError } from '../../../coordinator/core/errors.js'
import {
  TaskError, configInvalid, describeError, manifestInvalid, notInvokable, payloadTooLarge, permissionDenied, queueFull, taskBroken, taskNotFound, taskStopped,
} from '../../../coordinator/tasks/errors.js'

describe('task error catalogue', () => {
  it.each([
    [taskNotFound('a'), 'COORD_TASK_NOT_FOUND', 'task "a" is not installed', false],
    [taskStopped('a'), 'COORD_TASK_STOPPED', 'task "a" is stopped', false],
    [queueFull('a', 5), 'COORD_TASK_QUEUE_FULL', 'task "a" queue is full (5 calls waiting); call refused', true],
    [taskBroken('a', 'COORD_SANDBOX_THREW: x'), 'COORD_TASK_BROKEN', 'task "a" is broken after repeated failures: COORD_SANDBOX_THREW: x; start it again once fixed', false],
    [taskBroken('a', null), 'COORD_TASK_BROKEN', 'task "a" is broken after repeated failures; start it again once fixed', false],
    [configInvalid('a', ['config.x: bad', 'config.y: is required']), 'COORD_TASK_CONFIG_INVALID', 'task "a" configuration is invalid: config.x: bad; config.y: is required', false],
    [manifestInvalid('a', 'permissions: bad filter'), 'COORD_TASK_MANIFEST_INVALID', 'task "a" manifest cannot be applied: permissions: bad filter', false],
    [notInvokable('a'), 'COORD_TASK_NOT_INVOKABLE', 'task "a" declares no invoke trigger', false],
    [permissionDenied('a', 'publish to', 't/x', 'no grant'), 'COORD_TASK_PERMISSION_DENIED', 'task "a" may not publish to "t/x": no grant', false],
    [payloadTooLarge('publish payload', 10, 5), 'COORD_TASK_PAYLOAD_TOO_LARGE', 'publish payload is 10 bytes; the limit is 5 bytes', false],
  ])('%#: %s', (err, code, message, retryable) => {
    expect(err).toBeInstanceOf(TaskError)
    expect(err).toBeInstanceOf(CoordinatorError)
    expect(err.toJSON()).toEqual({ name: 'TaskError', code, message, retryable })
  })

  it('describes errors as CODE: message when they carry a code', () => {
    expect(describeError(taskStopped('a'))).toBe('COORD_TASK_STOPPED: task "a" is stopped')
    expect(describeError(new Error('plain'))).toBe('plain')
    expect(describeError('text')).toBe('text')
  })
})
