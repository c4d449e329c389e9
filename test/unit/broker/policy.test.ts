import { describe, it, expect } from 'vitest'
import {
  DEFAULT_DEVICE_POLICY,
  DEFAULT_RESERVED_PREFIXES,
  PolicyEngine,
  classifyShadowTopic,
  type Action,
  type Decision,
  type Policy,
  type Principal,
} from '../../../coordinator/broker/policy.js'
import { hasCode } from '../../../coordinator/core/errors.js'

const device = (thingName: string, attributes: Record<string, string> = {}, policies: string[] = []): Principal => ({
  thingName,
  attributes,
  policies,
})

/** A one-statement policy. */
const policyOf = (name: string, effect: 'allow' | 'deny', actions: Action[], resources: string[]): Policy => ({
  name,
  statements: [{ effect, actions, resources }],
})

const me = device('me')
const engine = new PolicyEngine({ policies: [] })

const reasonOf = (decision: Decision): string => (decision.allowed ? '' : decision.reason)

const allowAll: Policy = {
  name: 'allow-all',
  statements: [{ effect: 'allow', actions: ['publish', 'subscribe'], resources: ['#', '$SYS/#', '$coord/#', '$aws/#'] }],
}

describe('DEFAULT_DEVICE_POLICY', () => {
  it('grants publish and subscribe on the own shadow tree and the own things/ namespace', () => {
    expect(DEFAULT_DEVICE_POLICY.statements).toEqual([
      {
        effect: 'allow',
        actions: ['publish', 'subscribe'],
        resources: ['$aws/things/${thingName}/shadow/#', 'things/${thingName}/#'],
      },
    ])
  })

  it('is frozen, so no caller can widen it for every engine', () => {
    expect(Object.isFrozen(DEFAULT_DEVICE_POLICY)).toBe(true)
    expect(Object.isFrozen(DEFAULT_DEVICE_POLICY.statements[0]?.resources)).toBe(true)
  })

  describe('publish', () => {
    it.each([
      '$aws/things/me/shadow/update',
      '$aws/things/me/shadow/get',
      '$aws/things/me/shadow/delete',
      '$aws/things/me/shadow/name/config/update',
      '$aws/things/me/shadow/name/config/get',
      'things/me/telemetry',
      'things/me',
      'things/me/a/b/c',
    ])('allows the device to publish to its own %j', (topic) => {
      expect(engine.authorizePublish(me, topic)).toEqual({ allowed: true })
    })

    it.each([
      '$aws/things/other/shadow/update',
      '$aws/things/other/shadow/name/config/update',
      'things/other/telemetry',
      'things/meow/telemetry',
      'things',
      'telemetry',
    ])('denies publishing to %j with a reason naming the action and topic', (topic) => {
      const decision = engine.authorizePublish(me, topic)
      expect(decision.allowed).toBe(false)
      expect(reasonOf(decision)).toContain('publish')
      expect(reasonOf(decision)).toContain(JSON.stringify(topic))
    })
  })

  describe('subscribe', () => {
    it.each([
      '$aws/things/me/shadow/#',
      '$aws/things/me/shadow/update/accepted',
      '$aws/things/me/shadow/update/delta',
      '$aws/things/me/shadow/name/+/update/documents',
      '$aws/things/me/shadow/+/rejected',
      'things/me/#',
      'things/me/+/status',
      'things/me',
    ])('allows subscribing to %j, which stays inside its own grant', (filter) => {
      expect(engine.authorizeSubscribe(me, filter)).toEqual({ allowed: true })
    })

    it.each([
      ['$aws/things/+/shadow/update/accepted', "every thing's shadow replies"],
      ['$aws/things/other/shadow/#', "another thing's shadow"],
      ['$aws/#', 'the whole $aws tree'],
      ['#', 'everything'],
      ['+/me/#', 'a wildcard sibling namespace'],
      ['things/+/telemetry', "every thing's telemetry"],
      ['things/#', 'every thing'],
      ['$SYS/#', 'broker statistics'],
    ])('denies subscribing to %j (%s)', (filter) => {
      const decision = engine.authorizeSubscribe(me, filter)
      expect(decision.allowed).toBe(false)
      expect(reasonOf(decision)).toContain('subscribe')
      expect(reasonOf(decision)).toContain(JSON.stringify(filter))
    })
  })
})

