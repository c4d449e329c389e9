/**
 * Typed operational errors. Match on `code` across boundaries (isolates, processes, the wire),
 * never on `instanceof`: class identity does not survive serialization.
 */
export interface CoordinatorErrorOptions extends ErrorOptions {
  retryable?: boolean
}

export abstract class CoordinatorError extends Error {
  abstract readonly code: `COORD_${string}`
  readonly retryable: boolean

  constructor(message: string, options: CoordinatorErrorOptions = {}) {
    super(message, options)
    this.name = new.target.name
    this.retryable = options.retryable ?? false
  }

  toJSON(): { name: string; code: string; message: string; retryable: boolean } {
    return { name: this.name, code: this.code, message: this.message, retryable: this.retryable }
  }
}

export class InvalidArgumentError extends CoordinatorError {
  readonly code = 'COORD_INVALID_ARG' as const
}

export class NotFoundError extends CoordinatorError {
  readonly code = 'COORD_NOT_FOUND' as const
}

export class ConflictError extends CoordinatorError {
  readonly code = 'COORD_CONFLICT' as const
}

export class ClosedError extends CoordinatorError {
  readonly code = 'COORD_CLOSED' as const
  constructor(message = 'the service is closed', options?: CoordinatorErrorOptions) {
    super(message, options)
  }
}

/** Bad configuration: the message names the key path and what was expected. */
export class ConfigError extends CoordinatorError {
  readonly code = 'COORD_CONFIG_INVALID' as const
}

export const hasCode = (e: unknown, code: string): boolean =>
  typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code
