export { Broker, reportQueueFull, type BrokerOptions, type LocalBus, type MessageHandler, type RefusalCounts } from './broker.js'
export { listenTcp, listenTls, listenWebSocket, started, type Listener, type ListenAddress, type TlsMaterial, type ListenerBounds } from './listeners.js'
export { PolicyEngine, DEFAULT_DEVICE_POLICY, type Policy, type Principal } from './policy.js'
export type { Identity, AuthMethod } from './identity.js'
