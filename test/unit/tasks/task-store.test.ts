import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openDatabase, type Db } from '../../../coordinator/store/index.js'
import { KV_LIMITS, TaskStore, type TaskRow } from '../../../coordinator/tasks/task-store.js'
import { tempDir } from '../../helpers/tmp.js'

const row = (name: string, more: Partial<TaskRow> = {}): TaskRow => ({
  name, digest: 'a'.repeat(64), signer: null, manifest: '{"name":"x"}', config: { level: 2 }, desired: 'running', installedAt: 1000, ...more,
})

describe('TaskStore', () => {
  let tmp: ReturnType<typeof tempDir>
  let db: Db
  let store: TaskStore
  beforeEach(() => {
    tmp = tempDir()
    db = openDatabase(join(tmp.dir, 'c.db'))
    store = new TaskStore(db)
  })
  afterEach(() => {
    db.close()
    tmp.remove()
  })

  it('stores, replaces and lists task rows by name', () => {
    store.put(row('b'))
    store.put(row('a', { signer: 'k1' }))
    store.put(row('b', { digest: 'b'.repeat(64), desired: 'stopped', config: {} }))
    expect(store.list().map((r) => [r.name, r.digest[0], r.desired, r.signer])).toEqual([['a', 'a', 'running', 'k1'], ['b', 'b', 'stopped', null]])
    expect(store.get('a')).toEqual(row('a', { signer: 'k1' }))
    expect(store.get('zzz')).toBeUndefined()
  })

  it('switches the desired state', () => {
    store.put(row('a'))
    store.setDesired('a', 'stopped')
    expect(store.get('a')?.desired).toBe('stopped')
  })

  it('keeps values as CBOR: objects, bytes, numbers, strings, null', () => {
    const values: unknown[] = [{ a: [1, 'two', { three: true }] }, 42.5, 'text', null]
    values.forEach((v, i) => store.kvSet('t', `k${i}`, v))
    expect(values.map((_, i) => store.kvGet('t', `k${i}`))).toEqual(values)
    store.kvSet('t', 'bytes', new Uint8Array([1, 2, 3]))
    const bytes = store.kvGet('t', 'bytes')
    expect(bytes).toBeInstanceOf(Uint8Array)
    expect([...(bytes as Uint8Array)]).toEqual([1, 2, 3])
    expect(store.kvGet('t', 'missing')).toBeUndefined()
    expect(store.kvGet('other', 'k0')).toBeUndefined()
  })

  it('overwrites and deletes keys', () => {
    store.kvSet('t', 'k', 1)
    store.kvSet('t', 'k', 2)
    expect(store.kvGet('t', 'k')).toBe(2)
    expect(store.kvDelete('t', 'k')).toBe(true)
    expect(store.kvDelete('t', 'k')).toBe(false)
  })

  it('lists keys by prefix in order, per task', () => {
    for (const k of ['b/2', 'a', 'b/1', 'c', 'b/10']) store.kvSet('t', k, 0)
    store.kvSet('u', 'b/3', 0)
    expect(store.kvList('t', 'b/')).toEqual(['b/1', 'b/10', 'b/2'])
    expect(store.kvList('t', '')).toEqual(['a', 'b/1', 'b/10', 'b/2', 'c'])
  })

  it('refuses bad keys and oversized values', () => {
    expect(() => store.kvSet('t', '', 1)).toThrow(expect.objectContaining({ code: 'COORD_INVALID_ARG' }))
    expect(() => store.kvGet('t', 'k'.repeat(KV_LIMITS.maxKeyLength + 1))).toThrow(expect.objectContaining({ code: 'COORD_INVALID_ARG' }))
    expect(() => store.kvSet('t', 'big', 'x'.repeat(KV_LIMITS.maxValueBytes))).toThrow(expect.objectContaining({ code: 'COORD_TASK_PAYLOAD_TOO_LARGE' }))
  })

  it('refuses new keys once a task holds KV_LIMITS.maxKeys, but still updates existing ones', () => {
    db.transaction(() => {
      for (let i = 0; i < KV_LIMITS.maxKeys; i++) store.kvSet('t', `k${i}`, i)
    })()
    expect(() => store.kvSet('t', 'one-more', 1)).toThrow(/task state is full/)
    store.kvSet('t', 'k0', 'updated')
    expect(store.kvGet('t', 'k0')).toBe('updated')
  })

  it('removes a task row together with its state', () => {
    store.put(row('a'))
    store.kvSet('a', 'k', 1)
    store.kvSet('b', 'k', 1)
    store.remove('a')
    expect(store.get('a')).toBeUndefined()
    expect(store.kvGet('a', 'k')).toBeUndefined()
    expect(store.kvGet('b', 'k')).toBe(1)
  })

  it('keeps rows and state across reopening the database', () => {
    store.put(row('a'))
    store.kvSet('a', 'k', { n: 1 })
    db.close()
    db = openDatabase(join(tmp.dir, 'c.db'))
    store = new TaskStore(db)
    expect(store.get('a')).toEqual(row('a'))
    expect(store.kvGet('a', 'k')).toEqual({ n: 1 })
  })
})