describe('reserved topics', () => {
  const permissive = new PolicyEngine({ policies: [allowAll] })
  const root = device('me', {}, ['allow-all'])

  it.each([
    '$aws/things/me/shadow/get/accepted',
    '$aws/things/me/shadow/get/rejected',
    '$aws/things/me/shadow/update/accepted',
    '$aws/things/me/shadow/update/rejected',
    '$aws/things/me/shadow/update/delta',
    '$aws/things/me/shadow/update/documents',
    '$aws/things/me/shadow/delete/accepted',
    '$aws/things/me/shadow/delete/rejected',
    '$aws/things/me/shadow/name/config/update/accepted',
    '$aws/things/me/shadow/name/config/update/delta',
    '$aws/things/me/shadow/name/config/get/rejected',
  ])('refuses a device publishing the shadow reply %j, even for its own shadow', (topic) => {
    for (const [eng, principal] of [[engine, me], [permissive, root]] as const) {
      const decision = eng.authorizePublish(principal, topic)
      expect(decision.allowed).toBe(false)
      expect(reasonOf(decision)).toMatch(/reply/)
    }
  })

  it('still lets policy decide who may subscribe to shadow replies', () => {
    expect(engine.authorizeSubscribe(me, '$aws/things/me/shadow/update/accepted').allowed).toBe(true)
    expect(permissive.authorizeSubscribe(root, '$aws/things/+/shadow/update/accepted').allowed).toBe(true)
  })

  it.each([
    '$aws/things/me/jobs/get',
    '$aws/things/me/shadow/update/extra',
    '$aws/things/me/shadow/update/accepted/more',
    '$aws/things/me/shadow/list',
    '$aws/things/me/shadow/name//update',
    '$aws/things/me/shadow/name/config',
    '$aws/things/me/shadow',
    '$aws/things//shadow/update',
    '$aws/rules/forward',
    '$aws/events/presence/connected/me',
    '$aws',
  ])('refuses publishing to %j, reserved by AWS, even when a policy allows $aws/#', (topic) => {
    const decision = permissive.authorizePublish(root, topic)
    expect(decision.allowed).toBe(false)
    expect(reasonOf(decision)).toMatch(/\$aws\/ topics .* reserved/)
  })

  it.each(['$SYS/broker/clients', '$SYS', '$coord/deploy', '$coord'])(
    'refuses publishing to %j under a default reserved prefix, whatever the policy says',
    (topic) => {
      const decision = permissive.authorizePublish(root, topic)
      expect(decision.allowed).toBe(false)
      expect(reasonOf(decision)).toContain('reserved')
    },
  )

  it('does not treat look-alike prefixes as reserved', () => {
    const lookAlikes = policyOf('look-alikes', 'allow', ['publish'], ['$SYSTEM/#', '$coordinator'])
    const eng = new PolicyEngine({ policies: [lookAlikes] })
    const principal = device('me', {}, ['look-alikes'])
    expect(eng.authorizePublish(principal, '$SYSTEM/x')).toEqual({ allowed: true })
    expect(eng.authorizePublish(principal, '$coordinator')).toEqual({ allowed: true })
    expect(permissive.authorizePublish(root, 'x/$SYS/y')).toEqual({ allowed: true })
  })

  it('lets policy decide subscriptions under reserved prefixes', () => {
    expect(permissive.authorizeSubscribe(root, '$SYS/#')).toEqual({ allowed: true })
    expect(engine.authorizeSubscribe(me, '$coord/#').allowed).toBe(false)
  })

  it('uses configured reservedPrefixes instead of the defaults', () => {
    const custom = new PolicyEngine({ policies: [allowAll], reservedPrefixes: ['factory/'] })
    expect(custom.authorizePublish(root, 'factory/line1').allowed).toBe(false)
    expect(custom.authorizePublish(root, 'factory').allowed).toBe(false)
    expect(custom.authorizePublish(root, '$SYS/x')).toEqual({ allowed: true })
    expect(DEFAULT_RESERVED_PREFIXES).toEqual(['$SYS/', '$coord/'])
  })

  it('rejects an empty reserved prefix, which would reserve every topic', () => {
    expect(() => new PolicyEngine({ policies: [], reservedPrefixes: [''] })).toThrow(/reserved topic prefixes/)
  })
})

