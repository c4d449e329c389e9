/**
 * What a simulated device needs from its connection. The SDK's DeviceClient satisfies it; unit
 * tests pass an in-memory fake, so simulator behaviour is tested without sockets.
 */
import type { DeltaDocument, PublishOutcome, ShadowGetDocument, ShadowUpdateRequest, TelemetryOptions, UpdateAcceptedDocument } from '../sdk/index.js'

export interface ShadowLink {
  get(): Promise<ShadowGetDocument>
  update(request: ShadowUpdateRequest): Promise<UpdateAcceptedDocument>
  onDelta(listener: (delta: DeltaDocument) => void | Promise<void>): () => void
}

export interface DeviceLink {
  readonly thingName: string
  shadow(name?: string): ShadowLink
  publishTelemetry(data: unknown, options?: TelemetryOptions): Promise<PublishOutcome>
}
