/**
 * Delivery through each coordinator's own named shadow `deployment`, in the cloud shim's copy:
 * desired state is written with the shadow service (so the coordinator gets a delta, and a get
 * after any reconnect), reports come back as its reported state and are read on every commit.
 */
import { K, type Logger } from '../../coordinator/core/log.js'
import {
  DEPLOYMENT_SHADOW, deploymentShadowRef, parseDeploymentReport, parseDesiredDeployment, type DeploymentReport, type DesiredDeployment,
} from '../../coordinator/protocol/index.js'
import type { ShadowService } from '../../coordinator/shadow/index.js'

export interface Delivery {
  /** Resolves to null once committed, or to why the shadow refused it. */
  write(coordinator: string, desired: DesiredDeployment): Promise<string | null>
  /** What the cloud copy holds now: for a restarted cloud shim catching up. */
  read(coordinator: string): Promise<{ desiredRevision: number | null; report: DeploymentReport | null }>
}

export type ReportHandler = (coordinator: string, report: DeploymentReport) => void

/** A write refused for load (429) is tried again this many times, this far apart. */
const WRITE_ATTEMPTS = 5
const RETRY_MS = 500

export class ShadowDelivery implements Delivery {
  readonly #shadows: ShadowService
  readonly #log: Logger

  constructor(shadows: ShadowService, log: Logger) {
    this.#shadows = shadows
    this.#log = log
  }

  /** Calls `handler` with the reported state of every committed change to a deployment shadow. */
  onReport(handler: ReportHandler): () => void {
    return this.#shadows.onChange((change) => {
      if (change.kind !== 'update' || change.ref.shadowName !== DEPLOYMENT_SHADOW) return
      const reported = change.document.state.reported
      if (reported === undefined) return
      const parsed = parseDeploymentReport(reported)
      if (parsed.ok) handler(change.ref.thingName, parsed.value)
      else this.#log.warn({ [K.thingName]: change.ref.thingName, errors: parsed.errors }, 'malformed deployment report ignored')
    })
  }

  async write(coordinator: string, desired: DesiredDeployment): Promise<string | null> {
    const payload = Buffer.from(JSON.stringify({ state: { desired } }))
    for (let attempt = 1; ; attempt++) {
      const r = await this.#shadows.update(deploymentShadowRef(coordinator), payload)
      if (r.accepted) return null
      const message = `${r.status} ${String(r.body['message'] ?? '')}`.trim()
      if (r.status !== 429 || attempt === WRITE_ATTEMPTS) return message
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
    }
  }

  async read(coordinator: string): Promise<{ desiredRevision: number | null; report: DeploymentReport | null }> {
    const r = await this.#shadows.get(deploymentShadowRef(coordinator))
    if (!r.accepted) return { desiredRevision: null, report: null }
    const state = r.body['state'] as { desired?: unknown; reported?: unknown } | undefined
    const desired = parseDesiredDeployment(state?.desired)
    const report = parseDeploymentReport(state?.reported)
    return { desiredRevision: desired.ok ? desired.value.revision : null, report: report.ok ? report.value : null }
  }
}