describe('classifyShadowTopic', () => {
  it.each([
    ['$aws/things/me/shadow/update', 'request'],
    ['$aws/things/me/shadow/name/cfg/delete', 'request'],
    ['$aws/things/me/shadow/update/delta', 'reply'],
    ['$aws/things/me/shadow/name/cfg/get/accepted', 'reply'],
    ['$aws/things/me/shadow/update/bogus', undefined],
    ['$aws/things/me/shadow/name/update', undefined],
    ['$aws/things/me/jobs/get', undefined],
    ['things/me/shadow/update', undefined],
  ] as const)('classifies %j as %s', (topic, kind) => {
    expect(classifyShadowTopic(topic)).toBe(kind)
  })
})

describe('attached policies with attribute variables', () => {
  const sitePolicy: Policy = {
    name: 'site-telemetry',
    statements: [
      { effect: 'allow', actions: ['publish'], resources: ['sites/${attr.site}/${thingName}/+'] },
      { effect: 'allow', actions: ['subscribe'], resources: ['sites/${attr.site}/#', 'announcements/#'] },
    ],
  }
  const sites = new PolicyEngine({ policies: [sitePolicy] })
  const berlin = device('sensor-1', { site: 'berlin' }, ['site-telemetry'])

  it('substitutes attributes and the thing name into the attached grant', () => {
    expect(sites.authorizePublish(berlin, 'sites/berlin/sensor-1/temp')).toEqual({ allowed: true })
    expect(sites.authorizeSubscribe(berlin, 'sites/berlin/+/temp')).toEqual({ allowed: true })
  })

  it("does not reach another site's or another thing's topics", () => {
    expect(sites.authorizePublish(berlin, 'sites/paris/sensor-1/temp').allowed).toBe(false)
    expect(sites.authorizePublish(berlin, 'sites/berlin/sensor-2/temp').allowed).toBe(false)
    expect(sites.authorizeSubscribe(berlin, 'sites/+/sensor-1/temp').allowed).toBe(false)
  })

  it('keeps the default policy in force alongside attached policies', () => {
    expect(sites.authorizePublish(berlin, 'things/sensor-1/telemetry')).toEqual({ allowed: true })
  })

  it('grants nothing extra to a device the policy is not attached to', () => {
    const unattached = device('sensor-1', { site: 'berlin' })
    expect(sites.authorizePublish(unattached, 'sites/berlin/sensor-1/temp').allowed).toBe(false)
  })

  it('treats a resource with an attribute the device lacks as non-matching, without disabling its siblings', () => {
    const siteless = device('sensor-1', {}, ['site-telemetry'])
    expect(sites.authorizePublish(siteless, 'sites//sensor-1/temp').allowed).toBe(false)
    expect(sites.authorizeSubscribe(siteless, 'sites/#').allowed).toBe(false)
    expect(sites.authorizeSubscribe(siteless, 'sites/${attr.site}/#').allowed).toBe(false)
    expect(sites.authorizeSubscribe(siteless, 'announcements/today')).toEqual({ allowed: true })
  })

  it('resolves only own attributes, never Object.prototype members', () => {
    const protoPolicy: Policy = {
      name: 'proto',
      statements: [{ effect: 'allow', actions: ['publish'], resources: ['p/${attr.constructor}', 'p/${attr.__proto__}/x'] }],
    }
    const eng = new PolicyEngine({ policies: [protoPolicy] })
    const principal = device('me', {}, ['proto'])
    expect(eng.authorizePublish(principal, 'p/function Object() { [native code] }').allowed).toBe(false)
    expect(eng.authorizePublish(principal, 'p/[object Object]/x').allowed).toBe(false)
  })

  it('ignores unknown attached policy names at decision time and reports them', () => {
    const principal = device('sensor-1', { site: 'berlin' }, ['site-telemetry', 'missing', 'missing', 'also-missing'])
    expect(sites.authorizePublish(principal, 'sites/berlin/sensor-1/temp')).toEqual({ allowed: true })
    expect(sites.unknownPolicies(principal)).toEqual(['missing', 'also-missing'])
    expect(sites.unknownPolicies(berlin)).toEqual([])
  })

  it('replaces the default policy when one is given', () => {
    const readOnly = policyOf('read-only', 'allow', ['subscribe'], ['things/${thingName}/#'])
    const eng = new PolicyEngine({ policies: [], defaultPolicy: readOnly })
    expect(eng.authorizeSubscribe(me, 'things/me/cmd')).toEqual({ allowed: true })
    expect(eng.authorizePublish(me, 'things/me/telemetry').allowed).toBe(false)
    expect(eng.authorizePublish(me, '$aws/things/me/shadow/update').allowed).toBe(false)
  })
})

