import type { Route } from '../http.js'

export function healthRoutes(isReady: () => boolean): Route[] {
  return [
    { pattern: /^\/healthz$/, methods: { GET: () => async () => [200, { status: 'ok' }] } },
    { pattern: /^\/readyz$/, methods: { GET: () => async () => (isReady() ? [200, { ready: true }] : [503, { ready: false }]) } },
  ]
}
