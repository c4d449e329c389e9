import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { deployHarness, type DeployHarness } from './deploy-harness.js'

const north = { group: 'north' }

describe('deployment orchestrator (real SQLite, registry and catalog)', () => {
  let h: DeployHarness

  beforeEach(async () => {
    h = await deployHarness()
    for (const name of ['c3', 'c1', 'c2']) h.coordinator(name)
    h.registry.createGroup('north', { kind: 'dynamic', query: 'attributes.site = "north"' })
  })
  afterEach(() => h.close())

  it('should start coordinators in name order, never more than maxConcurrent at once, and succeed when all did', () => {
    const d = h.create({ target: north, rollout: { maxConcurrent: 1 } })
    expect(h.writes.map((w) => w.coordinator)).toEqual(['c1'])
    expect(h.last('c1')).toMatchObject({ deploymentId: d.deployment.id, revision: 1, bundleBaseUrl: 'http://cloud.test:8090/v1/bundles/by-digest' })
    expect(h.last('c1').tasks).toEqual([expect.objectContaining({ name: 'hello', version: '1.0.0', config: {} })])
    h.report('c1', 'applying')
    expect(h.writes).toHaveLength(1)
    h.report('c1', 'succeeded')
    h.report('c2', 'succeeded')
    expect(h.states(d.deployment.id)).toEqual({ c1: 'succeeded', c2: 'succeeded', c3: 'in-progress' })
    h.report('c3', 'succeeded')
    expect(h.writes.map((w) => w.coordinator)).toEqual(['c1', 'c2', 'c3'])
    expect(h.service.get(d.deployment.id).deployment.status).toBe('succeeded')
  })

  it('should fill free slots up to maxConcurrent as coordinators finish', () => {
    h.create({ target: north, rollout: { maxConcurrent: 2 } })
    expect(h.writes.map((w) => w.coordinator)).toEqual(['c1', 'c2'])
    h.report('c2', 'succeeded')
    expect(h.writes.map((w) => w.coordinator)).toEqual(['c1', 'c2', 'c3'])
  })

  it('should abort at the failure count, start nobody new, and roll a first deployment back to an empty task set', () => {
    const d = h.create({ target: north, rollout: { maxConcurrent: 1, failureThreshold: { count: 1 }, onFailure: 'rollback' } })
    h.report('c1', 'succeeded')
    h.report('c2', 'rolled-back', 'task "hello": COORD_SANDBOX_LOAD: boom')
    const id = d.deployment.id
    expect(h.states(id)).toEqual({ c1: 'rolling-back', c2: 'failed', c3: 'skipped' })
    expect(h.writes.filter((w) => w.coordinator === 'c3')).toEqual([])
    expect(h.last('c1')).toMatchObject({ deploymentId: id, revision: 2, tasks: [] })
    expect(h.service.get(id).deployment.status).toBe('rolling-back')
    h.report('c1', 'succeeded')
    expect(h.states(id)).toMatchObject({ c1: 'rolled-back' })
    expect(h.service.get(id).deployment).toMatchObject({ status: 'rolled-back', reason: 'failure threshold reached; rolling back' })
    expect(h.service.get(id).targets.find((t) => t.coordinator === 'c2')?.error).toBe('rolled-back: task "hello": COORD_SANDBOX_LOAD: boom')
  })

  it('should roll back to the set the coordinator last confirmed, i.e. the previous deployment', () => {
    h.create({ target: { thing: 'c1' } })
    h.report('c1', 'succeeded')
    const first = h.last('c1').tasks
    const d = h.create({ target: north, bundles: [{ name: 'hello', version: '2.0.0' }], rollout: { maxConcurrent: 1 } })
    h.report('c1', 'succeeded')
    h.report('c2', 'failed', 'COORD_BUNDLE_UNTRUSTED: not trusted here')
    expect(h.last('c1')).toMatchObject({ deploymentId: d.deployment.id, tasks: first })
    expect(h.last('c1').revision).toBe(3)
  })

  it('should count a percentage against the eligible coordinators', () => {
    h.coordinator('c4')
    const d = h.create({ target: north, rollout: { maxConcurrent: 4, failureThreshold: { percent: 50 }, onFailure: 'leave' } })
    h.report('c1', 'failed', 'x')
    expect(h.service.get(d.deployment.id).deployment.status).toBe('in-progress')
    h.report('c2', 'failed', 'x')
    expect(h.service.get(d.deployment.id).deployment).toMatchObject({ status: 'aborted', reason: 'failure threshold reached' })
    // In-flight coordinators still report truthfully under an aborted deployment; nothing is rolled back.
    h.report('c3', 'succeeded')
    expect(h.states(d.deployment.id)).toEqual({ c1: 'failed', c2: 'failed', c3: 'succeeded', c4: 'in-progress' })
    expect(h.writes).toHaveLength(4)
  })

  it('should time out a silent coordinator and count it as a failure', () => {
    const d = h.create({ target: north, rollout: { maxConcurrent: 1, perCoordinatorTimeoutMs: 60_000, failureThreshold: { count: 2 } } })
    h.clock.t += 61_000
    h.service.tick()
    const c1 = h.service.get(d.deployment.id).targets.find((t) => t.coordinator === 'c1')
    expect(c1).toMatchObject({ state: 'timed-out', error: 'no final report within 60 s (last status: none)' })
    expect(h.writes.map((w) => w.coordinator)).toEqual(['c1', 'c2'])
  })

  it('should supersede an older deployment to the same target mid-flight and take its coordinators over', () => {
    const d1 = h.create({ target: north, rollout: { maxConcurrent: 1 } })
    h.report('c1', 'applying')
    const d2 = h.create({ target: north, bundles: [{ name: 'hello', version: '2.0.0' }], rollout: { maxConcurrent: 3 } })
    expect(h.service.get(d1.deployment.id).deployment).toMatchObject({ status: 'superseded', reason: `superseded by ${d2.deployment.id}` })
    expect(h.states(d1.deployment.id)).toEqual({ c1: 'superseded', c2: 'superseded', c3: 'superseded' })
    expect(h.last('c1')).toMatchObject({ deploymentId: d2.deployment.id, revision: 2 })
    // A late report about the superseded revision changes nothing.
    h.service.handleReport('c1', { deploymentId: d1.deployment.id, revision: 1, status: 'succeeded', tasks: [], at: new Date().toISOString() })
    expect(h.states(d2.deployment.id)).toEqual({ c1: 'in-progress', c2: 'in-progress', c3: 'in-progress' })
  })

  it('should cancel: pending coordinators are skipped, moved ones stay unless rollback is asked for', () => {
    const d = h.create({ target: north, rollout: { maxConcurrent: 1 } })
    h.report('c1', 'succeeded')
    const cancelled = h.service.cancel(d.deployment.id, false)
    expect(cancelled.deployment.status).toBe('cancelled')
    expect(h.states(d.deployment.id)).toEqual({ c1: 'succeeded', c2: 'in-progress', c3: 'skipped' })
    const e = h.create({ target: { thing: 'c3' } })
    h.service.cancel(e.deployment.id, true)
    expect(h.last('c3')).toMatchObject({ deploymentId: e.deployment.id, revision: 2, tasks: [] })
    expect(() => h.service.cancel(d.deployment.id, false)).toThrow(/is cancelled/)
  })

  it('should report coordinators lacking a capability as not eligible, with the tags, without counting them as failures', () => {
    h.registry.patchThing('c2', { addTags: ['camera'] })
    const d = h.create({ target: north, bundles: [{ name: 'cam', version: '1.0.0' }], rollout: { maxConcurrent: 3 } })
    expect(h.writes.map((w) => w.coordinator)).toEqual(['c2'])
    const c1 = h.service.get(d.deployment.id).targets.find((t) => t.coordinator === 'c1')
    expect(c1).toMatchObject({ state: 'not-eligible', missing: ['camera'], error: 'lacks capability tag(s) camera' })
    h.report('c2', 'succeeded')
    expect(h.service.get(d.deployment.id).deployment.status).toBe('succeeded')
  })

  it('should refuse deployments outside a group snapshot, also to a thing in the group, until the snapshot expires', () => {
    h.service.putSnapshot('north', ['hello@1.0.0'], h.clock.t + 3_600_000)
    const outside = { bundles: [{ name: 'hello', version: '2.0.0' }] }
    expect(() => h.create({ target: north, ...outside })).toThrow(expect.objectContaining({ code: 'COORD_DEPLOY_NOT_APPROVED', message: expect.stringMatching(/group "north" is frozen .* not approved: hello@2.0.0/) }))
    expect(() => h.create({ target: { thing: 'c2' }, ...outside })).toThrow(/coordinator "c2" is in group "north"/)
    expect(h.create({ target: north }).deployment.status).toBe('in-progress')
    h.clock.t += 3_600_001
    expect(h.create({ target: { thing: 'c2' }, ...outside }).deployment.status).toBe('in-progress')
  })

  it('should give a coordinator that joins a dynamic group later the group\'s current deployment', () => {
    const d = h.create({ target: north, rollout: { maxConcurrent: 3 } })
    for (const c of ['c1', 'c2', 'c3']) h.report(c, 'succeeded')
    expect(h.service.get(d.deployment.id).deployment.status).toBe('succeeded')
    h.coordinator('c9', { site: 'south' })
    h.registry.patchThing('c9', { attributes: { site: 'north' } })
    expect(h.last('c9')).toMatchObject({ deploymentId: d.deployment.id, revision: 1 })
    expect(h.service.get(d.deployment.id).deployment.status).toBe('in-progress')
    h.report('c9', 'succeeded')
    expect(h.service.get(d.deployment.id).deployment.status).toBe('succeeded')
    expect(h.states(d.deployment.id)['c9']).toBe('succeeded')
  })

  it('should continue a rollout after a restart, from the state in SQLite', async () => {
    const d = h.create({ target: north, rollout: { maxConcurrent: 1 } })
    h.report('c1', 'succeeded')
    await h.restart()
    expect(h.states(d.deployment.id)).toEqual({ c1: 'succeeded', c2: 'in-progress', c3: 'pending' })
    h.report('c2', 'succeeded')
    expect(h.last('c3')).toMatchObject({ deploymentId: d.deployment.id })
  })

  it('should ignore a progress report replayed after the final one', () => {
    const d = h.create({ target: { thing: 'c1' } })
    h.report('c1', 'succeeded')
    h.report('c1', 'applying')
    expect(h.service.get(d.deployment.id).targets[0]?.report?.status).toBe('succeeded')
  })
})