describe('deny overrides allow', () => {
  const lockdown: Policy = {
    name: 'lockdown',
    statements: [
      { effect: 'deny', actions: ['publish'], resources: ['things/${thingName}/admin/#'] },
      { effect: 'deny', actions: ['subscribe'], resources: ['things/+/secret'] },
    ],
  }
  const eng = new PolicyEngine({ policies: [lockdown, allowAll] })
  const locked = device('me', {}, ['lockdown'])

  it('denies a publish the default policy allows, naming the policy, statement and resource', () => {
    const decision = eng.authorizePublish(locked, 'things/me/admin/reboot')
    expect(decision.allowed).toBe(false)
    expect(reasonOf(decision)).toContain('"lockdown" statement 0')
    expect(reasonOf(decision)).toContain('things/${thingName}/admin/#')
    expect(eng.authorizePublish(locked, 'things/me/admin').allowed).toBe(false)
    expect(eng.authorizePublish(locked, 'things/me/telemetry')).toEqual({ allowed: true })
  })

  it('wins regardless of policy order', () => {
    const denyLast = device('me', {}, ['allow-all', 'lockdown'])
    const denyFirst = device('me', {}, ['lockdown', 'allow-all'])
    expect(eng.authorizePublish(denyLast, 'things/me/admin/x').allowed).toBe(false)
    expect(eng.authorizePublish(denyFirst, 'things/me/admin/x').allowed).toBe(false)
  })

  it('grants a wildcard subscription that overlaps a denied filter, and filters the denied topics out of delivery', () => {
    expect(eng.authorizeSubscribe(locked, 'things/me/#')).toEqual({ allowed: true })
    expect(eng.authorizeSubscribe(locked, 'things/me/+')).toEqual({ allowed: true })
    expect(eng.authorizeReceive(locked, 'things/me/secret')).toBe(false)
    expect(eng.authorizeReceive(locked, 'things/me/telemetry')).toBe(true)
    expect(eng.authorizeReceive(locked, 'things/me/secret/more')).toBe(true)
  })

  it('refuses a subscription whose whole filter is denied, naming the statement', () => {
    expect(reasonOf(eng.authorizeSubscribe(locked, 'things/me/secret'))).toContain('"lockdown" statement 1')
    expect(eng.authorizeSubscribe(locked, 'things/+/secret').allowed).toBe(false)
  })

  it('receives nothing no allow grants, with or without a deny', () => {
    expect(eng.authorizeReceive(me, 'elsewhere/topic')).toBe(false)
    expect(eng.authorizeReceive(me, 'things/me/x')).toBe(true)
    // Cached answers stay the same answers.
    expect(eng.authorizeReceive(locked, 'things/me/secret')).toBe(false)
  })

  it('leaves subscriptions that cannot receive a denied topic alone', () => {
    expect(eng.authorizeSubscribe(locked, 'things/me/telemetry')).toEqual({ allowed: true })
    expect(eng.authorizeSubscribe(locked, 'things/me/secret/more')).toEqual({ allowed: true })
  })

  it('applies a deny only to the actions it lists', () => {
    expect(eng.authorizePublish(locked, 'things/me/secret')).toEqual({ allowed: true })
    expect(eng.authorizeSubscribe(locked, 'things/me/admin/#')).toEqual({ allowed: true })
  })

  it('can live in the default policy', () => {
    const withDeny: Policy = {
      name: 'default-with-deny',
      statements: [
        ...DEFAULT_DEVICE_POLICY.statements,
        { effect: 'deny', actions: ['publish'], resources: ['things/+/firmware'] },
      ],
    }
    const strict = new PolicyEngine({ policies: [], defaultPolicy: withDeny })
    expect(strict.authorizePublish(me, 'things/me/firmware').allowed).toBe(false)
    expect(strict.authorizePublish(me, 'things/me/telemetry')).toEqual({ allowed: true })
  })
})

