import { error, type Route } from '../http.js'

/**
 * What this coordinator is and offers, for operators and fleet tooling: the board profile applied,
 * its capability tags (what a manifest's `requires` and a cloud group's tag query match against),
 * the limits in force, and the state of each hardware adapter.
 */
export interface CoordinatorInfo {
  board: { profile: string; detectedProfile: string; model: string | null; memoryMb: number | null; arch: string }
  capabilities: string[]
  limits: Record<string, unknown>
  hardware: Array<{ thing: string; kind: string; state: string; lastError: string | null; retries: number }>
}

export function infoRoutes(info: () => CoordinatorInfo | null): Route[] {
  return [{
    pattern: /^\/v1\/info$/,
    methods: {
      GET: () => async () => {
        const body = info()
        return body === null ? error(503, 'COORD_STARTING', 'the coordinator is starting') : [200, body]
      },
    },
  }]
}
