import { createWebGuard, serverNames, type WebGuard } from '../core/web.js'
import type { CoordinatorConfig } from '../config/index.js'

/**
 * The names the coordinator's HTTP API and WebSocket listener answer to: localhost and IP
 * literals always, this board's name (and its mDNS `.local` form), the names bound and put in
 * the server certificate, and `web.allowedHosts`.
 */
export function coordinatorWebGuard(config: CoordinatorConfig): WebGuard {
  const { listeners, auth, web } = config
  const bound = [listeners.http?.host, listeners.ws?.host].filter((h): h is string => h !== undefined)
  return createWebGuard({
    hosts: [...serverNames(), ...bound, ...auth.serverCertHosts, ...web.allowedHosts],
    origins: web.allowedOrigins,
  })
}
