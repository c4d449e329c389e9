/** Pure set arithmetic for group membership. */
import type { Query, QueryTarget } from './query.js'

export interface MembershipChange {
  group: string
  added: string[]
  removed: string[]
}

/** Members sorted by name, so events and API answers are stable. */
export const sorted = (names: Iterable<string>): string[] => [...names].sort()

export function diff(group: string, before: ReadonlySet<string>, after: ReadonlySet<string>): MembershipChange | undefined {
  const added = sorted([...after].filter((n) => !before.has(n)))
  const removed = sorted([...before].filter((n) => !after.has(n)))
  return added.length === 0 && removed.length === 0 ? undefined : { group, added, removed }
}

/**
 * How one thing's membership in the dynamic groups moves when it becomes `thing`; static groups
 * are not touched (their members are chosen by hand).
 */
export function changesForThing(
  thing: QueryTarget,
  queries: ReadonlyMap<string, Query>,
  members: ReadonlyMap<string, ReadonlySet<string>>,
): MembershipChange[] {
  const changes: MembershipChange[] = []
  for (const [group, query] of queries) {
    const isMember = members.get(group)?.has(thing.name) === true
    const matches = query.matches(thing)
    if (matches && !isMember) changes.push({ group, added: [thing.name], removed: [] })
    if (!matches && isMember) changes.push({ group, added: [], removed: [thing.name] })
  }
  return changes
}

/** Removal of a thing from every group that has it, static or dynamic, in group name order. */
export function changesForRemoval(name: string, members: ReadonlyMap<string, ReadonlySet<string>>): MembershipChange[] {
  const groups = sorted([...members].filter(([, set]) => set.has(name)).map(([group]) => group))
  return groups.map((group) => ({ group, added: [], removed: [name] }))
}

/** Every group's change between two snapshots, groups that appeared or vanished included. */
export function diffAll(before: ReadonlyMap<string, ReadonlySet<string>>, after: ReadonlyMap<string, ReadonlySet<string>>): MembershipChange[] {
  const empty = new Set<string>()
  const groups = sorted(new Set([...before.keys(), ...after.keys()]))
  return groups.flatMap((g) => diff(g, before.get(g) ?? empty, after.get(g) ?? empty) ?? [])
}

/** Applies changes to an in-memory membership map. */
export function apply(members: Map<string, Set<string>>, changes: readonly MembershipChange[]): void {
  for (const c of changes) {
    let set = members.get(c.group)
    if (set === undefined) members.set(c.group, (set = new Set()))
    for (const n of c.added) set.add(n)
    for (const n of c.removed) set.delete(n)
  }
}
