import type { Route } from '../http.js'

export interface DiscoveryEndpoint {
  protocol: 'mqtt' | 'mqtts' | 'ws'
  host: string
  port: number
  path?: string
}

/** What a device needs to find and trust the coordinator (like Greengrass discovery). */
export interface DiscoveryInfo {
  endpoints: DiscoveryEndpoint[]
  caPem: string | null
}

export function discoveryRoutes(discovery: () => DiscoveryInfo): Route[] {
  return [{
    pattern: /^\/v1\/discovery\/([^/]+)$/,
    methods: { GET: ([thingName = '']) => async () => [200, { thingName, ...discovery() }] },
  }]
}
