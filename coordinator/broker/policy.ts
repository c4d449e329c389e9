/**
 * Device authorization policy: which topics a connected thing may publish to and subscribe to.
 *
 * Pure and synchronous (no I/O) so the broker's authorizePublish/authorizeSubscribe/authorizeForward
 * hooks and the task sandbox can call it on every packet. The model is a small subset of AWS IoT
 * policies: statements allow or deny actions on topic-filter resources that may contain the
 * variables `${thingName}` and `${attr.<key>}`; an applicable deny overrides any allow, and without
 * an applicable allow the answer is no.
 *
 * As in AWS IoT, subscribing and receiving are separate decisions, both made by the `subscribe`
 * statements: a SUBSCRIBE is granted when an allow covers its whole filter and no deny does
 * (so `#` survives a deny on one topic), and each message is then delivered only if its topic is
 * allowed and not denied (authorizeReceive, called for every message on its way out).
 */
import { ConfigError } from '../core/errors.js'
import { parseShadowRequestTopicLoose, parseShadowTopic } from '../protocol/index.js'
import { filterCovers, isValidTopicFilter, isValidTopicName, topicMatches } from '../protocol/index.js'

export type Action = 'publish' | 'subscribe'

export interface PolicyStatement {
  effect: 'allow' | 'deny'
  actions: Action[]
  /** Topic filters; may contain `${thingName}` and `${attr.<key>}`. */
  resources: string[]
}

export interface Policy {
  name: string
  statements: PolicyStatement[]
}

export interface Principal {
  /** The MQTT client id, which is the thing name (Greengrass convention). */
  thingName: string
  attributes: Record<string, string>
  /** Names of extra policies attached to this thing, on top of the default policy. */
  policies: string[]
}

export interface PolicyEngineOptions {
  policies: Policy[]
  /** Applied to every device; defaults to DEFAULT_DEVICE_POLICY. */
  defaultPolicy?: Policy
  /** Topic prefixes no device may publish under; defaults to DEFAULT_RESERVED_PREFIXES. */
  reservedPrefixes?: string[]
}

export type Decision = { allowed: true } | { allowed: false; reason: string }

/** Frozen because it is shared module state: one caller mutating it would change every engine. */
function freezePolicy(policy: Policy): Policy {
  for (const statement of policy.statements) {
    Object.freeze(statement.actions)
    Object.freeze(statement.resources)
    Object.freeze(statement)
  }
  Object.freeze(policy.statements)
  return Object.freeze(policy)
}

/** A device may use its own shadows (classic and named) and its own `things/<name>/...` namespace. */
export const DEFAULT_DEVICE_POLICY: Policy = freezePolicy({
  name: 'default-device',
  statements: [
    {
      effect: 'allow',
      actions: ['publish', 'subscribe'],
      resources: ['$aws/things/${thingName}/shadow/#', 'things/${thingName}/#'],
    },
  ],
})

/** '$SYS/' by broker convention; '$coord/' is the coordinator's own control plane. */
export const DEFAULT_RESERVED_PREFIXES: readonly string[] = Object.freeze(['$SYS/', '$coord/'])

const ACTIONS: ReadonlySet<string> = new Set<Action>(['publish', 'subscribe'])
const EFFECTS: ReadonlySet<string> = new Set(['allow', 'deny'])

/** Global: matchAll requires it, and replace must visit every occurrence. */
const VARIABLE = /\$\{([^}]*)\}/g
const ATTRIBUTE_PREFIX = 'attr.'

function isKnownVariable(name: string): boolean {
  return name === 'thingName' || (name.startsWith(ATTRIBUTE_PREFIX) && name.length > ATTRIBUTE_PREFIX.length)
}

const quote = (s: string): string => JSON.stringify(s)

interface CompiledStatement {
  readonly policy: string
  readonly index: number
  readonly effect: 'allow' | 'deny'
  readonly actions: ReadonlySet<Action>
  readonly resources: readonly string[]
}

/**
 * Rejects resources that cannot be what the author meant, at load time rather than per packet.
 * A typo in a deny statement would otherwise silently never deny anything.
 */
