/**
 * The query language of dynamic groups: a boolean expression over a thing's fields.
 *
 *   query      := or
 *   or         := and ('OR' and)*
 *   and        := unary ('AND' unary)*
 *   unary      := 'NOT' unary | '(' or ')' | condition
 *   condition  := tags 'HAS' value
 *               | field 'EXISTS'
 *               | field op value            op: = != < <= > >=
 *   tags       := 'tags' | 'reported.tags'
 *   field      := 'name' | 'kind' | 'coordinator' | 'attributes.' key | 'reported.attributes.' key
 *   value      := "quoted string" | 'quoted string' | bare word | number
 *
 * Keywords are case-insensitive. Attribute values are strings: '=' and '!=' compare strings, or
 * numbers when the value is written as a number; '<', '<=', '>', '>=' need a number and are false
 * for an attribute that is missing or not a number. 'a != v' is exactly 'NOT a = v', so it holds
 * for things that lack the attribute.
 *
 * `attributes` and `tags` are the operator's. What coordinators report about themselves and their
 * devices is seen only through `reported.attributes.<key>` and `reported.tags`, so a coordinator
 * can enter a group only by a condition the operator wrote on its reports.
 */
import { QueryError, tokenize, type Token } from './query-lexer.js'

export { QueryError } from './query-lexer.js'

/** What a query can look at; the registry's Thing satisfies it. */
export interface QueryTarget {
  name: string
  kind: string
  coordinator: string | null
  attributes: Readonly<Record<string, string>>
  tags: readonly string[]
  /** What the thing's coordinator reported (self-registration); absent: nothing. */
  reported?: { readonly attributes: Readonly<Record<string, string>>; readonly tags: readonly string[] }
}

/** Whose attributes or tags a condition reads: the operator's, or what the coordinator reported. */
type Section = 'operator' | 'reported'

type Field = { kind: 'name' | 'kind' | 'coordinator' } | { kind: 'attribute'; section: Section; key: string }
type Operator = '=' | '!=' | '<' | '<=' | '>' | '>='
type Literal = { kind: 'string'; value: string } | { kind: 'number'; value: number }

export type QueryNode =
  | { kind: 'and' | 'or'; left: QueryNode; right: QueryNode }
  | { kind: 'not'; operand: QueryNode }
  | { kind: 'has'; section: Section; tag: string }
  | { kind: 'exists'; field: Field }
  | { kind: 'compare'; field: Field; op: Operator; literal: Literal }

export interface Query {
  readonly text: string
  readonly ast: QueryNode
  matches(thing: QueryTarget): boolean
}

const NUMBER = /^-?\d+(\.\d+)?$/
/**
 * Parentheses and NOTs nested deeper than this are refused: the parser and the evaluator recurse
 * once per level, and a query arrives from HTTP bodies of up to the bundle size.
 */
export const MAX_QUERY_DEPTH = 32
/** Longer queries are refused before they are read: it also bounds AND/OR chains (and the evaluator's left-deep recursion). */
export const MAX_QUERY_LENGTH = 4096
const FIELDS = 'name, kind, coordinator, tags, attributes.<key>, reported.tags or reported.attributes.<key>'

/** Parses `text`; throws QueryError naming the position of the first problem. */
export function compileQuery(text: string): Query {
  if (text.length > MAX_QUERY_LENGTH) throw new QueryError(MAX_QUERY_LENGTH, `the query is ${text.length} characters long; the limit is ${MAX_QUERY_LENGTH}`)
  const ast = new Parser(tokenize(text)).parse()
  return { text, ast, matches: (thing) => evaluate(ast, thing) }
}

const describe = (t: Token): string => (t.kind === 'end' ? 'the end of the query' : t.kind === 'string' ? JSON.stringify(t.text) : `'${t.text}'`)
const isKeyword = (t: Token, keyword: string): boolean => t.kind === 'word' && t.text.toUpperCase() === keyword

class Parser {
  readonly #tokens: Token[]
  #at = 0
  #depth = 0

  constructor(tokens: Token[]) {
    this.#tokens = tokens
  }

  parse(): QueryNode {
    if (this.#peek().kind === 'end') throw new QueryError(0, `empty query: expected a condition on ${FIELDS}`)
    const node = this.#or()
    const rest = this.#peek()
    if (rest.kind !== 'end') throw new QueryError(rest.position, `expected AND, OR or the end of the query, found ${describe(rest)}`)
    return node
  }

  #peek(): Token {
    return this.#tokens[this.#at] as Token
  }

