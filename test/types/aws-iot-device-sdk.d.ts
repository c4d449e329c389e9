/**
 * Minimal types for the parts of `aws-iot-device-sdk` (v1, CommonJS, untyped) the interoperability
 * tests use. Shapes follow the SDK's `device/index.js` and `thing/index.js`.
 */
declare module 'aws-iot-device-sdk' {
  import type { EventEmitter } from 'node:events'

  namespace awsIot {
    interface DeviceOptions {
      protocol?: 'mqtts' | 'wss' | 'wss-custom-auth'
      host: string
      port?: number
      clientId: string
      keyPath?: string
      certPath?: string
      caPath?: string
      privateKey?: Buffer | string
      clientCert?: Buffer | string
      caCert?: Buffer | string
      servername?: string
      keepalive?: number
      baseReconnectTimeMs?: number
      maximumReconnectTimeMs?: number
      enableMetrics?: boolean
      username?: string
      debug?: boolean
    }

    interface ThingShadowOptions {
      operationTimeout?: number
    }

    interface RegisterOptions {
      ignoreDeltas?: boolean
      persistentSubscribe?: boolean
      discardStale?: boolean
      enableVersioning?: boolean
      qos?: 0 | 1
      debug?: boolean
    }

    /** A shadow document as the SDK hands it to listeners (clientToken removed, version kept). */
    type StateObject = Record<string, unknown> & { version?: number }

    interface ThingShadow extends EventEmitter {
      register(thingName: string, options?: RegisterOptions, callback?: (err?: unknown, failedTopics?: unknown) => void): void
      unregister(thingName: string): void
      /** The clientToken of the request, or null if another operation on the thing is pending. */
      update(thingName: string, stateObject: Record<string, unknown>): string | null
      get(thingName: string, clientToken?: string): string | null
      delete(thingName: string, clientToken?: string): string | null
      publish(topic: string, message: string | Buffer, options?: { qos?: 0 | 1 }, callback?: (err?: Error) => void): void
      subscribe(topic: string | string[], options?: { qos?: 0 | 1 }, callback?: (err: Error | null, granted: Array<{ topic: string; qos: number }>) => void): void
      end(force?: boolean, callback?: () => void): void

      on(event: 'connect' | 'close' | 'reconnect' | 'offline', listener: () => void): this
      on(event: 'error', listener: (err: Error) => void): this
      on(event: 'status', listener: (thingName: string, stat: 'accepted' | 'rejected', clientToken: string, stateObject: StateObject) => void): this
      on(event: 'delta', listener: (thingName: string, stateObject: StateObject) => void): this
      on(event: 'foreignStateChange', listener: (thingName: string, operation: 'update' | 'delete', stateObject: StateObject) => void): this
      on(event: 'timeout', listener: (thingName: string, clientToken: string) => void): this
      on(event: 'message', listener: (topic: string, payload: Buffer) => void): this
    }

    interface ThingShadowConstructor {
      new (deviceOptions: DeviceOptions, thingShadowOptions?: ThingShadowOptions): ThingShadow
      (deviceOptions: DeviceOptions, thingShadowOptions?: ThingShadowOptions): ThingShadow
    }
  }

  const awsIot: {
    thingShadow: awsIot.ThingShadowConstructor
    device: (options: awsIot.DeviceOptions) => EventEmitter
  }
  export = awsIot
}
