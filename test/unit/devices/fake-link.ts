/**
 * An in-memory DeviceLink for simulator unit tests: it plays the shadow service (get, update,
 * deltas) and the broker (telemetry), and records everything the device sent.
 */
import { ShadowRejectedError, type DeltaDocument, type JsonObject, type PublishOutcome, type ShadowGetDocument, type ShadowUpdateRequest, type TelemetryOptions, type UpdateAcceptedDocument } from '../../../devices/sdk/index.js'
import type { DeviceLink, ShadowLink } from '../../../devices/sim/index.js'

export class FakeLink implements DeviceLink {
  /** Each reported section sent, in order. */
  readonly reports: JsonObject[] = []
  readonly telemetry: Array<{ data: JsonObject; options: TelemetryOptions | undefined }> = []
  /** What get() answers as desired; undefined means the shadow does not exist (404). */
  desired: JsonObject | undefined
  /** When set, get() or update() reject with this error. */
  getError: Error | undefined
  updateError: Error | undefined
  readonly #listeners = new Set<(d: DeltaDocument) => void | Promise<void>>()
  #version = 0

  constructor(readonly thingName = 'fake-1') {}

  /** The reported state merged from every report, as the shadow would hold it. */
  get reported(): JsonObject {
    return Object.assign({}, ...this.reports) as JsonObject
  }

  shadow(): ShadowLink {
    return {
      get: async () => this.#get(),
      update: async (req) => this.#update(req),
      onDelta: (listener) => {
        this.#listeners.add(listener)
        return () => this.#listeners.delete(listener)
      },
    }
  }

  async publishTelemetry(data: unknown, options?: TelemetryOptions): Promise<PublishOutcome> {
    this.telemetry.push({ data: data as JsonObject, options })
    return 'sent'
  }

  /** Sends a delta to the device, as the coordinator does after an operator's change. */
  delta(state: JsonObject): void {
    const doc: DeltaDocument = { state, metadata: {}, version: ++this.#version, timestamp: 0 }
    for (const listener of this.#listeners) void listener(doc)
  }

  get listening(): boolean {
    return this.#listeners.size > 0
  }

  #get(): ShadowGetDocument {
    if (this.getError !== undefined) throw this.getError
    if (this.desired === undefined) throw new ShadowRejectedError('get', undefined, { code: 404, message: `No shadow exists with name: '${this.thingName}'` })
    return { state: { desired: this.desired }, metadata: {}, version: this.#version, timestamp: 0 }
  }

  #update(req: ShadowUpdateRequest): UpdateAcceptedDocument {
    if (this.updateError !== undefined) throw this.updateError
    const reported = req.state?.reported
    if (reported) this.reports.push(reported)
    return { state: req.state, metadata: null, version: ++this.#version, timestamp: 0 }
  }
}
