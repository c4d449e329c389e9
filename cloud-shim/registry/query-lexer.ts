/**
 * Tokens of the group query language (see query.ts for the grammar). Positions are 0-based
 * character offsets into the query text, as in JSON.parse's messages.
 */
import { CoordinatorError } from '../../coordinator/core/errors.js'

/** A query that does not parse; `position` points at the offending character. */
export class QueryError extends CoordinatorError {
  readonly code = 'COORD_REGISTRY_QUERY_INVALID' as const

  constructor(readonly position: number, detail: string) {
    super(`query error at position ${position}: ${detail}`)
  }
}

export type TokenKind = 'lparen' | 'rparen' | 'op' | 'string' | 'word' | 'end'

export interface Token {
  kind: TokenKind
  /** The token as written (for strings: without quotes, escapes resolved). */
  text: string
  position: number
}

/** Longest first, so '<=' is not read as '<' followed by '='. */
const OPERATORS = ['!=', '<=', '>=', '=', '<', '>'] as const
/**
 * Bare words: field names, keywords, numbers and unquoted values. '=' and quotes are excluded so
 * `attributes.a=1` splits into three tokens; tags such as `arch=arm64` must be quoted.
 */
const WORD = /[A-Za-z0-9_.:@/+-]/

export function tokenize(text: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < text.length) {
    const c = text[i] as string
    if (/\s/.test(c)) {
      i++
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: c === '(' ? 'lparen' : 'rparen', text: c, position: i++ })
    } else if (c === '"' || c === "'") {
      const { token, next } = readString(text, i)
      tokens.push(token)
      i = next
    } else {
      const op = OPERATORS.find((o) => text.startsWith(o, i))
      if (op !== undefined) {
        tokens.push({ kind: 'op', text: op, position: i })
        i += op.length
      } else if (WORD.test(c)) {
        const start = i
        while (i < text.length && WORD.test(text[i] as string)) i++
        tokens.push({ kind: 'word', text: text.slice(start, i), position: start })
      } else {
        throw new QueryError(i, `unexpected character ${JSON.stringify(c)}`)
      }
    }
  }
  tokens.push({ kind: 'end', text: '', position: text.length })
  return tokens
}

/** A quoted string; backslash escapes the next character (so `\"` and `\\` work). */
function readString(text: string, start: number): { token: Token; next: number } {
  const quote = text[start]
  let value = ''
  let i = start + 1
  while (i < text.length) {
    const c = text[i] as string
    if (c === quote) return { token: { kind: 'string', text: value, position: start }, next: i + 1 }
    if (c === '\\' && i + 1 < text.length) {
      value += text[i + 1]
      i += 2
    } else {
      value += c
      i++
    }
  }
  throw new QueryError(start, `unterminated string: no closing ${quote}`)
}
