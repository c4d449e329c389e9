import { describe, expect, it } from 'vitest'
import type { Logger } from '../../../coordinator/core/log.js'
import { createWebGuard, hostName, refusalCounter } from '../../../coordinator/core/web.js'

describe('web guard', () => {
  const guard = createWebGuard({ hosts: ['Gateway.lan'], origins: ['http://console.lan:8080'] })

  it('should serve IP literals and the listed names with any port, and nothing a rebinding page could use', () => {
    for (const host of ['127.0.0.1:8087', '[::1]:8087', '192.168.1.20', 'localhost', 'gateway.lan:8087', 'GATEWAY.LAN.', undefined]) expect(guard.hostAllowed(host), String(host)).toBe(true)
    for (const host of ['evil.example', 'localhost.evil.example:8087', '127.0.0.1.nip.io', 'gateway.lan.evil.example', '']) expect(guard.hostAllowed(host), host).toBe(false)
    expect(hostName('[::1]:8087')).toBe('::1')
  })

  it('should allow no Origin, the same origin under a served name, and listed origins only', () => {
    expect(guard.originAllowed(undefined, 'evil.example')).toBe(true)
    expect(guard.originAllowed('http://127.0.0.1:8087', '127.0.0.1:8087')).toBe(true)
    expect(guard.originAllowed('http://console.lan:8080', '127.0.0.1:8087')).toBe(true)
    expect(guard.originAllowed('http://127.0.0.1:9999', '127.0.0.1:8087')).toBe(false)
    expect(guard.originAllowed('http://evil.example:8087', 'evil.example:8087')).toBe(false)
    expect(guard.originAllowed('null', '127.0.0.1:8087')).toBe(false)
  })

  it('should count refusals and log the 1st, 2nd, 4th, 8th... of each code with the count', () => {
    const lines: Array<Record<string, unknown>> = []
    const log = { warn: (fields: Record<string, unknown>) => lines.push(fields) } as unknown as Logger
    const counter = refusalCounter(log, 'refused')
    for (let i = 0; i < 9; i++) counter.count('COORD_API_ORIGIN_REFUSED', { i })
    counter.count('COORD_API_HOST_REFUSED', {})
    expect(lines.map((l) => [l['code'], l['refused']])).toEqual([
      ['COORD_API_ORIGIN_REFUSED', 1], ['COORD_API_ORIGIN_REFUSED', 2], ['COORD_API_ORIGIN_REFUSED', 4], ['COORD_API_ORIGIN_REFUSED', 8], ['COORD_API_HOST_REFUSED', 1],
    ])
  })
})
