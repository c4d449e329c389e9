import { isIP } from 'node:net'
import { hostname } from 'node:os'
import type { Logger } from './log.js'

/**
 * What a web page may do to a daemon on loopback or the LAN. A browser lets any page send
 * requests to 127.0.0.1 and, through DNS rebinding, read the answers under a name the page's
 * author controls; it also lets any page open a WebSocket anywhere. Two headers tell us which page
 * is asking: `Host` (the name the browser resolved) and `Origin` (the page's own origin).
 */
export interface WebGuard {
  /** Whether the `Host` header names this daemon: an IP literal, or one of the names it serves. */
  hostAllowed(host: string | undefined): boolean
  /**
   * Whether a request carrying this `Origin` may change state (or open a WebSocket): no Origin
   * (not a browser), the request's own origin, or one the operator listed.
   */
  originAllowed(origin: string | undefined, host: string | undefined): boolean
}

export interface WebGuardOptions {
  /** Host names (without port) the daemon serves, besides IP literals. Compared case-insensitively. */
  hosts: readonly string[]
  /** Origins (`scheme://host[:port]`) allowed to make state-changing requests and WebSocket upgrades. */
  origins: readonly string[]
}

/** `localhost:8087` -> `localhost`; `[::1]:8087` -> `::1`. */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase()
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'))
  const colon = h.indexOf(':')
  return (colon === -1 ? h : h.slice(0, colon)).replace(/\.$/, '')
}

export function createWebGuard(opts: WebGuardOptions): WebGuard {
  const hosts = new Set(['localhost', ...opts.hosts].map((h) => hostName(h)))
  const origins = new Set(opts.origins.map((o) => o.toLowerCase()))
  // A rebinding attack needs a DNS name that the attacker controls; an IP literal is not one.
  const hostAllowed = (host: string | undefined): boolean => {
    if (host === undefined) return true
    const name = hostName(host)
    return isIP(name) !== 0 || hosts.has(name)
  }
  return {
    hostAllowed,
    originAllowed: (origin, host) => {
      if (origin === undefined) return true
      const o = origin.trim().toLowerCase()
      if (origins.has(o)) return true
      // Same origin: the page was served by this very host and port (whose name was checked).
      if (host === undefined || !hostAllowed(host)) return false
      return o === `http://${host.toLowerCase()}` || o === `https://${host.toLowerCase()}`
    },
  }
}

/** This machine's own name, as a browser on the LAN would type it (plain and mDNS `.local`). */
export function serverNames(): string[] {
  const name = hostname().toLowerCase()
  return name.endsWith('.local') ? [name] : [name, `${name}.local`]
}

export interface RefusalCounter {
  count(code: string, fields: Record<string, unknown>): void
}

/**
 * Refused browser-shaped requests are counted per code and logged at the 1st, 2nd, 4th, 8th, ...
 * of each, with the count: a hostile page in a loop must not fill the log.
 */
export function refusalCounter(log: Logger, msg: string): RefusalCounter {
  const counts = new Map<string, number>()
  return {
    count(code, fields) {
      const n = (counts.get(code) ?? 0) + 1
      counts.set(code, n)
      if ((n & (n - 1)) === 0) log.warn({ code, refused: n, ...fields }, msg)
    },
  }
}
