/**
 * Exponential reconnect backoff with jitter. When a gateway restarts, every device around it loses
 * the connection at the same instant; jitter spreads their reconnects so the coordinator is not hit
 * by all of them (and all their TLS handshakes) in the same few milliseconds.
 */

export interface BackoffPolicy {
  /** Delay before the first reconnect attempt. */
  initialDelayMs: number
  /** Upper bound for any delay. */
  maxDelayMs: number
  /** Growth per consecutive failed attempt. */
  factor: number
  /** Relative spread: 0.2 means each delay is randomly within ±20% of its nominal value. */
  jitter: number
}

export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({ initialDelayMs: 1000, maxDelayMs: 30_000, factor: 2, jitter: 0.2 })

export function validateBackoff(p: BackoffPolicy): BackoffPolicy {
  if (!(p.initialDelayMs > 0)) throw new RangeError(`reconnect.initialDelayMs must be > 0, got ${p.initialDelayMs}`)
  if (!(p.maxDelayMs >= p.initialDelayMs)) throw new RangeError(`reconnect.maxDelayMs must be >= initialDelayMs, got ${p.maxDelayMs}`)
  if (!(p.factor >= 1)) throw new RangeError(`reconnect.factor must be >= 1, got ${p.factor}`)
  if (!(p.jitter >= 0 && p.jitter < 1)) throw new RangeError(`reconnect.jitter must be in [0, 1), got ${p.jitter}`)
  return p
}

/**
 * The delay before reconnect attempt `attempt` (1 = the first after a loss), given a uniform random
 * number in [0, 1). Never below 1 ms, so a timer is always armed.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: number): number {
  const nominal = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** Math.max(0, attempt - 1))
  const spread = nominal * policy.jitter * (random * 2 - 1)
  return Math.max(1, Math.round(Math.min(policy.maxDelayMs, nominal + spread)))
}