function validateResource(resource: string): string | undefined {
  for (const match of resource.matchAll(VARIABLE)) {
    const name = match[1] ?? ''
    if (!isKnownVariable(name)) return `unknown variable ${quote(match[0])} (use \${thingName} or \${attr.<key>})`
  }
  const withPlaceholders = resource.replace(VARIABLE, 'v')
  if (withPlaceholders.includes('${')) return 'unterminated variable'
  if (!isValidTopicFilter(withPlaceholders)) return 'not a valid MQTT topic filter'
  return undefined
}

function compileStatement(policy: string, index: number, statement: PolicyStatement): CompiledStatement {
  const where = `policy ${quote(policy)} statement ${index}`
  if (!EFFECTS.has(statement.effect)) throw new ConfigError(`${where}: unknown effect ${quote(String(statement.effect))}`)
  for (const action of statement.actions) {
    if (!ACTIONS.has(action)) throw new ConfigError(`${where}: unknown action ${quote(String(action))}`)
  }
  for (const resource of statement.resources) {
    const problem = validateResource(resource)
    if (problem !== undefined) throw new ConfigError(`${where} resource ${quote(resource)}: ${problem}`)
  }
  return Object.freeze({
    policy,
    index,
    effect: statement.effect,
    actions: new Set(statement.actions),
    resources: Object.freeze([...statement.resources]),
  })
}

function compilePolicy(policy: Policy): readonly CompiledStatement[] {
  if (typeof policy.name !== 'string' || policy.name === '') throw new ConfigError('policy name must be a non-empty string')
  return Object.freeze(policy.statements.map((statement, i) => compileStatement(policy.name, i, statement)))
}

function validatePrefixes(prefixes: readonly string[]): readonly string[] {
  for (const prefix of prefixes) {
    // An empty prefix would reserve every topic, which is never what a config author means.
    if (typeof prefix !== 'string' || prefix === '') throw new ConfigError('reserved topic prefixes must be non-empty strings')
  }
  return Object.freeze([...prefixes])
}

/** 'a/' reserves 'a' itself too: the bare level is the same namespace. */
function isUnderPrefix(topic: string, prefix: string): boolean {
  return topic.startsWith(prefix) || (prefix.endsWith('/') && topic === prefix.slice(0, -1))
}

/**
 * Classifies AWS IoT shadow topics: a request a device sends, or a reply only the shadow service
 * sends. Request topics with malformed names still count as requests: the service answers them 400.
 */
export function classifyShadowTopic(topic: string): 'request' | 'reply' | undefined {
  const parsed = parseShadowTopic(topic)
  if (parsed !== null) return parsed.kind
  return parseShadowRequestTopicLoose(topic) === null ? undefined : 'request'
}

/**
 * `$aws/` belongs to AWS IoT. Devices may publish shadow requests there; replies must come only from
 * the coordinator's shadow service or a device could forge accepted/delta documents for other
 * subscribers; everything else under `$aws/` is refused outright.
 */
function awsReservedReason(topic: string): string | undefined {
  if (topic !== '$aws' && !topic.startsWith('$aws/')) return undefined
  const kind = classifyShadowTopic(topic)
  if (kind === 'request') return undefined
  if (kind === 'reply') return 'shadow reply topics are published only by the coordinator'
  return '$aws/ topics other than shadow get/update/delete requests are reserved'
}

type Substitution =
  | { kind: 'filter'; filter: string }
  /** A variable has no value for this principal (unknown attribute). */
  | { kind: 'unresolved' }
  /** A value could widen the filter or escape into '$' topics. */
  | { kind: 'unsafe'; detail: string }

function lookupVariable(name: string, principal: Principal): string | undefined {
  if (name === 'thingName') return principal.thingName
  const key = name.slice(ATTRIBUTE_PREFIX.length)
  // Own properties only: '${attr.constructor}' must not resolve through Object.prototype.
  if (!Object.hasOwn(principal.attributes, key)) return undefined
  const value: unknown = principal.attributes[key]
  return typeof value === 'string' ? value : undefined
}

/**
 * Why `value` cannot be pasted into a filter, if it cannot. A '/', '+' or '#' would add levels or
 * wildcards (thing '+' would own every thing's shadow); an empty value would collapse a level; a
 * leading '$' at the very start of a resource would move the grant into the '$' namespace.
 */
