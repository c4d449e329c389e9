import { migrate, type Db } from '../../coordinator/store/index.js'
import type { Group, GroupKind, Reported, Thing, ThingKind } from './types.js'

const MIGRATIONS = [
  `CREATE TABLE registry_things (
     name TEXT PRIMARY KEY,
     kind TEXT NOT NULL CHECK (kind IN ('coordinator', 'device')),
     attributes TEXT NOT NULL,      -- JSON object of strings
     tags TEXT NOT NULL,            -- JSON array, sorted
     -- RESTRICT: a coordinator cannot disappear from under its devices
     coordinator TEXT REFERENCES registry_things (name) ON DELETE RESTRICT,
     revision INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX registry_things_by_coordinator ON registry_things (coordinator);
   CREATE TABLE registry_groups (
     name TEXT PRIMARY KEY,
     kind TEXT NOT NULL CHECK (kind IN ('static', 'dynamic')),
     query TEXT,                    -- dynamic groups only
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   -- Explicit members of static groups and the materialised members of dynamic ones, so other
   -- processes (the CLI, a restarted daemon) read membership without evaluating queries.
   CREATE TABLE registry_group_members (
     group_name TEXT NOT NULL REFERENCES registry_groups (name) ON DELETE CASCADE,
     thing TEXT NOT NULL REFERENCES registry_things (name) ON DELETE CASCADE,
     PRIMARY KEY (group_name, thing)
   ) WITHOUT ROWID;
   CREATE INDEX registry_group_members_by_thing ON registry_group_members (thing);`,
  // What coordinators report (self-registration), apart from the operator's attributes and tags.
  `ALTER TABLE registry_things ADD COLUMN reported TEXT NOT NULL DEFAULT '{"attributes":{},"tags":[]}'`,
]

interface ThingRow {
  name: string
  kind: ThingKind
  attributes: string
  tags: string
  coordinator: string | null
  reported: string
  revision: number
  created_at: number
  updated_at: number
}

interface GroupRow {
  name: string
  kind: GroupKind
  query: string | null
  created_at: number
  updated_at: number
}

const toThing = (r: ThingRow): Thing => ({
  name: r.name,
  kind: r.kind,
  attributes: JSON.parse(r.attributes) as Record<string, string>,
  tags: JSON.parse(r.tags) as string[],
  coordinator: r.coordinator,
  reported: JSON.parse(r.reported) as Reported,
  revision: r.revision,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
})

const toGroup = (r: GroupRow): Group => ({ name: r.name, kind: r.kind, query: r.query, createdAt: r.created_at, updatedAt: r.updated_at })

/** The registry's tables in cloud.db. Synchronous: the registry commits before it emits events. */
export class RegistryStore {
  readonly #db: Db
  readonly #sql

  constructor(db: Db) {
    migrate(db, 'registry', MIGRATIONS)
    this.#db = db
    this.#sql = {
      things: db.prepare<[], ThingRow>('SELECT * FROM registry_things ORDER BY name'),
      putThing: db.prepare(`INSERT INTO registry_things (name, kind, attributes, tags, coordinator, reported, revision, created_at, updated_at)
        VALUES (@name, @kind, @attributes, @tags, @coordinator, @reported, @revision, @createdAt, @updatedAt)
        ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, attributes = excluded.attributes, tags = excluded.tags,
          coordinator = excluded.coordinator, reported = excluded.reported, revision = excluded.revision, updated_at = excluded.updated_at`),
      deleteThing: db.prepare<[string]>('DELETE FROM registry_things WHERE name = ?'),
      groups: db.prepare<[], GroupRow>('SELECT * FROM registry_groups ORDER BY name'),
      putGroup: db.prepare(`INSERT INTO registry_groups (name, kind, query, created_at, updated_at)
        VALUES (@name, @kind, @query, @createdAt, @updatedAt)
        ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, query = excluded.query, updated_at = excluded.updated_at`),
      deleteGroup: db.prepare<[string]>('DELETE FROM registry_groups WHERE name = ?'),
      members: db.prepare<[], { group_name: string; thing: string }>('SELECT group_name, thing FROM registry_group_members'),
      addMember: db.prepare<[string, string]>('INSERT OR IGNORE INTO registry_group_members (group_name, thing) VALUES (?, ?)'),
      removeMember: db.prepare<[string, string]>('DELETE FROM registry_group_members WHERE group_name = ? AND thing = ?'),
    }
  }

  things(): Thing[] {
    return this.#sql.things.all().map(toThing)
  }

  putThing(t: Thing): void {
    this.#sql.putThing.run({ ...t, attributes: JSON.stringify(t.attributes), tags: JSON.stringify(t.tags), reported: JSON.stringify(t.reported) })
  }

  /** Its group memberships go with it (ON DELETE CASCADE). */
  deleteThing(name: string): void {
    this.#sql.deleteThing.run(name)
  }

  groups(): Group[] {
    return this.#sql.groups.all().map(toGroup)
  }

  putGroup(g: Group): void {
    this.#sql.putGroup.run(g)
  }

  deleteGroup(name: string): void {
    this.#sql.deleteGroup.run(name)
  }

  /** Every membership, as group name -> member names. */
  members(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>()
    for (const row of this.#sql.members.all()) {
      let set = out.get(row.group_name)
      if (set === undefined) out.set(row.group_name, (set = new Set()))
      set.add(row.thing)
    }
    return out
  }

  writeMembers(group: string, added: readonly string[], removed: readonly string[]): void {
    for (const thing of added) this.#sql.addMember.run(group, thing)
    for (const thing of removed) this.#sql.removeMember.run(group, thing)
  }

  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)()
  }
}