describe('variable injection through thing names and attribute values', () => {
  it.each(['+', '#', 'a/b', 'me/#', '', 'x+', 'a#'])(
    'a thing named %j gains nothing from ${thingName} in the default policy',
    (thingName) => {
      const attacker = device(thingName)
      const filters = ['$aws/things/+/shadow/#', '$aws/things/#', 'things/#', 'things/+/telemetry', 'things/a/b/#', 'things/me/#']
      for (const filter of filters) {
        expect(engine.authorizeSubscribe(attacker, filter).allowed).toBe(false)
      }
      for (const topic of ['$aws/things/other/shadow/update', 'things/other/telemetry', 'things/a/b/x', 'things/me/x']) {
        expect(engine.authorizePublish(attacker, topic).allowed).toBe(false)
      }
    },
  )

  it('a thing named "a/b" cannot publish into thing "a"\'s namespace or to the literal "things/a/b/..."', () => {
    const slashy = device('a/b')
    expect(engine.authorizePublish(slashy, 'things/a/b/x').allowed).toBe(false)
    expect(engine.authorizePublish(slashy, '$aws/things/a/b/shadow/update').allowed).toBe(false)
  })

  it('an attribute value with a wildcard or separator makes an allow resource non-matching', () => {
    const zonePolicy = policyOf('zone', 'allow', ['subscribe'], ['zones/${attr.zone}/#'])
    const eng = new PolicyEngine({ policies: [zonePolicy] })
    for (const zone of ['#', '+', 'a/b', '']) {
      const principal = device('me', { zone }, ['zone'])
      expect(eng.authorizeSubscribe(principal, 'zones/#').allowed).toBe(false)
      expect(eng.authorizeSubscribe(principal, 'zones/+/x').allowed).toBe(false)
      expect(eng.authorizeSubscribe(principal, 'zones/a/b').allowed).toBe(false)
    }
    expect(eng.authorizeSubscribe(device('me', { zone: 'a' }, ['zone']), 'zones/a/b')).toEqual({ allowed: true })
  })

  it('an unsafe value in a deny resource fails closed: the deny applies', () => {
    const quarantine = policyOf('quarantine', 'deny', ['publish'], ['things/${attr.group}/ctl'])
    const eng = new PolicyEngine({ policies: [quarantine] })
    const sneaky = device('me', { group: '+' }, ['quarantine'])
    const decision = eng.authorizePublish(sneaky, 'things/me/telemetry')
    expect(decision.allowed).toBe(false)
    expect(reasonOf(decision)).toMatch(/"quarantine" statement 0 cannot be applied safely/)
    expect(eng.authorizePublish(device('me', { group: 'g1' }, ['quarantine']), 'things/me/telemetry')).toEqual({ allowed: true })
    expect(eng.authorizePublish(device('me', {}, ['quarantine']), 'things/me/telemetry')).toEqual({ allowed: true })
  })

  it("a value cannot move a grant into the '$' namespace by starting the resource", () => {
    const nsPolicy = policyOf('ns', 'allow', ['subscribe'], ['${attr.ns}/#'])
    const eng = new PolicyEngine({ policies: [nsPolicy] })
    expect(eng.authorizeSubscribe(device('me', { ns: '$SYS' }, ['ns']), '$SYS/#').allowed).toBe(false)
    expect(eng.authorizeSubscribe(device('me', { ns: 'plant' }, ['ns']), 'plant/#')).toEqual({ allowed: true })
  })

  it("allows '$' inside a value when it does not start the resource", () => {
    expect(engine.authorizePublish(device('$me'), 'things/$me/x')).toEqual({ allowed: true })
  })

  it('substitutes in one pass, so a value that looks like a variable stays literal', () => {
    const principal = device('${attr.victim}', { victim: 'other' })
    expect(engine.authorizePublish(principal, 'things/other/x').allowed).toBe(false)
    expect(engine.authorizePublish(principal, 'things/${attr.victim}/x')).toEqual({ allowed: true })
  })
})

