/** The swarm's one-line status: connections, throughput since the previous line, errors so far. */

export interface SwarmSample {
  connected: number
  total: number
  /** Cumulative shadow updates accepted. */
  updates: number
  /** Cumulative telemetry messages sent. */
  telemetry: number
  /** Cumulative connection failures, refused or timed-out requests, failed publishes. */
  errors: number
}

/** Turns cumulative samples into per-second rates between consecutive status lines. */
export class RateMeter {
  #last: SwarmSample
  #lastAt: number

  constructor(first: SwarmSample, atMs: number) {
    this.#last = first
    this.#lastAt = atMs
  }

  line(sample: SwarmSample, atMs: number): string {
    const seconds = Math.max(0.001, (atMs - this.#lastAt) / 1000)
    const updatesPerSec = (sample.updates - this.#last.updates) / seconds
    const telemetryPerSec = (sample.telemetry - this.#last.telemetry) / seconds
    this.#last = sample
    this.#lastAt = atMs
    return formatStatus(sample, updatesPerSec, telemetryPerSec)
  }
}

export function formatStatus(s: SwarmSample, updatesPerSec: number, telemetryPerSec: number): string {
  return `connected ${s.connected}/${s.total}  updates/s ${updatesPerSec.toFixed(1)}  telemetry/s ${telemetryPerSec.toFixed(1)}  errors ${s.errors}`
}