function unsafeValueReason(value: string, atStart: boolean): string | undefined {
  if (value === '') return 'is empty'
  if (/[/+#\u0000]/.test(value)) return "contains '/', '+', '#' or NUL"
  if (atStart && value.startsWith('$')) return "starts the resource with '$'"
  return undefined
}

/**
 * Single pass over the resource, so a value that itself looks like '${...}' stays literal text.
 * Unsafe wins over unresolved because deny statements fail closed on unsafe values.
 */
function substitute(resource: string, principal: Principal): Substitution {
  let filter = ''
  let copiedUpTo = 0
  let unresolved = false
  for (const match of resource.matchAll(VARIABLE)) {
    const offset = match.index ?? 0
    filter += resource.slice(copiedUpTo, offset)
    copiedUpTo = offset + match[0].length
    const value = lookupVariable(match[1] ?? '', principal)
    if (value === undefined) {
      unresolved = true
      continue
    }
    const reason = unsafeValueReason(value, offset === 0)
    if (reason !== undefined) return { kind: 'unsafe', detail: `${match[0]} = ${quote(value)} ${reason}` }
    filter += value
  }
  if (unresolved) return { kind: 'unresolved' }
  filter += resource.slice(copiedUpTo)
  if (!isValidTopicFilter(filter)) return { kind: 'unsafe', detail: `${quote(filter)} is not a valid topic filter` }
  return { kind: 'filter', filter }
}

const ALLOWED: Decision = Object.freeze({ allowed: true })

function refuse(reason: string): Decision {
  return { allowed: false, reason }
}

/** How a resource filter relates to the request: for publish the target is a topic, for subscribe a filter. */
type Relation = (resource: string, target: string) => boolean

interface ActionRules {
  /** A deny statement applies when this holds. */
  readonly denies: Relation
  /** An allow statement suffices when this holds. */
  readonly allows: Relation
}

/**
 * Publish and receive: plain matching of a topic. Subscribe: a grant must cover the whole filter,
 * and a deny refuses the subscription only when it covers the whole filter too; a deny on part of
 * it is enforced message by message (receive).
 */
const RULES: Readonly<Record<Action | 'receive', ActionRules>> = {
  publish: { denies: topicMatches, allows: topicMatches },
  subscribe: { denies: filterCovers, allows: filterCovers },
  receive: { denies: topicMatches, allows: topicMatches },
}

/** Decisions remembered per principal; a device publishes to a handful of topics over and over. */
const DECISION_CACHE_SIZE = 256

export class PolicyEngine {
  readonly #decisions = new WeakMap<Principal, Map<string, Decision>>()
  /** Apart from #decisions: the per-message key is the bare topic, with no string to build. */
  readonly #receives = new WeakMap<Principal, Map<string, boolean>>()
  readonly #defaultStatements: readonly CompiledStatement[]
  readonly #policies = new Map<string, readonly CompiledStatement[]>()
  readonly #reservedPrefixes: readonly string[]

  /** Throws ConfigError naming the policy, statement index and resource for anything malformed. */
  constructor(opts: PolicyEngineOptions) {
    this.#defaultStatements = compilePolicy(opts.defaultPolicy ?? DEFAULT_DEVICE_POLICY)
    for (const policy of opts.policies) {
      if (this.#policies.has(policy.name)) throw new ConfigError(`duplicate policy name ${quote(policy.name)}`)
      this.#policies.set(policy.name, compilePolicy(policy))
    }
    this.#reservedPrefixes = validatePrefixes(opts.reservedPrefixes ?? DEFAULT_RESERVED_PREFIXES)
  }

  /**
   * Policies never change after construction and a principal is not mutated once authenticated, so
   * a decision can be reused for the same principal object: the per-PUBLISH cost becomes a map lookup.
   */
  authorizePublish(principal: Principal, topic: string): Decision {
    return this.#cached(principal, `p\u0000${topic}`, () => this.#decidePublish(principal, topic))
  }

  authorizeSubscribe(principal: Principal, filter: string): Decision {
    return this.#cached(principal, `s\u0000${filter}`, () => this.#decideSubscribe(principal, filter))
  }

  /**
   * Whether a message on `topic` may be delivered to `principal` (AWS IoT's Receive), given that it
   * holds a subscription matching the topic. Called for every delivery, hence the bare boolean cache.
   */
  authorizeReceive(principal: Principal, topic: string): boolean {
    let receives = this.#receives.get(principal)
    if (receives === undefined) this.#receives.set(principal, (receives = new Map()))
    const known = receives.get(topic)
    if (known !== undefined) return known
    const allowed = this.#evaluate(principal, 'subscribe', topic, RULES.receive).allowed
    if (receives.size >= DECISION_CACHE_SIZE) receives.clear()
    receives.set(topic, allowed)
    return allowed
  }

  #cached(principal: Principal, key: string, decide: () => Decision): Decision {
    let decisions = this.#decisions.get(principal)
    if (decisions === undefined) this.#decisions.set(principal, (decisions = new Map()))
    const known = decisions.get(key)
    if (known !== undefined) return known
    const decision = decide()
    if (decisions.size >= DECISION_CACHE_SIZE) decisions.clear()
    decisions.set(key, decision)
    return decision
  }

  #decidePublish(principal: Principal, topic: string): Decision {
    if (!isValidTopicName(topic)) return refuse(`publish to ${quote(topic)} denied: not a valid MQTT topic name`)
    const reserved = this.#reservedPublishReason(topic)
    if (reserved !== undefined) return refuse(`publish to ${quote(topic)} denied: ${reserved}`)
    return this.#evaluate(principal, 'publish', topic)
  }

  /** Reserved and reply topics are not special here: reading them is up to policy. */
  #decideSubscribe(principal: Principal, filter: string): Decision {
    if (!isValidTopicFilter(filter)) return refuse(`subscribe to ${quote(filter)} denied: not a valid MQTT topic filter`)
    return this.#evaluate(principal, 'subscribe', filter)
  }

  /** Attached policy names with no such policy; they are ignored at decision time, so callers should log them. */
  unknownPolicies(principal: Principal): string[] {
    return [...new Set(principal.policies)].filter((name) => !this.#policies.has(name))
  }

  #reservedPublishReason(topic: string): string | undefined {
    const prefix = this.#reservedPrefixes.find((p) => isUnderPrefix(topic, p))
    if (prefix !== undefined) return `topics under ${quote(prefix)} are reserved`
    return awsReservedReason(topic)
  }

  #statementsFor(principal: Principal, action: Action): CompiledStatement[] {
    const attached = [...new Set(principal.policies)].flatMap((name) => this.#policies.get(name) ?? [])
    return [...this.#defaultStatements, ...attached].filter((s) => s.actions.has(action))
  }

  #evaluate(principal: Principal, action: Action, target: string, rules: ActionRules = RULES[action]): Decision {
    const statements = this.#statementsFor(principal, action)
    const denial = this.#firstDenial(principal, action, target, statements, rules.denies)
    if (denial !== undefined) return denial
    const allowed = statements.some((s) => s.effect === 'allow' && this.#anyResource(principal, s, target, rules.allows))
    return allowed ? ALLOWED : refuse(`${action} to ${quote(target)} denied: no policy statement allows it`)
  }

  /** Deny statements fail closed: a resource whose variables substitute unsafely denies everything it could. */
  #firstDenial(
    principal: Principal,
    action: Action,
    target: string,
    statements: readonly CompiledStatement[],
    applies: Relation,
  ): Decision | undefined {
    for (const statement of statements) {
      if (statement.effect !== 'deny') continue
      const where = `policy ${quote(statement.policy)} statement ${statement.index}`
      for (const resource of statement.resources) {
        const substituted = substitute(resource, principal)
        if (substituted.kind === 'unsafe') {
          return refuse(`${action} to ${quote(target)} denied: ${where} cannot be applied safely (${substituted.detail})`)
        }
        if (substituted.kind === 'filter' && applies(substituted.filter, target)) {
          return refuse(`${action} to ${quote(target)} denied by ${where} resource ${quote(resource)}`)
        }
      }
    }
    return undefined
  }

  /** Allow statements fail closed the other way: unresolved or unsafe resources grant nothing. */
  #anyResource(principal: Principal, statement: CompiledStatement, target: string, grants: Relation): boolean {
    return statement.resources.some((resource) => {
      const substituted = substitute(resource, principal)
      return substituted.kind === 'filter' && grants(substituted.filter, target)
    })
  }
}