describe('invalid requests', () => {
  it.each(['', 'things/me/+', 'things/me/#', 'things/me/\u0000'])('denies publishing to the invalid topic name %j', (topic) => {
    expect(reasonOf(engine.authorizePublish(me, topic))).toMatch(/not a valid MQTT topic name/)
  })

  it.each(['', 'things/me/#/x', 'things/me+', 'things/me/a#'])('denies subscribing to the invalid filter %j', (filter) => {
    expect(reasonOf(engine.authorizeSubscribe(me, filter))).toMatch(/not a valid MQTT topic filter/)
  })
})

describe('PolicyEngine construction', () => {
  const withResource = (resource: string): Policy => ({
    name: 'broken',
    statements: [
      { effect: 'allow', actions: ['publish'], resources: ['ok/#'] },
      { effect: 'allow', actions: ['subscribe'], resources: ['fine', resource] },
    ],
  })

  it.each([
    ['a/#/b', /not a valid MQTT topic filter/],
    ['a/b#', /not a valid MQTT topic filter/],
    ['things/${thingName}+', /not a valid MQTT topic filter/],
    ['', /not a valid MQTT topic filter/],
    ['things/${clientId}', /unknown variable/],
    ['things/${attr.}', /unknown variable/],
    ['things/${thingName', /unterminated variable/],
  ])('rejects resource %j with a ConfigError naming policy, statement index and resource', (resource, problem) => {
    let caught: unknown
    try {
      new PolicyEngine({ policies: [withResource(resource)] })
    } catch (e) {
      caught = e
    }
    expect(caught).toBeInstanceOf(Error)
    expect(hasCode(caught, 'COORD_CONFIG_INVALID')).toBe(true)
    const message = (caught as Error).message
    expect(message).toContain('policy "broken" statement 1')
    expect(message).toContain(`resource ${JSON.stringify(resource)}`)
    expect(message).toMatch(problem)
  })

  it('validates the default policy too', () => {
    expect(() => new PolicyEngine({ policies: [], defaultPolicy: withResource('#/x') })).toThrow(/policy "broken" statement 1/)
  })

  it('rejects unknown effects and actions, which would otherwise silently never apply', () => {
    const badEffect = policyOf('p', 'block' as 'allow', ['publish'], ['a'])
    const badAction = policyOf('p', 'deny', ['connect' as Action], ['a'])
    expect(() => new PolicyEngine({ policies: [badEffect] })).toThrow(/policy "p" statement 0: unknown effect "block"/)
    expect(() => new PolicyEngine({ policies: [badAction] })).toThrow(/policy "p" statement 0: unknown action "connect"/)
  })

  it('rejects duplicate and empty policy names', () => {
    expect(() => new PolicyEngine({ policies: [allowAll, allowAll] })).toThrow(/duplicate policy name "allow-all"/)
    expect(() => new PolicyEngine({ policies: [{ name: '', statements: [] }] })).toThrow(/non-empty/)
  })

  it('does not check attached policy names, which are only known per principal', () => {
    expect(() => new PolicyEngine({ policies: [] })).not.toThrow()
    expect(engine.authorizePublish(device('me', {}, ['nope']), 'things/me/x')).toEqual({ allowed: true })
  })

  it('is unaffected by later mutation of the policies it was built from', () => {
    const mutable = policyOf('m', 'allow', ['publish'], ['m/x'])
    const eng = new PolicyEngine({ policies: [mutable] })
    const principal = device('me', {}, ['m'])
    mutable.statements[0]?.resources.push('#')
    mutable.statements.push({ effect: 'allow', actions: ['publish'], resources: ['#'] })
    expect(eng.authorizePublish(principal, 'm/x')).toEqual({ allowed: true })
    expect(eng.authorizePublish(principal, 'elsewhere').allowed).toBe(false)
  })
})