  #next(): Token {
    const t = this.#peek()
    if (t.kind !== 'end') this.#at++
    return t
  }

  #or(): QueryNode {
    let left = this.#and()
    while (isKeyword(this.#peek(), 'OR')) {
      this.#next()
      left = { kind: 'or', left, right: this.#and() }
    }
    return left
  }

  #and(): QueryNode {
    let left = this.#unary()
    while (isKeyword(this.#peek(), 'AND')) {
      this.#next()
      left = { kind: 'and', left, right: this.#unary() }
    }
    return left
  }

  #unary(): QueryNode {
    const t = this.#next()
    if (isKeyword(t, 'NOT')) return { kind: 'not', operand: this.#nested(t, () => this.#unary()) }
    if (t.kind === 'lparen') {
      const inner = this.#nested(t, () => this.#or())
      const close = this.#next()
      if (close.kind !== 'rparen') throw new QueryError(close.position, `expected ')' to close the '(' at position ${t.position}, found ${describe(close)}`)
      return inner
    }
    if (t.kind !== 'word') throw new QueryError(t.position, `expected a condition on ${FIELDS}, found ${describe(t)}`)
    return this.#condition(t)
  }

  #nested(opening: Token, parse: () => QueryNode): QueryNode {
    if (++this.#depth > MAX_QUERY_DEPTH) throw new QueryError(opening.position, `parentheses and NOT nest deeper than ${MAX_QUERY_DEPTH} levels`)
    const node = parse()
    this.#depth--
    return node
  }

  #condition(fieldToken: Token): QueryNode {
    if (fieldToken.text === 'tags' || fieldToken.text === REPORTED_TAGS) {
      const has = this.#next()
      if (!isKeyword(has, 'HAS')) throw new QueryError(has.position, `expected HAS after '${fieldToken.text}' (e.g. ${fieldToken.text} HAS gpio), found ${describe(has)}`)
      return { kind: 'has', section: fieldToken.text === 'tags' ? 'operator' : 'reported', tag: this.#value(has).text }
    }
    const field = parseField(fieldToken)
    const op = this.#next()
    if (isKeyword(op, 'EXISTS')) return { kind: 'exists', field }
    if (op.kind !== 'op') throw new QueryError(op.position, `expected an operator (= != < <= > >=) or EXISTS after '${fieldToken.text}', found ${describe(op)}`)
    return { kind: 'compare', field, op: op.text as Operator, literal: this.#literal(op) }
  }

  /** The value token after `after`: a quoted string or a bare word that is not a keyword. */
  #value(after: Token): Token {
    const t = this.#next()
    const keyword = ['AND', 'OR', 'NOT'].some((k) => isKeyword(t, k))
    if (t.kind === 'string' || (t.kind === 'word' && !keyword)) return t
    throw new QueryError(t.position, `expected a value after '${after.text}', found ${describe(t)}`)
  }

  #literal(op: Token): Literal {
    const t = this.#value(op)
    const numeric = t.kind === 'word' && NUMBER.test(t.text)
    if (numeric) return { kind: 'number', value: Number(t.text) }
    if (op.text !== '=' && op.text !== '!=') throw new QueryError(t.position, `'${op.text}' compares numbers, found ${describe(t)}`)
    return { kind: 'string', value: t.text }
  }
}

const REPORTED_TAGS = 'reported.tags'
const ATTRIBUTE_PREFIXES: ReadonlyArray<[string, Section]> = [['attributes.', 'operator'], ['reported.attributes.', 'reported']]

function parseField(t: Token): Field {
  if (t.text === 'name' || t.text === 'kind' || t.text === 'coordinator') return { kind: t.text }
  for (const [prefix, section] of ATTRIBUTE_PREFIXES) {
    if (t.text.startsWith(prefix) && t.text.length > prefix.length) return { kind: 'attribute', section, key: t.text.slice(prefix.length) }
  }
  throw new QueryError(t.position, `unknown field '${t.text}': use ${FIELDS}`)
}

const NOTHING_REPORTED = { attributes: {}, tags: [] }

function sectionOf(section: Section, thing: QueryTarget): NonNullable<QueryTarget['reported']> {
  return section === 'operator' ? thing : (thing.reported ?? NOTHING_REPORTED)
}

function fieldValue(field: Field, thing: QueryTarget): string | undefined {
  if (field.kind === 'attribute') {
    const { attributes } = sectionOf(field.section, thing)
    return Object.hasOwn(attributes, field.key) ? attributes[field.key] : undefined
  }
  return thing[field.kind] ?? undefined
}

function evaluate(node: QueryNode, thing: QueryTarget): boolean {
  switch (node.kind) {
    case 'and': return evaluate(node.left, thing) && evaluate(node.right, thing)
    case 'or': return evaluate(node.left, thing) || evaluate(node.right, thing)
    case 'not': return !evaluate(node.operand, thing)
    case 'has': return sectionOf(node.section, thing).tags.includes(node.tag)
    case 'exists': return fieldValue(node.field, thing) !== undefined
    case 'compare': return compare(fieldValue(node.field, thing), node.op, node.literal)
  }
}

function compare(value: string | undefined, op: Operator, literal: Literal): boolean {
  if (op === '!=') return !compare(value, '=', literal)
  if (value === undefined) return false
  if (literal.kind === 'string') return value === literal.value
  if (!NUMBER.test(value)) return false
  const n = Number(value)
  switch (op) {
    case '=': return n === literal.value
    case '<': return n < literal.value
    case '<=': return n <= literal.value
    case '>': return n > literal.value
    case '>=': return n >= literal.value
  }
}
