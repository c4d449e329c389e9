/**
 * The registry: things (coordinators and devices) with attributes and capability tags, static
 * groups and dynamic groups whose membership follows the things.
 *
 * State lives in SQLite (cloud.db) and is mirrored in memory, so reads (policy checks, API lists)
 * never touch the disk. Every change is committed first, then the mirror is updated, then events
 * go out. Other processes (the `edge-cloud` CLI) may write the same tables: `catchUp()` re-reads
 * them when SQLite's data_version says another connection committed, and emits the differences
 * as events, exactly as if the change had been made here.
 */
import type { Clock } from '../../coordinator/core/clock.js'
import { ConflictError, InvalidArgumentError, NotFoundError } from '../../coordinator/core/errors.js'
import type { Logger } from '../../coordinator/core/log.js'
import type { Db } from '../../coordinator/store/index.js'
import { Emitter } from '../core/emitter.js'
import { apply, changesForRemoval, changesForThing, diff, diffAll, sorted, type MembershipChange } from './membership.js'
import { compileQuery, type Query } from './query.js'
import { RegistryStore } from './registry-store.js'
import { applyPatch, checkKind, checkName, EMPTY_REPORTED, normalizeAttributesAndTags, type Group, type Reported, type GroupDefinition, type Thing, type ThingInput, type ThingPatch } from './types.js'

export interface RegistryEvents {
  /** A thing was created (previous undefined) or changed. */
  thingChanged: (thing: Thing, previous: Thing | undefined) => void
  thingRemoved: (thing: Thing) => void
  /** A group was created (previous undefined) or redefined. */
  groupChanged: (group: Group, previous: Group | undefined) => void
  groupRemoved: (group: Group) => void
  /**
   * The members of `group` changed: emitted for every change, including a group's creation (all
   * members added) and removal (all removed), after the change is committed.
   */
  groupMembershipChanged: (group: string, added: string[], removed: string[]) => void
}

export interface ThingFilter {
  kind?: Thing['kind']
  coordinator?: string
  /** A group query; only matching things are listed. */
  query?: string
}

export interface RegistryOptions {
  db: Db
  clock: Clock
  log: Logger
}

const quote = (s: string): string => JSON.stringify(s)

type ThingContent = Pick<Thing, 'name' | 'kind' | 'attributes' | 'tags' | 'coordinator' | 'reported'>

/** Attributes are stored key-sorted and tags sorted, so JSON equality is set equality. */
const sameContent = (a: ThingContent, b: ThingContent): boolean =>
  a.kind === b.kind && a.coordinator === b.coordinator && JSON.stringify(a.attributes) === JSON.stringify(b.attributes) &&
  JSON.stringify(a.tags) === JSON.stringify(b.tags) && JSON.stringify(a.reported) === JSON.stringify(b.reported)

export class Registry {
  readonly #store: RegistryStore
  readonly #db: Db
  readonly #clock: Clock
  readonly #events: Emitter<RegistryEvents>
  #things = new Map<string, Thing>()
  #groups = new Map<string, Group>()
  #queries = new Map<string, Query>()
  #members = new Map<string, Set<string>>()
  #dataVersion: unknown

  constructor(opts: RegistryOptions) {
    this.#store = new RegistryStore(opts.db)
    this.#db = opts.db
    this.#clock = opts.clock
    this.#events = new Emitter(opts.log)
    this.#load()
  }

  on<E extends keyof RegistryEvents>(event: E, listener: RegistryEvents[E]): () => void {
    return this.#events.on(event, listener)
  }

  getThing(name: string): Thing | undefined {
    this.catchUp()
    return this.#things.get(name)
  }

  /** In name order; throws QueryError for a bad `filter.query`. */
  listThings(filter: ThingFilter = {}): Thing[] {
    this.catchUp()
    const query = filter.query === undefined ? undefined : compileQuery(filter.query)
    return [...this.#things.values()].filter((t) =>
      (filter.kind === undefined || t.kind === filter.kind) &&
      (filter.coordinator === undefined || t.coordinator === filter.coordinator) &&
      (query === undefined || query.matches(t)))
  }

  getGroup(name: string): Group | undefined {
    this.catchUp()
    return this.#groups.get(name)
  }

  listGroups(): Group[] {
    this.catchUp()
    return [...this.#groups.values()]
  }

  /** Member names in order; throws NotFoundError for an unknown group. */
  membersOf(group: string): string[] {
    this.#mustGetGroup(group)
    return sorted(this.#members.get(group) ?? [])
  }

  groupsOf(thing: string): string[] {
    this.catchUp()
    return sorted([...this.#members].filter(([, set]) => set.has(thing)).map(([g]) => g))
  }

  /** Throws ConflictError when a thing of that name exists. */
  createThing(input: ThingInput): Thing {
    this.catchUp()
    if (this.#things.has(input.name)) throw new ConflictError(`thing ${quote(input.name)} already exists`)
    return this.putThing(input)
  }

  /** Creates the thing or replaces its operator fields whole; what its coordinator reported stays. */
  putThing(input: ThingInput): Thing {
    this.catchUp()
    const name = checkName(input.name, 'thing')
    const { attributes, tags } = normalizeAttributesAndTags(input.attributes ?? {}, input.tags ?? [])
    const reported = this.#things.get(name)?.reported ?? EMPTY_REPORTED
    return this.#write({ name, kind: checkKind(input.kind), attributes, tags, coordinator: input.coordinator ?? null, reported })
  }

  /** Merges `patch` into an existing thing's operator fields. */
  patchThing(name: string, patch: ThingPatch): Thing {
    const thing = this.#mustGetThing(name)
    const coordinator = patch.coordinator === undefined ? thing.coordinator : patch.coordinator
    return this.#write({ name, kind: thing.kind, ...applyPatch(thing, patch), coordinator, reported: thing.reported })
  }

  /** Merges what a coordinator reports into the thing's `reported` section; the operator's fields are untouched. */
  reportThing(name: string, patch: Omit<ThingPatch, 'coordinator'>): Thing {
    const thing = this.#mustGetThing(name)
    const reported: Reported = applyPatch(thing.reported, patch)
    return this.#write({ name, kind: thing.kind, attributes: thing.attributes, tags: thing.tags, coordinator: thing.coordinator, reported })
  }

  /** Its group memberships go too; a coordinator that still has devices cannot be removed. */
  removeThing(name: string): Thing {
    const thing = this.#mustGetThing(name)
    const devices = this.listThings({ coordinator: name })
    if (devices.length > 0) {
      throw new ConflictError(`coordinator ${quote(name)} still serves ${devices.length} device(s) (${devices.slice(0, 3).map((d) => d.name).join(', ')}); move or remove them first`)
    }
    const changes = changesForRemoval(name, this.#members)
    // Our own commits do not move data_version, so the mirror is updated by hand below.
    this.#store.transaction(() => this.#store.deleteThing(name))
    this.#things.delete(name)
    apply(this.#members, changes)
    this.#emitMembership(changes)
    this.#events.emit('thingRemoved', thing)
    return thing
  }

  createGroup(name: string, definition: GroupDefinition): Group {
    this.catchUp()
    if (this.#groups.has(name)) throw new ConflictError(`group ${quote(name)} already exists`)
    return this.putGroup(name, definition)
  }

  /** Creates the group or replaces its definition; membership is recomputed either way. */
  putGroup(name: string, definition: GroupDefinition): Group {
    this.catchUp()
    checkName(name, 'group')
    const { query, members } = this.#resolve(definition)
    const previous = this.#groups.get(name)
    const now = this.#clock.now()
    const group: Group = { name, kind: definition.kind, query: query?.text ?? null, createdAt: previous?.createdAt ?? now, updatedAt: now }
    const change = diff(name, this.#members.get(name) ?? new Set(), members)
    this.#store.transaction(() => {
      this.#store.putGroup(group)
      if (change !== undefined) this.#store.writeMembers(name, change.added, change.removed)
    })
    this.#setGroup(group, query)
    this.#members.set(name, members)
    this.#events.emit('groupChanged', group, previous)
    this.#emitMembership(change === undefined ? [] : [change])
    return group
  }

  removeGroup(name: string): Group {
    const group = this.#mustGetGroup(name)
    const change = diff(name, this.#members.get(name) ?? new Set(), new Set())
    this.#store.transaction(() => this.#store.deleteGroup(name))
    this.#groups.delete(name)
    this.#queries.delete(name)
    this.#members.delete(name)
    this.#emitMembership(change === undefined ? [] : [change])
    this.#events.emit('groupRemoved', group)
    return group
  }

  /**
   * Re-reads the tables if another process committed since we last looked, and emits what
   * changed. Cheap when nothing did (one PRAGMA); the daemon also calls it on a timer.
   */
  catchUp(): void {
    if (this.#db.pragma('data_version', { simple: true }) === this.#dataVersion) return
    const before = { things: this.#things, groups: this.#groups, members: this.#members }
    this.#load()
    this.#emitDifferences(before)
  }

  #load(): void {
    this.#dataVersion = this.#db.pragma('data_version', { simple: true })
    this.#things = new Map(this.#store.things().map((t) => [t.name, t]))
    this.#groups = new Map()
    this.#queries = new Map()
    for (const g of this.#store.groups()) this.#setGroup(g, g.query === null ? undefined : compileQuery(g.query))
    this.#members = this.#store.members()
  }

  #emitDifferences(before: { things: Map<string, Thing>; groups: Map<string, Group>; members: Map<string, Set<string>> }): void {
    for (const t of this.#things.values()) {
      const old = before.things.get(t.name)
      if (old?.revision !== t.revision) this.#events.emit('thingChanged', t, old)
    }
    for (const g of this.#groups.values()) {
      const old = before.groups.get(g.name)
      if (old?.updatedAt !== g.updatedAt || old.query !== g.query) this.#events.emit('groupChanged', g, old)
    }
    this.#emitMembership(diffAll(before.members, this.#members))
    for (const g of before.groups.values()) if (!this.#groups.has(g.name)) this.#events.emit('groupRemoved', g)
    for (const t of before.things.values()) if (!this.#things.has(t.name)) this.#events.emit('thingRemoved', t)
  }

  #write(fields: ThingContent): Thing {
    this.#checkRelation(fields)
    const previous = this.#things.get(fields.name)
    // Coordinators re-register on every connect; an unchanged thing is neither written nor announced.
    if (previous !== undefined && sameContent(previous, fields)) return previous
    const now = this.#clock.now()
    const thing: Thing = { ...fields, revision: (previous?.revision ?? 0) + 1, createdAt: previous?.createdAt ?? now, updatedAt: now }
    const changes = changesForThing(thing, this.#queries, this.#members)
    this.#store.transaction(() => {
      this.#store.putThing(thing)
      for (const c of changes) this.#store.writeMembers(c.group, c.added, c.removed)
    })
    this.#things.set(thing.name, thing)
    apply(this.#members, changes)
    this.#events.emit('thingChanged', thing, previous)
    this.#emitMembership(changes)
    return thing
  }

  /** A device belongs to at most one coordinator; a coordinator belongs to none. */
  #checkRelation(t: Pick<Thing, 'name' | 'kind' | 'coordinator'>): void {
    if (t.kind === 'coordinator') {
      if (t.coordinator !== null) throw new InvalidArgumentError(`coordinator ${quote(t.name)} cannot itself belong to a coordinator`)
      return
    }
    if (this.#things.get(t.name)?.kind === 'coordinator' && this.listThings({ coordinator: t.name }).length > 0) {
      throw new ConflictError(`coordinator ${quote(t.name)} still serves devices; it cannot become a device`)
    }
    if (t.coordinator === null) return
    const owner = this.#things.get(t.coordinator)
    if (owner?.kind !== 'coordinator') throw new InvalidArgumentError(`device ${quote(t.name)}: no coordinator named ${quote(t.coordinator)}`)
  }

  /** A group definition's query (dynamic) and its member set now. */
  #resolve(definition: GroupDefinition): { query?: Query; members: Set<string> } {
    if (definition.kind === 'dynamic') {
      const query = compileQuery(definition.query)
      return { query, members: new Set([...this.#things.values()].filter((t) => query.matches(t)).map((t) => t.name)) }
    }
    const missing = definition.members.filter((m) => !this.#things.has(m))
    if (missing.length > 0) throw new InvalidArgumentError(`static group members must be registered things; unknown: ${missing.map(quote).join(', ')}`)
    return { members: new Set(definition.members) }
  }

  #setGroup(group: Group, query: Query | undefined): void {
    this.#groups.set(group.name, group)
    if (query === undefined) this.#queries.delete(group.name)
    else this.#queries.set(group.name, query)
  }

  #emitMembership(changes: readonly MembershipChange[]): void {
    for (const c of changes) this.#events.emit('groupMembershipChanged', c.group, c.added, c.removed)
  }

  #mustGetThing(name: string): Thing {
    const t = this.getThing(name)
    if (t === undefined) throw new NotFoundError(`no thing named ${quote(name)}`)
    return t
  }

  #mustGetGroup(name: string): Group {
    const g = this.getGroup(name)
    if (g === undefined) throw new NotFoundError(`no group named ${quote(name)}`)
    return g
  }
}
